//! Tensor creation: constants, ranges, data from vectors, random samples.

use super::Tensor;
use crate::dtype::DType;
use crate::layout::Layout;
use crate::ops::{dispatch, Distribution, Op};
use crate::random::{with_global, Generator};
use crate::shape::{to_shape, DimList};
use crate::storage::{CpuStorage, Storage, StorageElement};
use std::sync::Arc;

impl Tensor {
    fn dense(data: CpuStorage, shape: &[usize]) -> Tensor {
        Tensor::from_storage(Arc::new(Storage::cpu(data)), Layout::contiguous(shape))
    }

    /// A tensor filled with `value` (converted to `dtype`).
    #[track_caller]
    pub fn full(shape: impl DimList, value: f64, dtype: DType) -> Tensor {
        let shape = to_shape(shape, "full", dtype.size_in_bytes());
        Tensor::dense(
            CpuStorage::filled(dtype, shape.iter().product(), value),
            &shape,
        )
    }

    /// A tensor of zeros.
    #[track_caller]
    pub fn zeros(shape: impl DimList, dtype: DType) -> Tensor {
        Tensor::full(shape, 0.0, dtype)
    }

    /// A tensor of ones.
    #[track_caller]
    pub fn ones(shape: impl DimList, dtype: DType) -> Tensor {
        Tensor::full(shape, 1.0, dtype)
    }

    /// A 0-d tensor holding `value`.
    #[track_caller]
    pub fn scalar(value: f64, dtype: DType) -> Tensor {
        Tensor::full([0usize; 0], value, dtype)
    }

    /// Zeros with the shape and dtype of `self`.
    #[track_caller]
    pub fn zeros_like(&self) -> Tensor {
        Tensor::zeros(self.shape(), self.dtype())
    }

    /// Ones with the shape and dtype of `self`.
    #[track_caller]
    pub fn ones_like(&self) -> Tensor {
        Tensor::ones(self.shape(), self.dtype())
    }

    /// `value` everywhere, with the shape and dtype of `self`.
    #[track_caller]
    pub fn full_like(&self, value: f64) -> Tensor {
        Tensor::full(self.shape(), value, self.dtype())
    }

    /// A tensor owning `data`, with the given shape.
    #[track_caller]
    pub fn from_vec<T: StorageElement>(data: Vec<T>, shape: impl DimList) -> Tensor {
        let shape = to_shape(shape, "from_vec", std::mem::size_of::<T>());
        let n: usize = shape.iter().product();
        if n != data.len() {
            panic!(
                "from_vec: {} values do not fill shape {:?} ({n} elements)",
                data.len(),
                shape
            );
        }
        Tensor::dense(T::wrap(data), &shape)
    }

    /// A tensor copying `data`, with the given shape.
    #[track_caller]
    pub fn from_slice<T: StorageElement>(data: &[T], shape: impl DimList) -> Tensor {
        Tensor::from_vec(data.to_vec(), shape)
    }

    /// Values `start, start+step, …` below `end` (like `torch.arange`).
    #[track_caller]
    pub fn arange(start: f64, end: f64, step: f64, dtype: DType) -> Tensor {
        if step == 0.0 || !((end - start) / step).is_finite() {
            panic!("arange: invalid range {start}..{end} with step {step}");
        }
        let n = ((end - start) / step).ceil().max(0.0) as usize;
        check_size(&[n], dtype, "arange");
        let data = CpuStorage::from_f64s(dtype, (0..n).map(|i| start + i as f64 * step));
        Tensor::dense(data, &[n])
    }

    /// `steps` evenly spaced values from `start` to `end` inclusive.
    #[track_caller]
    pub fn linspace(start: f64, end: f64, steps: usize, dtype: DType) -> Tensor {
        check_size(&[steps], dtype, "linspace");
        let step = if steps > 1 {
            (end - start) / (steps - 1) as f64
        } else {
            0.0
        };
        // Fill from both ends like PyTorch so the last value is exactly `end`.
        let data = CpuStorage::from_f64s(
            dtype,
            (0..steps).map(|i| {
                if i < steps / 2 || steps == 1 {
                    start + step * i as f64
                } else {
                    end - step * (steps - 1 - i) as f64
                }
            }),
        );
        Tensor::dense(data, &[steps])
    }

    /// The `n`×`n` identity matrix.
    #[track_caller]
    pub fn eye(n: usize, dtype: DType) -> Tensor {
        check_size(&[n, n], dtype, "eye");
        let data = CpuStorage::from_f64s(
            dtype,
            (0..n * n).map(|i| if i / n == i % n { 1.0 } else { 0.0 }),
        );
        Tensor::dense(data, &[n, n])
    }

