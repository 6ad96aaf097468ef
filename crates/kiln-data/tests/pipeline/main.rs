//! Datasets, transforms and the DataLoader working together.

mod datasets;
mod loader;
mod transforms;

use kiln_core::Tensor;
use kiln_data::TensorDataset;

/// `n` samples: features `[i, i + 0.5]` (f32), label `i` (i64).
pub fn numbered(n: usize) -> TensorDataset {
    let x: Vec<f32> = (0..n).flat_map(|i| [i as f32, i as f32 + 0.5]).collect();
    let y: Vec<i64> = (0..n as i64).collect();
    TensorDataset::new(Tensor::from_vec(x, [n, 2]), Tensor::from_vec(y, [n]))
}

/// The labels of a batch.
pub fn labels(y: &Tensor) -> Vec<i64> {
    y.to_vec::<i64>()
}
