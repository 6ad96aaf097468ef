//! Handing work from a thread outside the pool to the pool, and waiting for it without going
//! to sleep.
//!
//! `rayon::ThreadPool::install` parks the calling thread on a condition variable until the
//! job is done, and on these virtual machines waking a parked thread takes 10–30 µs: a round
//! trip of an empty job measured 18–27 µs median (p90 35–38 µs), most of a batch-1 MLP's
//! compiled call (onnxruntime runs the whole call in 30 µs). Here the job is spawned onto the
//! pool and the caller waits by yielding its core (to the pool's threads, when they share it)
//! and only parks after [`YIELD_FOR`]: the same round trip took 2.7 µs (p90 2.8 µs).

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long a caller yields its core while it waits before it parks: long enough for any
/// compiled call of a small model, short enough that a caller waiting behind a long one (a
/// training step, another request's batch) does not keep a core busy.
const YIELD_FOR: Duration = Duration::from_micros(500);

thread_local! {
    /// Set on a thread while it spawns a job (see [`spawning_now`]).
    static SPAWNING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// True on a thread while it hands a job to the pool: rayon boxes each spawned job (one small
/// allocation per hand-off, outside Kiln's control), which tests that count heap allocations
/// tell apart from Kiln's own.
pub fn spawning_now() -> bool {
    SPAWNING.with(|s| s.get())
}

/// A job on the caller's stack, and what the pool's thread hands back.
struct Job<F, R> {
    f: UnsafeCell<Option<F>>,
    result: UnsafeCell<Option<std::thread::Result<R>>>,
    done: AtomicBool,
    caller: Thread,
}

/// Runs `f` on one of `pool`'s threads and returns its result (or resumes its panic here).
/// The caller must not be one of `pool`'s threads (it would wait for itself).
pub(super) fn run_on<F: FnOnce() -> R + Send, R: Send>(pool: &rayon::ThreadPool, f: F) -> R {
    let job = Job {
        f: UnsafeCell::new(Some(f)),
        result: UnsafeCell::new(None),
        done: AtomicBool::new(false),
        caller: std::thread::current(),
    };
    SPAWNING.with(|s| s.set(true));
    // SAFETY: `job` outlives the spawned task: this function returns only after `done`, which
    // the task sets after its last use of `job`.
    unsafe { spawn_erased(pool, &job as *const Job<F, R> as usize, execute::<F, R>) };
    SPAWNING.with(|s| s.set(false));
    let started = Instant::now();
    while !job.done.load(Ordering::Acquire) {
        if started.elapsed() < YIELD_FOR {
            std::thread::yield_now();
        } else {
            // `execute` unparks this thread after setting `done`; a wake-up before the park
            // makes it return at once, and a spurious one goes round the loop again.
            std::thread::park_timeout(Duration::from_millis(1));
        }
    }
    match job
        .result
        .into_inner()
        .expect("handoff: a finished job has a result")
    {
        Ok(r) => r,
        Err(panic) => resume_unwind(panic),
    }
}

/// Spawns `execute(job)` on `pool`. Not generic, so the spawned closure (an address and a
/// function pointer) is `'static` whatever the job borrows.
///
/// # Safety
/// `job` points to a `Job` that stays alive until it is marked done.
unsafe fn spawn_erased(pool: &rayon::ThreadPool, job: usize, execute: unsafe fn(usize)) {
    // SAFETY: as the caller promised.
    pool.spawn(move || unsafe { execute(job) });
}

/// Runs the job at `job` on this (pool) thread and marks it done.
///
/// # Safety
/// `job` points to a live `Job<F, R>` whose function has not run yet.
unsafe fn execute<F: FnOnce() -> R, R>(job: usize) {
    // SAFETY: as the caller promised; the caller's thread only reads the job after `done`.
    let job = unsafe { &*(job as *const Job<F, R>) };
    let f = unsafe { (*job.f.get()).take() }.expect("handoff: a job runs once");
    let result = catch_unwind(AssertUnwindSafe(f));
    // SAFETY: as above.
    unsafe { *job.result.get() = Some(result) };
    // The caller may return (and the job's memory go) as soon as `done` is set: take what the
    // wake-up needs first.
    let caller = job.caller.clone();
    job.done.store(true, Ordering::Release);
    caller.unpark();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_on_the_pool_with_borrowed_data_and_panics_come_back() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let data: Vec<u64> = (0..1000).collect();
        for _ in 0..100 {
            let sum = run_on(&pool, || {
                assert!(pool.current_thread_index().is_some(), "runs on the pool");
                data.iter().sum::<u64>()
            });
            assert_eq!(sum, 499_500);
        }
        let caught = catch_unwind(AssertUnwindSafe(|| run_on(&pool, || panic!("inside"))));
        assert!(caught.is_err());
        // A job longer than the yielding window: the caller parks, then is woken.
        let slow = run_on(&pool, || {
            std::thread::sleep(Duration::from_millis(20));
            5
        });
        assert_eq!(slow, 5);
        assert!(!spawning_now());
    }
}
