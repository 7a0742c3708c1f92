//! Benchmarks of the plugin path, each against its floor in the same run. Run with
//! `cargo bench -p corral --bench plugins`; the numbers and what they mean are in BENCHMARKS.md.
//!
//! 1. **One call of an echo tool.** corral's path (a fresh store with a WASI context built from
//!    the grants, the guarded filesystem, a call slot, the deadline, JSON in and out, through
//!    `PluginTool::call` as the agent calls it, on the caller's task) against the floor: bare
//!    wasmtime with the same engine settings, `InstancePre::instantiate_async` plus the async call
//!    of the same component, the store dropped inside the clock as corral's is. Both with the
//!    machine otherwise idle and with a busy loop pinned to the other core. A third series, the
//!    same floor on an engine whose pool keeps nothing resident between instances, measures
//!    what `linear_memory_keep_resident` / `table_keep_resident` bring.
//! 2. **Start-up with 20 plugins.** Loading 20 distinct components (4 plugins × 5 variants, each
//!    variant made distinct by a custom section, so each has its own cache key), cold (empty
//!    compile cache) and warm (cached); the whole `corral plugins` command, warm; and
//!    `corral run` from its spawn to its first request, with no plugin and with the 20.
//!
//! The plugins are built from source first (`cargo build` in `plugins/`, quick when up to date).

#[path = "support/busy.rs"]
mod busy;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use corral::plugins::{Grants, Limits, PluginTool, Runtime, load_dirs};
use serde_json::json;

const CALLS: usize = 2000;
const WARMUP: usize = 200;

mod floor {
    wasmtime::component::bindgen!({ path: "../wit", world: "plugin", exports: { default: async } });
}

struct FloorState {
    wasi: wasmtime_wasi::WasiCtx,
    table: wasmtime::component::ResourceTable,
    http: wasmtime_wasi_http::WasiHttpCtx,
    hooks: NoHooks,
}

struct NoHooks;
impl wasmtime_wasi_http::WasiHttpHooks for NoHooks {}

impl wasmtime_wasi::WasiView for FloorState {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_http::WasiHttpView for FloorState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl floor::corral::plugin::types::Host for FloorState {}
impl floor::corral::plugin::host::Host for FloorState {
    fn log(&mut self, _level: floor::corral::plugin::types::Level, _message: String) {}
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds the plugins and returns their folder.
fn build_plugins() -> Result<PathBuf> {
    let target = root().join("target").join("plugins");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root().join("plugins"))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target)
        .status()
        .context("running cargo for the plugins")?;
    if !status.success() {
        bail!("building the plugins failed");
    }
    Ok(target.join("wasm32-wasip2").join("release"))
}

fn stats(mut samples: Vec<Duration>) -> (Duration, Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    (at(0.5), at(0.1), at(0.9))
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Part 1: one echo call, corral against bare wasmtime, idle and with the other core busy.
fn echo_call(plugins: &Path) -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::copy(
        plugins.join("misbehave.wasm"),
        dir.path().join("misbehave.wasm"),
    )?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let runtime = Runtime::new().map_err(|e| anyhow::anyhow!("{e}"))?;
    let set = rt.block_on(load_dirs(
        &runtime,
        &[dir.path().to_path_buf()],
        None,
        &[],
        Arc::new(|_, _, _| {}),
    ));
    let plugin = set
        .plugins
        .first()
        .context("misbehave did not load")?
        .clone();
    let tools = PluginTool::for_plugin(&plugin, Grants::default(), Limits::default(), None);
    let echo = tools
        .iter()
        .find(|t| t.spec().name == "echo")
        .context("no echo tool")?
        .clone();
    let input = json!({"text": "hello", "n": 42});
    let input_text = input.to_string();

    // The floor: the same component, engine settings and WASI imports (async, as corral's),
    // bare; its clock stops after the store is dropped, as corral's does.
    let bytes = std::fs::read(plugins.join("misbehave.wasm"))?;
    let pre = floor_pre(&runtime.engine, &bytes)?;
    // Item 4 of issue 12, measured: the same floor on an engine whose pool does not keep
    // memory and tables resident between instances (corral's engine before it did).
    let unkept = unkept_engine()?;
    let unkept_pre = floor_pre(&unkept, &bytes)?;
    let floor_on = |engine: &wasmtime::Engine, pre: &floor::PluginPre<FloorState>| {
        rt.block_on(floor_call(engine, pre, &input_text))
    };
    let tool_call = || -> Result<Duration> {
        rt.block_on(async {
            let started = Instant::now();
            let out = echo.call(input.clone()).await;
            let elapsed = started.elapsed();
            out.map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(elapsed)
        })
    };
    for loaded in [false, true] {
        let busy = loaded.then(busy::Busy::start);
        let (mut f, mut t, mut u) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..(WARMUP + CALLS) {
            // Interleave the three so machine noise hits them alike.
            let x = floor_on(&runtime.engine, &pre)?;
            let z = tool_call()?;
            let y = floor_on(&unkept, &unkept_pre)?;
            if i >= WARMUP {
                f.push(x);
                t.push(z);
                u.push(y);
            }
        }
        let (um, u10, u90) = stats(u);
        drop(busy);
        let (fm, f10, f90) = stats(f);
        let (tm, t10, t90) = stats(t);
        let when = if loaded {
            format!(
                "one core busy (a spin loop pinned to core {})",
                busy::busy_core()
            )
        } else {
            "machine otherwise idle".to_string()
        };
        println!("echo call, {when} ({CALLS} calls each, interleaved; median [p10, p90])");
        println!(
            "  floor: bare wasmtime instantiate_async + call_async + drop   {} [{}, {}]",
            us(fm),
            us(f10),
            us(f90)
        );
        println!(
            "  corral: PluginTool::call (agent's path)                       {} [{}, {}]  ratio {:.2}",
            us(tm),
            us(t10),
            us(t90),
            tm.as_secs_f64() / fm.as_secs_f64()
        );
        println!(
            "  (floor on an engine without keep_resident: {} [{}, {}]; corral's floor / it {:.2})",
            us(um),
            us(u10),
            us(u90),
            fm.as_secs_f64() / um.as_secs_f64()
        );
    }
    Ok(())
}

