//! Which worker (runtime thread) the calling thread is: upstream pools and metric shards are
//! kept per worker so workers on different cores never share a lock or a cache line per request.

thread_local! {
    /// The worker this thread serves, set once by [`set_worker`].
    static WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Marks the calling thread as worker `index`: its requests use that worker's upstream pools.
pub fn set_worker(index: usize) {
    WORKER.with(|w| w.set(index));
}

/// The worker the calling thread serves (0 outside the workers).
pub fn worker() -> usize {
    WORKER.with(|w| w.get())
}
