//! Reductions over dims (an empty dim list means all dims).

use super::Tensor;
use crate::ops::{dispatch, Dims, Op};
use crate::shape::{resolve_dim, resolve_dims, DimInt, DimList};

impl Tensor {
    #[track_caller]
    fn reduce_dims(&self, dims: impl DimList, op: &str) -> Dims {
        let d = resolve_dims(dims, self.rank(), op);
        if d.is_empty() {
            (0..self.rank()).collect()
        } else {
            d
        }
    }

    #[track_caller]
    fn check_float(&self, op: &str) {
        if !self.dtype().is_float() {
            panic!(
                "{op}: needs a float tensor, got {} with shape {:?}",
                self.dtype(),
                self.shape()
            );
        }
    }

    /// Sum over `dims` (all when empty).
    #[track_caller]
    pub fn sum(&self, dims: impl DimList, keepdim: bool) -> Tensor {
        let dims = self.reduce_dims(dims, "sum");
        dispatch(Op::Sum { dims, keepdim }, &[self])
    }

    /// Sum of all elements (0-d).
    #[track_caller]
    pub fn sum_all(&self) -> Tensor {
        self.sum((), false)
    }

    /// Mean over `dims` (all when empty).
    #[track_caller]
    pub fn mean(&self, dims: impl DimList, keepdim: bool) -> Tensor {
        self.check_float("mean");
        let dims = self.reduce_dims(dims, "mean");
        self.div_by_count(self.sum(dims.clone(), keepdim), dims, 0.0)
    }

    /// `t / (n − minus)` for `n` elements of `self` over `dims`: a scalar division eagerly,
    /// a division by [`Tensor::count`] (read from the shape when the graph runs) while tracing.
    fn div_by_count(&self, t: Tensor, dims: Dims, minus: f64) -> Tensor {
        if crate::trace::is_tracing() {
            let n = self.count(dims, self.dtype());
            let n = if minus == 0.0 { n } else { n.sub_scalar(minus) };
            return &t / &n;
        }
        let n: usize = dims.iter().map(|&d| self.shape()[d]).product();
        t.div_scalar(n as f64 - minus)
    }

    /// The number of elements over `dims` (all when empty) as a 0-d `dtype` tensor that never
    /// requires grad: a mean's divisor. Traced by `compile`, it is read from the shape when
    /// the graph runs, so a graph with a symbolic batch dim divides by the batch it is given
    /// (a plain `n as f64` would freeze the traced batch size into the graph).
    #[track_caller]
    pub fn count(&self, dims: impl DimList, dtype: crate::DType) -> Tensor {
        let dims = self.reduce_dims(dims, "count");
        if !crate::trace::is_tracing() {
            let n: usize = dims.iter().map(|&d| self.shape()[d]).product();
            return Tensor::scalar(n as f64, dtype);
        }
        crate::autograd::no_grad(|| dispatch(Op::Numel { dims, dtype }, &[self]))
    }

    /// Mean of all elements (0-d).
    #[track_caller]
    pub fn mean_all(&self) -> Tensor {
        self.mean((), false)
    }

    /// Variance over `dims`; `unbiased` divides by n − 1 (Bessel's correction).
    #[track_caller]
    pub fn var(&self, dims: impl DimList, unbiased: bool, keepdim: bool) -> Tensor {
        self.check_float("var");
        let dims = self.reduce_dims(dims, "var");
        let centered = self - &self.mean(dims.clone(), true);
        let bessel = if unbiased { 1.0 } else { 0.0 };
        self.div_by_count(centered.square().sum(dims.clone(), keepdim), dims, bessel)
    }

    /// Variance of all elements.
    #[track_caller]
    pub fn var_all(&self, unbiased: bool) -> Tensor {
        self.var((), unbiased, false)
    }

