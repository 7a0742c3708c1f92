//! The one wasmtime engine of the process, its epoch ticker, and the linker every plugin is
//! instantiated with.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use tokio::sync::Semaphore;

use super::bindings::Plugin;
use super::fs_guard::GuardedFilesystem;
use super::state::CallState;

/// How often the epoch advances: the granularity of call deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
/// The largest memory any plugin may be given (the policy's bound).
pub const MAX_MEMORY: usize = 1024 * 1024 * 1024;
/// Wasm stack per call.
pub const MAX_WASM_STACK: usize = 512 * 1024;

/// Bytes of a plugin's linear memory the pool keeps mapped (zeroed, not returned to the
/// kernel) when its instance ends: every call is a fresh instance, so without it each call
/// faults in the pages it touches again. At most this much per pool slot stays resident.
pub const MEMORY_KEEP_RESIDENT: usize = 1024 * 1024;
/// Bytes of a plugin's tables the pool keeps mapped when its instance ends (as above).
pub const TABLE_KEEP_RESIDENT: usize = 64 * 1024;

/// Plugin calls in flight at once, by default (`[plugins] max_concurrent` in corral.toml):
/// each holds up to its memory limit and a pool slot, so the pool never runs dry.
pub const DEFAULT_MAX_CONCURRENT: usize = 8;

/// The engine, its linker, the ticker that drives deadlines, and the call slots.
#[derive(Clone)]
pub struct Runtime {
    pub engine: Engine,
    pub linker: Arc<Linker<CallState>>,
    /// One permit per call in flight.
    pub(super) calls: Arc<Semaphore>,
    max_concurrent: usize,
}

impl Runtime {
    /// How many calls may be in flight at once.
    pub fn max_concurrent(&self) -> usize {
        self.max_concurrent
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Runtime")
    }
}

impl Runtime {
    /// Builds the engine (epoch interruption on, the pooling allocator when the machine allows
    /// it), starts the epoch ticker on a std thread, and links WASI (async, the filesystem
    /// behind corral's guard), wasi:http and corral's host interface. At most
    /// [`DEFAULT_MAX_CONCURRENT`] calls run at once.
    pub fn new() -> wasmtime::Result<Self> {
        Self::with_max_concurrent(DEFAULT_MAX_CONCURRENT)
    }

    /// Like [`Runtime::new`], with at most `max_concurrent` calls in flight (at least 1).
    pub fn with_max_concurrent(max_concurrent: usize) -> wasmtime::Result<Self> {
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
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        // `wasi:filesystem/types` again, over wasmtime-wasi's: the same functions behind
        // corral's guard (protected entries, the symlink rule).
        linker.allow_shadowing(true);
        wasmtime_wasi::p2::bindings::filesystem::types::add_to_linker::<
            CallState,
            GuardedFilesystem,
        >(&mut linker, CallState::guarded_fs)?;
        linker.allow_shadowing(false);
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            calls: Arc::new(Semaphore::new(max_concurrent.max(1))),
            max_concurrent: max_concurrent.max(1),
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
            .max_memory_size(MAX_MEMORY)
            .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
            .table_keep_resident(TABLE_KEEP_RESIDENT);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}