/// The floor's component on `engine`, linked as corral links it (WASI, wasi:http, the host).
fn floor_pre(engine: &wasmtime::Engine, bytes: &[u8]) -> Result<floor::PluginPre<FloorState>> {
    let component =
        wasmtime::component::Component::new(engine, bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut linker = wasmtime::component::Linker::<FloorState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| anyhow::anyhow!("{e}"))?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    floor::Plugin::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    floor::PluginPre::new(
        linker
            .instantiate_pre(&component)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))
}

/// One bare call: a fresh store with an empty WASI context, instantiate, call, drop the store,
/// all inside the clock (as corral's path times it).
async fn floor_call(
    engine: &wasmtime::Engine,
    pre: &floor::PluginPre<FloorState>,
    input: &str,
) -> Result<Duration> {
    let started = Instant::now();
    let mut store = wasmtime::Store::new(
        engine,
        FloorState {
            wasi: wasmtime_wasi::WasiCtx::builder().build(),
            table: wasmtime::component::ResourceTable::new(),
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            hooks: NoHooks,
        },
    );
    store.set_epoch_deadline(1_000_000);
    let instance = pre
        .instantiate_async(&mut store)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let out = instance
        .corral_plugin_tools()
        .call_call(&mut store, "echo", input)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    drop(store);
    let elapsed = started.elapsed();
    if out.is_err() {
        bail!("floor echo failed");
    }
    Ok(elapsed)
}

