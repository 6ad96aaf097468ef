//! Eager per-op overhead: a chain of 10,000 dependent adds on a 16-element f32 tensor
//! (`y = &y + &x`), so the time is dispatch, allocation and bookkeeping, not arithmetic.

use crate::timing::bench;
use crate::{Report, Selection};
use kiln::{DType, Tensor};

/// Adds per timed call.
const CHAIN: usize = 10_000;

/// Keys this workload reports.
pub const KEYS: &[&str] = &["eager_add16_us_per_op"];

/// Runs the add chain if selected.
pub fn run(sel: &Selection, out: &mut Report) {
    if !sel.wants(KEYS[0]) {
        return;
    }
    let x = Tensor::randn([16], DType::F32);
    let secs = bench(3, 5, || {
        let mut y = x.clone();
        for _ in 0..CHAIN {
            y = &y + &x;
        }
        y
    });
    out.push(KEYS[0], secs / CHAIN as f64 * 1e6);
}