    #[track_caller]
    fn random(
        dist: Distribution,
        shape: impl DimList,
        dtype: DType,
        gen: Option<&mut Generator>,
    ) -> Tensor {
        let shape = to_shape(shape, "random", dtype.size_in_bytes());
        let n = shape.iter().product();
        if crate::trace::is_tracing() {
            if gen.is_some() {
                panic!(
                    "random: an explicit Generator cannot be traced for compile (its draws would \
                     be frozen into the graph); use the global generator (manual_seed) inside \
                     compiled functions, shape {shape:?}"
                );
            }
            // Drawn at each call of the compiled graph, like eager code would.
            return crate::trace::record_fresh_random(dist, shape, dtype);
        }
        let (seed, offset) = match gen {
            Some(g) => g.reserve(n),
            None => with_global(|g| g.reserve(n)),
        };
        dispatch(
            Op::Random {
                dist,
                shape,
                dtype,
                seed,
                offset,
            },
            &[],
        )
    }

    /// Uniform samples on [0, 1) from the global generator.
    #[track_caller]
    pub fn rand(shape: impl DimList, dtype: DType) -> Tensor {
        Tensor::random(Distribution::Uniform, shape, dtype, None)
    }

    /// Standard normal samples from the global generator.
    #[track_caller]
    pub fn randn(shape: impl DimList, dtype: DType) -> Tensor {
        Tensor::random(Distribution::Normal, shape, dtype, None)
    }

    /// Uniform samples from an explicit generator.
    #[track_caller]
    pub fn rand_with(shape: impl DimList, dtype: DType, gen: &mut Generator) -> Tensor {
        Tensor::random(Distribution::Uniform, shape, dtype, Some(gen))
    }

    /// Normal samples from an explicit generator.
    #[track_caller]
    pub fn randn_with(shape: impl DimList, dtype: DType, gen: &mut Generator) -> Tensor {
        Tensor::random(Distribution::Normal, shape, dtype, Some(gen))
    }

    /// Uniform samples with the shape and dtype of `self`.
    #[track_caller]
    pub fn rand_like(&self) -> Tensor {
        Tensor::rand(self.shape(), self.dtype())
    }

    /// Normal samples with the shape and dtype of `self`.
    #[track_caller]
    pub fn randn_like(&self) -> Tensor {
        Tensor::randn(self.shape(), self.dtype())
    }

    #[track_caller]
    fn randint_from(low: i64, high: i64, u: Tensor) -> Tensor {
        if high <= low {
            panic!("randint: empty range {low}..{high}");
        }
        // Truncating the non-negative scaled sample is a floor; the shift happens in integers.
        u.affine((high - low) as f64, 0.0)
            .to_dtype(DType::I64)
            .affine(1.0, low as f64)
    }

    /// Integers uniform in `[low, high)` as i64.
    #[track_caller]
    pub fn randint(low: i64, high: i64, shape: impl DimList) -> Tensor {
        Tensor::randint_from(low, high, Tensor::rand(shape, DType::F64))
    }

    /// Integers uniform in `[low, high)` from an explicit generator.
    #[track_caller]
    pub fn randint_with(low: i64, high: i64, shape: impl DimList, gen: &mut Generator) -> Tensor {
        Tensor::randint_from(low, high, Tensor::rand_with(shape, DType::F64, gen))
    }

    /// 1 with probability `p` (elementwise), else 0, in the dtype of `self` (the probabilities).
    #[track_caller]
    pub fn bernoulli(&self) -> Tensor {
        Tensor::rand(self.shape(), float_or_f32(self.dtype()))
            .lt(self)
            .to_dtype(self.dtype())
    }

    /// [`Tensor::bernoulli`] with an explicit generator.
    #[track_caller]
    pub fn bernoulli_with(&self, gen: &mut Generator) -> Tensor {
        Tensor::rand_with(self.shape(), float_or_f32(self.dtype()), gen)
            .lt(self)
            .to_dtype(self.dtype())
    }
}

fn float_or_f32(d: DType) -> DType {
    if d.is_float() {
        d
    } else {
        DType::F32
    }
}

/// Panics, naming `op`, when `shape` of `dtype` cannot be allocated (see `checked_numel`).
#[track_caller]
fn check_size(shape: &[usize], dtype: DType, op: &str) {
    if let Err(e) = crate::shape::checked_numel(shape, dtype.size_in_bytes()) {
        panic!("{op}: {e}");
    }
}
