//! Kiln's compute thread pool. Ops stay on the calling thread below a grain size: a hand-off
//! to the pool costs ~14 µs here, far more than a small op.

use parking_lot::RwLock;
use rayon::ThreadPool;
use std::sync::Arc;

/// Elements below which elementwise work never leaves the calling thread.
pub const GRAIN: usize = 32 * 1024;

static POOL: RwLock<Option<Arc<ThreadPool>>> = RwLock::new(None);

fn default_threads() -> usize {
    std::env::var("KILN_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

fn build(n: usize) -> Arc<ThreadPool> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("kiln-{i}"))
        .start_handler(move |i| pin_to_core(i, n))
        .build()
        .expect("kiln: cannot start the thread pool");
    Arc::new(pool)
}

/// Pins worker `i` of `n` to its own core when there are at least `n` cores: new threads
/// otherwise often share their parent's core until the scheduler rebalances (measured: a 256
/// matmul right after start-up ran at half speed in about half the runs).
fn pin_to_core(i: usize, n: usize) {
    if std::env::var_os("KILN_NO_PIN").is_some() {
        return;
    }
    if let Some(cores) = core_affinity::get_core_ids() {
        if cores.len() >= n {
            core_affinity::set_for_current(cores[i]);
        }
    }
}

/// The pool kernels run parallel work on (created on first use with `KILN_NUM_THREADS` or the
/// number of cores).
pub fn pool() -> Arc<ThreadPool> {
    if let Some(p) = POOL.read().as_ref() {
        return p.clone();
    }
    let mut w = POOL.write();
    w.get_or_insert_with(|| build(default_threads())).clone()
}

/// Number of threads kernels use.
pub fn num_threads() -> usize {
    pool().current_num_threads()
}

/// Sets the number of compute threads (like `torch.set_num_threads`).
pub fn set_num_threads(n: usize) {
    *POOL.write() = Some(build(n.max(1)));
}

/// Runs `f` inside the pool (directly if already on one of its threads).
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    pool().install(f)
}
