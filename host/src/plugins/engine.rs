//! The one wasmtime engine of the process, its epoch ticker, and the linker every plugin is
//! instantiated with.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings::Plugin;
use super::state::CallState;

/// How often the epoch advances: the granularity of call deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
/// The largest memory any plugin may be given (the policy's bound).
pub const MAX_MEMORY: usize = 1024 * 1024 * 1024;
/// Wasm stack per call.
pub const MAX_WASM_STACK: usize = 512 * 1024;

/// The engine, its linker, and the ticker that drives deadlines.
#[derive(Clone)]
pub struct Runtime {
    pub engine: Engine,
    pub linker: Arc<Linker<CallState>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Runtime")
    }
}

impl Runtime {
    /// Builds the engine (epoch interruption on, the pooling allocator when the machine allows
    /// it), starts the epoch ticker on a std thread, and links WASI, wasi:http and corral's
    /// host interface.
    pub fn new() -> wasmtime::Result<Self> {
        let engine = match Engine::new(&config(true)) {
            Ok(engine) => engine,
            Err(error) => {
                tracing::warn!(%error, "the pooling allocator is unavailable; using on-demand");
                Engine::new(&config(false))?
            }
        };
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("corral-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| wasmtime::Error::from_anyhow(e.into()))?;
        let mut linker = Linker::<CallState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)?;
        Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        Ok(Self {
            engine,
            linker: Arc::new(linker),
        })
    }
}

/// The engine settings. They are part of the cache key of compiled plugins.
fn config(pooling: bool) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.max_wasm_stack(MAX_WASM_STACK);
    if pooling {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(64)
            .total_memories(64)
            .total_tables(64)
            .max_memory_size(MAX_MEMORY);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}