/// corral's engine settings as they were before item 4 of issue 12: the same pool, nothing
/// kept resident between instances (the numbers are `plugins/engine.rs`'s).
fn unkept_engine() -> Result<wasmtime::Engine> {
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(true);
    config.max_wasm_stack(512 * 1024);
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    pool.total_component_instances(64)
        .total_memories(64)
        .total_tables(64)
        .max_memory_size(1024 * 1024 * 1024);
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    wasmtime::Engine::new(&config).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Appends a custom section to a component, making its bytes (and cache key) distinct.
fn variant(bytes: &[u8], n: usize) -> Vec<u8> {
    let name = b"corral-bench";
    let payload = format!("variant {n}");
    let body_len = 1 + name.len() + payload.len();
    let mut out = bytes.to_vec();
    out.push(0); // custom section id
    let mut len = body_len;
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(payload.as_bytes());
    out
}

/// Part 2: start-up with 20 plugins, cold and warm.
fn startup(plugins: &Path) -> Result<()> {
    let workspace = tempfile::tempdir()?;
    let dir = workspace.path().join(".corral").join("plugins");
    std::fs::create_dir_all(&dir)?;
    for name in ["misbehave", "grep", "jq", "fetch"] {
        let bytes = std::fs::read(plugins.join(format!("{name}.wasm")))?;
        for n in 0..5 {
            std::fs::write(dir.join(format!("{name}-{n}.wasm")), variant(&bytes, n))?;
        }
    }
    let cache = tempfile::tempdir()?;
    let runtime = Runtime::new().map_err(|e| anyhow::anyhow!("{e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let load = || {
        let started = Instant::now();
        let set = rt.block_on(load_dirs(
            &runtime,
            std::slice::from_ref(&dir),
            Some(cache.path()),
            &[],
            Arc::new(|_, _, _| {}),
        ));
        (
            started.elapsed(),
            set.plugins.len() + set.errors.len(),
            set.cached(),
        )
    };
    let (cold, found, cached_cold) = load();
    let (warm, _, cached_warm) = load();
    println!(
        "start-up with 20 plugins (4 plugins x 5 distinct variants; same-name variants are reported as clashes after loading)"
    );
    println!(
        "  cold, compiling:  {} ({found} files, {cached_cold} from cache)",
        ms(cold)
    );
    println!(
        "  warm, cached:     {} ({cached_warm} plugins from cache)",
        ms(warm)
    );

    // The whole `corral plugins` command, warm (its cache dir is XDG_CACHE_HOME/corral/plugins).
    let xdg = tempfile::tempdir()?;
    let bin = env!("CARGO_BIN_EXE_corral");
    let run = || -> Result<Duration> {
        let started = Instant::now();
        let out = Command::new(bin)
            .args(["plugins", "--workspace"])
            .arg(workspace.path())
            .env("XDG_CACHE_HOME", xdg.path())
            .env("XDG_CONFIG_HOME", xdg.path())
            .output()?;
        let elapsed = started.elapsed();
        if !out.status.success() {
            bail!(
                "corral plugins failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(elapsed)
    };
    // To the first request: `corral run` from its spawn until a request reaches a listener,
    // with no plugin at all and with the 20 plugins (warm).
    let empty = tempfile::tempdir()?;
    let to_first = |plugin_dir: Option<&Path>| -> Result<Duration> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let mut cmd = Command::new(bin);
        cmd.args(["run", "--max-retries", "0", "--workspace"])
            .arg(empty.path())
            .env("XDG_CACHE_HOME", xdg.path())
            .env("XDG_CONFIG_HOME", xdg.path())
            .env("HOME", xdg.path())
            .env("ANTHROPIC_API_KEY", "bench")
            .env(
                "ANTHROPIC_BASE_URL",
                format!("http://{}", listener.local_addr()?),
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(dir) = plugin_dir {
            cmd.arg("--plugins").arg(dir);
        }
        cmd.arg("hi");
        let started = Instant::now();
        let mut child = cmd.spawn()?;
        let (mut conn, _) = listener.accept()?;
        let mut buf = [0u8; 1];
        std::io::Read::read_exact(&mut conn, &mut buf)?;
        let elapsed = started.elapsed();
        drop(conn);
        let _ = child.kill();
        let _ = child.wait();
        Ok(elapsed)
    };
    let first = run()?;
    for (what, plugin_dir) in [
        ("no plugins", None),
        ("20 cached plugins (--plugins)", Some(dir.as_path())),
    ] {
        to_first(plugin_dir)?;
        let mut runs = Vec::new();
        for _ in 0..15 {
            runs.push(to_first(plugin_dir)?);
        }
        let (median, low, high) = stats(runs);
        println!(
            "  `corral run`, spawn to the first request, {what}: median {} [p10 {}, p90 {}] over 15 runs",
            ms(median),
            ms(low),
            ms(high)
        );
    }
    let mut warm_runs = Vec::new();
    for _ in 0..9 {
        warm_runs.push(run()?);
    }
    let (median, low, high) = stats(warm_runs);
    println!("  `corral plugins`, first run (compiling): {}", ms(first));
    println!(
        "  `corral plugins`, warm: median {} [p10 {}, p90 {}] over 9 runs",
        ms(median),
        ms(low),
        ms(high)
    );
    Ok(())
}

fn main() -> Result<()> {
    let selected: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |name: &str| selected.is_empty() || selected.iter().any(|s| s == name);
    let plugins = build_plugins()?;
    println!("load average at start: {}", busy::loadavg());
    if want("echo_call") {
        echo_call(&plugins)?;
    }
    if want("startup") {
        startup(&plugins)?;
    }
    println!("load average at the end: {}", busy::loadavg());
    Ok(())
}
