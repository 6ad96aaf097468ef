//! The one timing rule every workload uses, so numbers compare with the PyTorch reference:
//! `warm` untimed calls, then `iters` timed calls, and the median (the upper middle of the
//! sorted samples when `iters` is even, as `ts[len(ts) // 2]` does in Python).

use std::hint::black_box;
use std::time::Instant;

/// Median wall time of one call of `f`, in seconds.
///
/// The value `f` returns is dropped inside the timed region, like the result of `fn()` in
/// the Python reference, so deallocation counts as part of the work.
pub fn bench<R>(warm: usize, iters: usize, mut f: impl FnMut() -> R) -> f64 {
    assert!(iters > 0, "bench: iters must be positive");
    for _ in 0..warm {
        drop(black_box(f()));
    }
    let mut samples: Vec<f64> = (0..iters)
        .map(|_| {
            let t = Instant::now();
            drop(black_box(f()));
            t.elapsed().as_secs_f64()
        })
        .collect();
    median(&mut samples)
}

/// The element at `len / 2` after sorting (upper middle for even lengths).
pub fn median(samples: &mut [f64]) -> f64 {
    assert!(!samples.is_empty(), "median: no samples");
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_matches_python_indexing() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        // Python: sorted([4, 1, 3, 2])[4 // 2] == 3
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 3.0);
    }

    #[test]
    fn bench_calls_warm_plus_iters_times() {
        let mut calls = 0;
        let t = bench(2, 5, || calls += 1);
        assert_eq!(calls, 7);
        assert!(t >= 0.0);
    }
}
