#!/usr/bin/env bash
# Fuzz corral's parsers: scripts/fuzz.sh [RUNS] [TARGET...]
#
# Runs each cargo-fuzz target of fuzz/ (all of them, or those named) for RUNS executions
# (default 100000), one after another, and prints per target the executions, the seconds and
# the crashes. Exits 1 when any target crashed; the crashing input is in
# fuzz/artifacts/<target>/, and `cargo fuzz run <target> <file>` replays it.
#
# - cargo-fuzz is installed on first use (`cargo install cargo-fuzz --locked`, into ~/.cargo).
# - It runs on the pinned stable toolchain: RUSTC_BOOTSTRAP=1 lets it pass the nightly flags
#   (-Z) that coverage instrumentation needs.
# - No sanitizer (`--sanitizer none`): the fuzzed code is safe Rust, where AddressSanitizer finds
#   nothing the Rust checks do not; ASan would double the cold build (wasmtime is linked in).
#   Debug assertions and overflow checks are on (`-a`), so an arithmetic overflow is a crash.
# - Each target starts from its seeds (fuzz/seeds/<target>/, committed) and keeps what it finds in
#   fuzz/corpus/<target>/ (not committed), so a second run goes on where the first stopped.
# - The targets write their scratch files under a temporary folder removed at the end.
# - Not part of the test suite or CI. The first build takes a while (about 15 minutes on 2 cores).
set -euo pipefail

runs="${1:-100000}"
shift || true
cd "$(dirname "$0")/.."

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz (once) ..." >&2
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
flags=(--sanitizer none -a)

cargo fuzz build "${flags[@]}" >&2
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

failed=0
summary=()
for target in "${targets[@]}"; do
    corpus="fuzz/corpus/$target"
    artifacts="fuzz/artifacts/$target"
    mkdir -p "$corpus" "$artifacts"
    options=(-runs="$runs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
    [ -f "fuzz/dict/$target.dict" ] && options+=(-dict="fuzz/dict/$target.dict")
    log="$scratch/$target.log"
    echo "== $target: $runs runs" >&2
    before="$(find "$artifacts" -type f | wc -l)"
    start="$(date +%s.%N)"
    status=0
    TMPDIR="$scratch" cargo fuzz run "${flags[@]}" "$target" "$corpus" "fuzz/seeds/$target" \
        -- "${options[@]}" >"$log" 2>&1 || status=$?
    end="$(date +%s.%N)"
    after="$(find "$artifacts" -type f | wc -l)"
    executions="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
    seconds="$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')"
    crashes=$((after - before))
    if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes="?"
    fi
    if [ "$status" -ne 0 ]; then
        failed=1
        echo "-- $target failed (exit $status); the end of its log:" >&2
        tail -n 40 "$log" >&2
        ls -t "$artifacts" | head -n 3 | sed "s|^|   $artifacts/|" >&2
    fi
    summary+=("$(printf '%-18s %12s %9s %8s' "$target" "${executions:-?}" "$seconds" "$crashes")")
done

printf '%-18s %12s %9s %8s\n' target executions seconds crashes
printf '%s\n' "${summary[@]}"
exit "$failed"
