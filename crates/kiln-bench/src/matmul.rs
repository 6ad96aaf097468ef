//! Square f32 matmul throughput: `a.matmul(&b)` on `randn` inputs, reported in GFLOPS
//! (`2·n³ / median seconds`).

use crate::timing::bench;
use crate::{Report, Selection};
use kiln::{DType, Tensor};

/// Matrix sizes, with the number of timed calls for each (3 warm-up calls each).
const SIZES: [(usize, usize); 3] = [(256, 20), (1024, 20), (2048, 5)];

/// Keys this workload reports.
pub const KEYS: &[&str] = &[
    "matmul_256_gflops",
    "matmul_1024_gflops",
    "matmul_2048_gflops",
];

/// Runs the selected sizes.
pub fn run(sel: &Selection, out: &mut Report) {
    for (n, iters) in SIZES {
        let key = format!("matmul_{n}_gflops");
        if !sel.wants(&key) {
            continue;
        }
        let a = Tensor::randn([n, n], DType::F32);
        let b = Tensor::randn([n, n], DType::F32);
        let secs = bench(3, iters, || a.matmul(&b));
        out.push(key, 2.0 * (n as f64).powi(3) / secs / 1e9);
    }
}
