//! Batch-1 inference latency: the benchmark MLP ([`crate::mlp::model`]) forward on one
//! `randn` `[1, 1, 28, 28]` image under `no_grad`; 20 warm-up and 200 timed calls, reported
//! in microseconds.

use crate::timing::bench;
use crate::{mlp, Report, Selection};
use kiln::prelude::*;

/// Keys this workload reports.
pub const KEYS: &[&str] = &["mlp_infer_b1_us"];

/// Runs the forward pass if selected.
pub fn run(sel: &Selection, out: &mut Report) {
    if !sel.wants(KEYS[0]) {
        return;
    }
    let model = mlp::model();
    let secs = no_grad(|| {
        let x = Tensor::randn([1, 1, 28, 28], DType::F32);
        bench(20, 200, || model.forward(&x))
    });
    out.push(KEYS[0], secs * 1e6);
}
