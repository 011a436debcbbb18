//! The store suite against the core's `MemoryStore`, whose expiry follows the
//! clock it is given.

use conformance_tests::store_suite;
use session_core::MemoryStore;

store_suite!(memory_store, expiry: manual_clock, |ctx| async move {
    MemoryStore::with_clock(ctx.clock())
});

/// The same store on the wall clock runs the wall-clock variant of the
/// expiry case (a bounded wait for a record 200 ms from its deadline).
mod wall_clock {
    use super::*;

    store_suite!(memory_store, expiry: wall_clock, |_ctx| async move {
        MemoryStore::new()
    });
}