    /// Standard deviation over `dims`.
    #[track_caller]
    pub fn std(&self, dims: impl DimList, unbiased: bool, keepdim: bool) -> Tensor {
        self.var(dims, unbiased, keepdim).sqrt()
    }

    /// Standard deviation of all elements.
    #[track_caller]
    pub fn std_all(&self, unbiased: bool) -> Tensor {
        self.var_all(unbiased).sqrt()
    }

    /// Max over `dims` (all when empty), like `torch.amax`.
    #[track_caller]
    pub fn amax(&self, dims: impl DimList, keepdim: bool) -> Tensor {
        let dims = self.reduce_dims(dims, "amax");
        dispatch(Op::Max { dims, keepdim }, &[self])
    }

    /// Min over `dims` (all when empty), like `torch.amin`.
    #[track_caller]
    pub fn amin(&self, dims: impl DimList, keepdim: bool) -> Tensor {
        let dims = self.reduce_dims(dims, "amin");
        dispatch(Op::Min { dims, keepdim }, &[self])
    }

    /// Largest element (0-d).
    #[track_caller]
    pub fn max_all(&self) -> Tensor {
        self.amax((), false)
    }

    /// Smallest element (0-d).
    #[track_caller]
    pub fn min_all(&self) -> Tensor {
        self.amin((), false)
    }

    /// Max along `dim`: (values, i64 indices), like `torch.max(x, dim)`.
    #[track_caller]
    pub fn max_dim(&self, dim: impl DimInt, keepdim: bool) -> (Tensor, Tensor) {
        let d = resolve_dim(dim, self.rank(), "max");
        (self.amax([d], keepdim), self.argmax(d, keepdim))
    }

    /// Min along `dim`: (values, i64 indices).
    #[track_caller]
    pub fn min_dim(&self, dim: impl DimInt, keepdim: bool) -> (Tensor, Tensor) {
        let d = resolve_dim(dim, self.rank(), "min");
        (self.amin([d], keepdim), self.argmin(d, keepdim))
    }

    /// Index of the max along `dim` (i64).
    #[track_caller]
    pub fn argmax(&self, dim: impl DimInt, keepdim: bool) -> Tensor {
        let dim = resolve_dim(dim, self.rank(), "argmax");
        dispatch(Op::ArgMax { dim, keepdim }, &[self])
    }

    /// Index of the min along `dim` (i64).
    #[track_caller]
    pub fn argmin(&self, dim: impl DimInt, keepdim: bool) -> Tensor {
        let dim = resolve_dim(dim, self.rank(), "argmin");
        dispatch(Op::ArgMin { dim, keepdim }, &[self])
    }

    /// Index of the max of the flattened tensor.
    #[track_caller]
    pub fn argmax_all(&self) -> Tensor {
        self.flatten_all().argmax(0, false)
    }

    /// Product over `dims` (all when empty).
    #[track_caller]
    pub fn prod(&self, dims: impl DimList, keepdim: bool) -> Tensor {
        let dims = self.reduce_dims(dims, "prod");
        dispatch(Op::Prod { dims, keepdim }, &[self])
    }

    /// log Σ exp over `dims`, computed stably around the max.
    #[track_caller]
    pub fn logsumexp(&self, dims: impl DimList, keepdim: bool) -> Tensor {
        self.check_float("logsumexp");
        let dims = self.reduce_dims(dims, "logsumexp");
        // The shift is a constant for the gradient: d/dx of the result is softmax either way.
        let m = self.amax(dims.clone(), true).detach();
        let m = m.masked_fill(&m.abs().eq_scalar(f64::INFINITY), 0.0);
        let out = (self - &m).exp().sum(dims.clone(), true).log() + &m;
        if keepdim {
            out
        } else {
            let shape: Vec<usize> = self
                .shape()
                .iter()
                .enumerate()
                .filter(|(i, _)| !dims.contains(i))
                .map(|(_, &s)| s)
                .collect();
            out.reshape(shape)
        }
    }
}
