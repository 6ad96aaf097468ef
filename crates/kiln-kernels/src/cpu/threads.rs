//! Kiln's compute thread pool. Ops stay on the calling thread below a grain size: a hand-off
//! to the pool costs a few µs (`handoff.rs`), far more than a small op.

use parking_lot::RwLock;
use rayon::ThreadPool;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Elements below which elementwise work never leaves the calling thread.
pub const GRAIN: usize = 32 * 1024;

/// Elements per pool task when a large dense map is split across threads (large enough that
/// the hand-off is small next to the work).
pub const MAP_CHUNK: usize = 64 * 1024;

/// Calls `f(start, piece)` over `out` cut into pieces of `size` elements, on the pool's
/// threads when `out` holds at least two [`MAP_CHUNK`]s and there is more than one thread (one
/// core's memory bandwidth does not saturate the machine), else once over all of `out` on this
/// thread. `start` is the piece's index in `out`, for reading the matching inputs. Elementwise
/// maps pass [`MAP_CHUNK`]; row-wise kernels a whole number of rows.
pub fn for_each_chunk<T: Send>(
    out: &mut [T],
    size: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    if out.len() >= 2 * MAP_CHUNK && out.len() > size && num_threads() > 1 {
        use rayon::prelude::*;
        install(|| {
            out.par_chunks_mut(size)
                .enumerate()
                .for_each(|(i, piece)| f(i * size, piece))
        });
    } else {
        f(0, out);
    }
}

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

/// Pins worker `i` of `n` to its own core when `KILN_PIN=1` and there are at least `n` cores
/// (like `OMP_PROC_BIND`). Off by default: beside another busy process (a CI runner's
/// neighbour, a server's batcher) a pinned thread cannot leave the shared core, and a GPT
/// compiled step, whose schedule runs on a pool thread, took 1.21–1.31× the eager step's time
/// pinned against 0.96–0.99× unpinned (three paired runs each, 2026-12-07).
///
/// Unpinned, each worker still starts on its own core: it is moved there, then allowed every
/// core again. New threads otherwise start beside their parent, and a short-lived process
/// could finish before the scheduler spread them: the MLP's batch-8 compiled call took 64–78
/// µs in some processes and 131–139 µs in others, and 63–78 µs in every process once placed.
fn pin_to_core(i: usize, n: usize) {
    let Some(cores) = core_affinity::get_core_ids() else {
        return;
    };
    if cores.len() < n {
        return;
    }
    if std::env::var_os("KILN_PIN").is_some_and(|v| v == "1") {
        core_affinity::set_for_current(cores[i]);
        return;
    }
    place_on(cores[i]);
}

