//! Running work that holds its thread for long (a blocking call, or a long synchronous
//! computation) on a multi-threaded runtime without starving the other tasks.

/// Runs `f`, which holds the thread, telling a multi-threaded runtime to move its other
/// tasks (other sessions, the lease keeper, the admin API) to another worker. On a
/// current-thread runtime, or outside one, it just runs `f`.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
