//! What one plugin call may hold: its linear memories *together* within the call's memory
//! limit (a component has several core instances, each with its own memory, so a cap per
//! memory would let one call hold many times the limit), its tables within
//! [`TABLE_ELEMENTS`], and a bounded number of instances, tables and memories.
//!
//! Growth past a limit traps the call (the store goes with it), and the limiter keeps a flag
//! saying so, so the cause is told from that flag, never from an error's text.

use wasmtime::ResourceLimiter;

/// Core instances one call may create (a component is a handful).
pub const INSTANCES: usize = 16;
/// Linear memories one call may create.
pub const MEMORIES: usize = 16;
/// Tables one call may create.
pub const TABLES: usize = 64;
/// Table elements one call may hold, all tables together (a pointer each: 8 MiB).
pub const TABLE_ELEMENTS: usize = 1 << 20;

/// Which limit a call ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// Its memories together would pass the call's memory limit.
    Memory,
    /// Its tables together would pass [`TABLE_ELEMENTS`].
    Table,
}

/// The [`ResourceLimiter`] of one call's store.
#[derive(Debug)]
pub struct CallLimiter {
    memory_limit: usize,
    memory_held: usize,
    table_held: usize,
    /// The growth allowed last, taken back when it then fails: (old size, new size).
    growing_memory: Option<(usize, usize)>,
    growing_table: Option<(usize, usize)>,
    exceeded: Option<Exceeded>,
}

impl CallLimiter {
    /// A limiter for a call whose memories may hold `memory_limit` bytes together.
    pub fn new(memory_limit: usize) -> Self {
        Self {
            memory_limit,
            memory_held: 0,
            table_held: 0,
            growing_memory: None,
            growing_table: None,
            exceeded: None,
        }
    }

    /// The limit the call ran into, when growth past one trapped it.
    pub fn exceeded(&self) -> Option<Exceeded> {
        self.exceeded
    }

    /// The bytes the call's memories hold together.
    pub fn memory_held(&self) -> usize {
        self.memory_held
    }
}

impl ResourceLimiter for CallLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = (self.memory_held - current.min(self.memory_held)).saturating_add(desired);
        if total > self.memory_limit {
            self.exceeded = Some(Exceeded::Memory);
            wasmtime::bail!(
                "the call's memories would hold {total} bytes, past its limit of {}",
                self.memory_limit
            );
        }
        if maximum.is_some_and(|max| desired > max) {
            wasmtime::bail!("a memory grown past its own maximum");
        }
        self.memory_held = total;
        self.growing_memory = Some((current, desired));
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        if let Some((current, desired)) = self.growing_memory.take() {
            self.memory_held = self.memory_held - desired + current;
        }
        Err(error.context("a memory could not grow"))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = (self.table_held - current.min(self.table_held)).saturating_add(desired);
        if total > TABLE_ELEMENTS {
            self.exceeded = Some(Exceeded::Table);
            wasmtime::bail!("the call's tables would hold {total} elements, past {TABLE_ELEMENTS}");
        }
        if maximum.is_some_and(|max| desired > max) {
            wasmtime::bail!("a table grown past its own maximum");
        }
        self.table_held = total;
        self.growing_table = Some((current, desired));
        Ok(true)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        if let Some((current, desired)) = self.growing_table.take() {
            self.table_held = self.table_held - desired + current;
        }
        Err(error.context("a table could not grow"))
    }

    fn instances(&self) -> usize {
        INSTANCES
    }

    fn tables(&self) -> usize {
        TABLES
    }

    fn memories(&self) -> usize {
        MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    /// Two memories of 40 MiB each pass a 64 MiB limit together: the second traps, and the
    /// flag says why; growth that failed for another reason is taken back.
    #[test]
    fn memories_count_together() {
        let mut limiter = CallLimiter::new(64 * MIB);
        assert!(limiter.memory_growing(0, 40 * MIB, None).unwrap());
        assert!(limiter.memory_growing(0, 20 * MIB, None).unwrap());
        assert_eq!(limiter.memory_held(), 60 * MIB);
        assert!(limiter.memory_growing(20 * MIB, 30 * MIB, None).is_err());
        assert_eq!(limiter.exceeded(), Some(Exceeded::Memory));
        assert_eq!(limiter.memory_held(), 60 * MIB);

        let mut limiter = CallLimiter::new(64 * MIB);
        assert!(limiter.memory_growing(0, 10 * MIB, None).unwrap());
        assert!(
            limiter
                .memory_grow_failed(wasmtime::format_err!("no room"))
                .is_err()
        );
        assert_eq!(limiter.memory_held(), 0);
        assert!(limiter.memory_growing(0, 10 * MIB, Some(MIB)).is_err());
        assert_eq!(
            limiter.exceeded(),
            None,
            "its own maximum is not corral's limit"
        );
    }

    #[test]
    fn tables_count_together() {
        let mut limiter = CallLimiter::new(MIB);
        assert!(limiter.table_growing(0, TABLE_ELEMENTS / 2, None).unwrap());
        assert!(limiter.table_growing(0, TABLE_ELEMENTS / 2, None).unwrap());
        assert!(limiter.table_growing(0, 1, None).is_err());
        assert_eq!(limiter.exceeded(), Some(Exceeded::Table));
    }
}