/// Moves this thread to `core`, then lets it run anywhere it could before.
#[cfg(target_os = "linux")]
fn place_on(core: core_affinity::CoreId) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set, and both calls get its true size.
    unsafe {
        let mut allowed: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        if libc::sched_getaffinity(0, size, &mut allowed) != 0 {
            return;
        }
        if core_affinity::set_for_current(core) {
            libc::sched_setaffinity(0, size, &allowed);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn place_on(_core: core_affinity::CoreId) {}

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

pub use super::handoff::spawning_now;

/// Runs `f` inside the pool (directly if already on one of its threads), the caller waiting
/// without parking at first (see `handoff.rs`).
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let pool = pool();
    if pool.current_thread_index().is_some() {
        return f();
    }
    super::handoff::run_on(&pool, f)
}

/// True on one of the pool's own threads, where forking work costs no hand-off (a graph
/// executor runs its whole schedule there).
pub fn on_pool() -> bool {
    pool().current_thread_index().is_some()
}

thread_local! {
    /// Set on a thread while it runs a [`run_with_pool_awake`] spinner or schedule.
    static AWAKE_ROLE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` on a pool thread while the pool's other threads, instead of going to sleep
/// between parallel loops, keep polling for work until `f` returns: a compiled step forks a
/// few dozen short parallel loops, and waking a sleeping worker for each costs more than a
/// small loop (a futex round trip, then the wake-up latency of a virtual CPU). Eager mode
/// cannot do this: it does not know when a run of ops ends.
pub fn run_with_pool_awake<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    // One thread: nothing to keep awake, and handing `f` to the pool's thread costs a
    // wake-up per call (a fifth of a small compiled call's time measured).
    if num_threads() < 2 {
        return f();
    }
    install(|| {
        let others = rayon::current_num_threads().saturating_sub(1);
        if others == 0 || AWAKE_ROLE.with(|r| r.get()) {
            return f();
        }
        let done = AtomicBool::new(false);
        with_spinners(others, &done, || {
            // Set even when `f` panics, so that the spinners stop and the panic propagates.
            let _done = SetOnDrop(&done);
            AWAKE_ROLE.with(|r| r.set(true));
            let _role = AwakeRole;
            f()
        })
    })
}

/// Runs `f` here with `k` spinners queued behind it for other threads to steal (oldest
/// first, so one each). Joins, not a scope: a scope's spawn allocates, a join's job lives on
/// the stack, and a compiled step allocates nothing after its first call.
fn with_spinners<R: Send>(k: usize, done: &AtomicBool, f: impl FnOnce() -> R + Send) -> R {
    if k == 0 {
        return f();
    }
    rayon::join(|| with_spinners(k - 1, done, f), || spin_until(done)).0
}

/// Runs the pool's pending jobs until `done`. The schedule's own thread (it may pop a
/// spinner while it waits on a join) and a spinner's nested waits return at once: `done`
/// waits on them.
fn spin_until(done: &AtomicBool) {
    if AWAKE_ROLE.with(|r| r.replace(true)) {
        return;
    }
    let _role = AwakeRole;
    if contended_now() {
        return;
    }
    let mut idle_since: Option<std::time::Instant> = None;
    let mut last = std::time::Instant::now();
    while !done.load(Ordering::Acquire) {
        // A loop iteration takes well under a microsecond; one that took longer than
        // PREEMPTED means the scheduler gave this core to another thread meanwhile: the core
        // is shared, and spinning on it only takes time from whoever else needs it.
        let now = std::time::Instant::now();
        if now.duration_since(last) > PREEMPTED {
            mark_contended(now);
            return;
        }
        last = now;
        if rayon::yield_now() == Some(rayon::Yield::Executed) {
            idle_since = None;
            last = std::time::Instant::now();
            continue;
        }
        // Spin through the short gaps between a schedule's parallel loops, but give the
        // core back after a while without work: on a shared core a spinner that never
        // yields takes the time the schedule's own thread needs (a CNN step ran 1.6× slower
        // than eager beside one busy process). Parked, the thread is woken by the next fork.
        let since = *idle_since.get_or_insert(now);
        if now.duration_since(since) > SPIN_BUDGET {
            return;
        }
        std::hint::spin_loop();
    }
}

/// How long a spinner of [`run_with_pool_awake`] waits without work before it parks.
const SPIN_BUDGET: std::time::Duration = std::time::Duration::from_micros(50);

/// A gap in a spinner's loop this long means its thread was descheduled (another process
/// wants the core).
const PREEMPTED: std::time::Duration = std::time::Duration::from_micros(500);

/// After a spinner was preempted, spinners park at once for this long, then try again.
const CONTENDED_FOR: std::time::Duration = std::time::Duration::from_millis(200);

/// When spinning may start again, in nanoseconds after [`epoch`] (0: now).
static CONTENDED_UNTIL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

fn mark_contended(now: std::time::Instant) {
    let until = now.duration_since(epoch()) + CONTENDED_FOR;
    CONTENDED_UNTIL.store(until.as_nanos() as u64, Ordering::Relaxed);
}

/// True while a spinner was preempted recently.
fn contended_now() -> bool {
    let until = CONTENDED_UNTIL.load(Ordering::Relaxed);
    until != 0 && (epoch().elapsed().as_nanos() as u64) < until
}

/// Clears this thread's [`AWAKE_ROLE`] when dropped.
struct AwakeRole;

impl Drop for AwakeRole {
    fn drop(&mut self) {
        AWAKE_ROLE.with(|r| r.set(false));
    }
}

/// Sets the flag when dropped.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_inside_an_awake_pool_runs_and_panics_propagate() {
        use rayon::prelude::*;
        let sum = run_with_pool_awake(|| {
            // Nested parallel loops and a nested awake run.
            (0..64u64)
                .into_par_iter()
                .map(|i| run_with_pool_awake(|| (0..i).into_par_iter().sum::<u64>()))
                .sum::<u64>()
        });
        assert_eq!(sum, (0..64u64).map(|i| i * i.saturating_sub(1) / 2).sum());
        let caught = std::panic::catch_unwind(|| run_with_pool_awake(|| panic!("inside")));
        assert!(caught.is_err());
        // The pool still works, and the flag was cleared on every thread.
        assert_eq!(run_with_pool_awake(|| 7), 7);
        assert!(!AWAKE_ROLE.with(|r| r.get()));
    }
}
