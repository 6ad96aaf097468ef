//! Shape and view operations: reshape, permute, slicing, broadcasting.

use super::Tensor;
use crate::ops::{dispatch, Op};
use crate::shape::{infer_reshape, resolve_dim, DimInt, DimList, Shape};

impl Tensor {
    /// Same elements in a new shape (one dim may be −1). A view when strides allow, else a copy.
    #[track_caller]
    pub fn reshape(&self, shape: impl DimList) -> Tensor {
        let shape = infer_reshape(shape, self.numel(), self.shape());
        if shape.as_slice() == self.shape() {
            return self.clone();
        }
        dispatch(Op::Reshape(shape), &[self])
    }

    /// Like [`Tensor::reshape`] but panics instead of copying when no view is possible.
    #[track_caller]
    pub fn view(&self, shape: impl DimList) -> Tensor {
        let shape = infer_reshape(shape, self.numel(), self.shape());
        if self.layout().reshape_view(&shape).is_none() {
            panic!(
                "view: size {:?} is not compatible with the strides {:?} of a tensor of shape {:?}; use reshape",
                shape,
                self.strides(),
                self.shape()
            );
        }
        self.reshape(shape)
    }

    /// Reorders dims (a view).
    #[track_caller]
    pub fn permute(&self, dims: impl DimList) -> Tensor {
        let perm: crate::ops::Dims = dims
            .to_i64s()
            .iter()
            .map(|&d| resolve_dim(d, self.rank(), "permute"))
            .collect();
        if perm.iter().enumerate().all(|(i, &p)| i == p) && perm.len() == self.rank() {
            return self.clone();
        }
        dispatch(Op::Permute(perm), &[self])
    }

    /// Swaps two dims (a view).
    #[track_caller]
    pub fn transpose(&self, d0: impl DimInt, d1: impl DimInt) -> Tensor {
        let (a, b) = (
            resolve_dim(d0, self.rank(), "transpose"),
            resolve_dim(d1, self.rank(), "transpose"),
        );
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(perm)
    }

    /// Transpose of a matrix (rank ≤ 2), like `torch.t`.
    #[track_caller]
    pub fn t(&self) -> Tensor {
        match self.rank() {
            0 | 1 => self.clone(),
            2 => self.transpose(0, 1),
            r => panic!(
                "t: expects a tensor of rank ≤ 2, got rank {r} with shape {:?}; use transpose",
                self.shape()
            ),
        }
    }

    /// Entries `start..start+len` along `dim` (a view).
    #[track_caller]
    pub fn narrow(&self, dim: impl DimInt, start: usize, len: usize) -> Tensor {
        self.slice_step(dim, start, len, 1)
    }

    /// `len` entries from `start` with stride `step` along `dim` (a view).
    #[track_caller]
    pub fn slice_step(&self, dim: impl DimInt, start: usize, len: usize, step: usize) -> Tensor {
        let d = resolve_dim(dim, self.rank(), "slice");
        if start == 0 && step == 1 && len == self.shape()[d] {
            return self.clone();
        }
        dispatch(
            Op::Slice {
                dim: d,
                start,
                len,
                step,
            },
            &[self],
        )
    }

    /// Entries `start..end` (exclusive, clamped) with `step` along `dim`, like `x[start:end:step]`.
    #[track_caller]
    pub fn slice(&self, dim: impl DimInt, start: usize, end: usize, step: usize) -> Tensor {
        let d = resolve_dim(dim, self.rank(), "slice");
        let end = end.min(self.shape()[d]);
        let len = if end > start {
            (end - start).div_ceil(step.max(1))
        } else {
            0
        };
        self.slice_step(d, start.min(self.shape()[d]), len, step)
    }

    /// Zeros of size `size` along `dim` with `src` written at `start, start+step, …`.
    #[track_caller]
    pub fn slice_scatter_zeros(
        src: &Tensor,
        dim: usize,
        start: usize,
        step: usize,
        size: usize,
    ) -> Tensor {
        dispatch(
            Op::SliceScatter {
                dim,
                start,
                step,
                size,
            },
            &[src],
        )
    }

    /// Removes `dim` if it has size 1.
    #[track_caller]
    pub fn squeeze(&self, dim: impl DimInt) -> Tensor {
        let d = resolve_dim(dim, self.rank(), "squeeze");
        if self.shape()[d] != 1 {
            return self.clone();
        }
        let mut s: Shape = self.shape().into();
        s.remove(d);
        self.reshape(s)
    }

    /// Removes every size-1 dim.
    #[track_caller]
    pub fn squeeze_all(&self) -> Tensor {
        let s: Shape = self.shape().iter().copied().filter(|&d| d != 1).collect();
        self.reshape(s)
    }

    /// Inserts a size-1 dim at `dim` (−1 appends).
    #[track_caller]
    pub fn unsqueeze(&self, dim: impl DimInt) -> Tensor {
        let d = resolve_dim(dim, self.rank() + 1, "unsqueeze");
        let mut s: Shape = self.shape().into();
        s.insert(d, 1);
        self.reshape(s)
    }

    /// Broadcasts to `shape` without copying; −1 keeps a dim's size (like `torch.expand`).
    #[track_caller]
    pub fn expand(&self, shape: impl DimList) -> Tensor {
        let want = shape.to_i64s();
        if want.len() < self.rank() {
            panic!(
                "expand: cannot expand shape {:?} to {:?}: too few dims",
                self.shape(),
                want
            );
        }
        let lead = want.len() - self.rank();
        let s: Shape = want
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                if w == -1 && i >= lead {
                    self.shape()[i - lead]
                } else if w < 0 {
                    panic!(
                        "expand: size {w} at dim {i} is not allowed (-1 only keeps an existing dim): {:?} to {:?}",
                        self.shape(),
                        want
                    );
                } else {
                    w as usize
                }
            })
            .collect();
        if s.as_slice() == self.shape() {
            return self.clone();
        }
        dispatch(Op::Expand(s), &[self])
    }

    /// Alias of [`Tensor::expand`].
    #[track_caller]
    pub fn broadcast_to(&self, shape: impl DimList) -> Tensor {
        self.expand(shape)
    }

    /// Broadcasts to the shape of `other`.
    #[track_caller]
    pub fn expand_as(&self, other: &Tensor) -> Tensor {
        self.expand(other.shape())
    }

    /// Merges dims `start..=end` into one.
    #[track_caller]
    pub fn flatten(&self, start: impl DimInt, end: impl DimInt) -> Tensor {
        if self.rank() == 0 {
            return self.reshape([1]);
        }
        let (a, b) = (
            resolve_dim(start, self.rank(), "flatten"),
            resolve_dim(end, self.rank(), "flatten"),
        );
        if a > b {
            panic!("flatten: start dim {a} is after end dim {b}");
        }
        let mut s: Shape = self.shape()[..a].into();
        s.push(self.shape()[a..=b].iter().product());
        s.extend_from_slice(&self.shape()[b + 1..]);
        self.reshape(s)
    }

    /// All elements as a 1-D tensor.
    #[track_caller]
    pub fn flatten_all(&self) -> Tensor {
        self.reshape([self.numel()])
    }

    /// A dense row-major tensor (`self` if already contiguous).
    #[track_caller]
    pub fn contiguous(&self) -> Tensor {
        if self.is_contiguous() {
            return self.clone();
        }
        dispatch(Op::Contiguous, &[self])
    }

    /// A dense copy that shares no storage with `self` (keeps autograd history).
    #[track_caller]
    pub fn copy(&self) -> Tensor {
        dispatch(Op::Contiguous, &[self])
    }
}
