//! Indexing and joining: index_select, gather, scatter_add, cat, stack, split, chunk,
//! one_hot, tril/triu and `x.i((.., 1..3))` slicing.

use super::Tensor;
use crate::dtype::DType;
use crate::ops::{dispatch, Op};
use crate::shape::{resolve_dim, DimInt};
use std::borrow::Borrow;
use std::ops::{Range, RangeFrom, RangeFull, RangeInclusive, RangeTo};

impl Tensor {
    /// Entries of `self` at the i64 positions `index` along `dim`.
    #[track_caller]
    pub fn index_select(&self, dim: impl DimInt, index: &Tensor) -> Tensor {
        let d = resolve_dim(dim, self.rank(), "index_select");
        dispatch(Op::IndexSelect(d), &[self, index])
    }

    /// `self` with slices of `src` added at positions `index` along `dim` (out of place).
    #[track_caller]
    pub fn index_add(&self, dim: impl DimInt, index: &Tensor, src: &Tensor) -> Tensor {
        let d = resolve_dim(dim, self.rank(), "index_add");
        dispatch(Op::IndexAdd(d), &[self, index, src])
    }

    /// `out[..i..] = self[..index[..i..]..]` along `dim`, like `torch.gather`.
    #[track_caller]
    pub fn gather(&self, dim: impl DimInt, index: &Tensor) -> Tensor {
        let d = resolve_dim(dim, self.rank(), "gather");
        dispatch(Op::Gather(d), &[self, index])
    }

    /// `self` with `src` added at positions `index` along `dim`, like `torch.scatter_add`.
    #[track_caller]
    pub fn scatter_add(&self, dim: impl DimInt, index: &Tensor, src: &Tensor) -> Tensor {
        let d = resolve_dim(dim, self.rank(), "scatter_add");
        dispatch(Op::ScatterAdd(d), &[self, index, src])
    }

    /// Concatenates tensors along `dim`.
    #[track_caller]
    pub fn cat<T: Borrow<Tensor>>(tensors: &[T], dim: impl DimInt) -> Tensor {
        let refs: Vec<&Tensor> = tensors.iter().map(|t| t.borrow()).collect();
        if refs.is_empty() {
            panic!("cat: expected a non-empty list of tensors");
        }
        let d = resolve_dim(dim, refs[0].rank(), "cat");
        if refs.len() == 1 {
            return refs[0].clone();
        }
        dispatch(Op::Cat(d), &refs)
    }

    /// Stacks same-shaped tensors along a new dim.
    #[track_caller]
    pub fn stack<T: Borrow<Tensor>>(tensors: &[T], dim: impl DimInt) -> Tensor {
        if tensors.is_empty() {
            panic!("stack: expected a non-empty list of tensors");
        }
        let first = tensors[0].borrow();
        let d = resolve_dim(dim, first.rank() + 1, "stack");
        for t in tensors {
            if t.borrow().shape() != first.shape() {
                panic!(
                    "stack: shapes differ: {:?} and {:?}",
                    first.shape(),
                    t.borrow().shape()
                );
            }
        }
        let parts: Vec<Tensor> = tensors.iter().map(|t| t.borrow().unsqueeze(d)).collect();
        Tensor::cat(&parts, d)
    }

    /// Splits into pieces of `size` along `dim` (the last may be smaller).
    #[track_caller]
    pub fn split(&self, size: usize, dim: impl DimInt) -> Vec<Tensor> {
        let d = resolve_dim(dim, self.rank(), "split");
        if size == 0 {
            panic!("split: size must be positive");
        }
        let n = self.shape()[d];
        (0..n)
            .step_by(size)
            .map(|s| self.narrow(d, s, size.min(n - s)))
            .collect()
    }

    /// Splits into pieces of the given sizes along `dim`.
    #[track_caller]
    pub fn split_sizes(&self, sizes: &[usize], dim: impl DimInt) -> Vec<Tensor> {
        let d = resolve_dim(dim, self.rank(), "split");
        if sizes.iter().sum::<usize>() != self.shape()[d] {
            panic!(
                "split: sizes {:?} do not add up to dim {d} of shape {:?}",
                sizes,
                self.shape()
            );
        }
        let mut start = 0;
        sizes
            .iter()
            .map(|&s| {
                let t = self.narrow(d, start, s);
                start += s;
                t
            })
            .collect()
    }

    /// Splits into `chunks` nearly equal pieces along `dim`, like `torch.chunk`.
    #[track_caller]
    pub fn chunk(&self, chunks: usize, dim: impl DimInt) -> Vec<Tensor> {
        let d = resolve_dim(dim, self.rank(), "chunk");
        if chunks == 0 {
            panic!("chunk: number of chunks must be positive");
        }
        self.split(self.shape()[d].div_ceil(chunks).max(1), d)
    }

    /// One-hot encoding of i64 class indices: shape `[.., num_classes]`, i64.
    #[track_caller]
    pub fn one_hot(&self, num_classes: usize) -> Tensor {
        if self.dtype().is_float() || self.dtype() == DType::Bool {
            panic!(
                "one_hot: needs an integer tensor of class indices, got {}",
                self.dtype()
            );
        }
        let classes = Tensor::arange(0.0, num_classes as f64, 1.0, DType::I64);
        self.to_dtype(DType::I64)
            .unsqueeze(-1)
            .eq(&classes)
            .to_dtype(DType::I64)
    }

    fn diagonal_mask(&self, k: i64, lower: bool) -> Tensor {
        if self.rank() < 2 {
            panic!("tril/triu: needs rank ≥ 2, got shape {:?}", self.shape());
        }
        let (h, w) = (self.shape()[self.rank() - 2], self.shape()[self.rank() - 1]);
        let rows = Tensor::arange(0.0, h as f64, 1.0, DType::I64).unsqueeze(1);
        let cols = Tensor::arange(0.0, w as f64, 1.0, DType::I64).unsqueeze(0);
        let diff = &cols - &rows;
        if lower {
            diff.le_scalar(k as f64)
        } else {
            diff.ge_scalar(k as f64)
        }
    }

    /// Lower triangle (entries with col − row ≤ k), zeros elsewhere.
    #[track_caller]
    pub fn tril(&self, k: i64) -> Tensor {
        let z = Tensor::scalar(0.0, self.dtype());
        Tensor::where_(&self.diagonal_mask(k, true), self, &z)
    }

    /// Upper triangle (entries with col − row ≥ k), zeros elsewhere.
    #[track_caller]
    pub fn triu(&self, k: i64) -> Tensor {
        let z = Tensor::scalar(0.0, self.dtype());
        Tensor::where_(&self.diagonal_mask(k, false), self, &z)
    }

    /// NumPy-style basic indexing: an integer selects (and drops) a dim, a range slices it.
    /// `x.i((.., 1..3))`, `x.i(0)`, `x.i((2, ..))`.
    #[track_caller]
    pub fn i(&self, index: impl IndexArg) -> Tensor {
        index.apply(self)
    }
}

/// One entry of a [`Tensor::i`] index: an integer or a range.
pub trait IndexItem {
    /// Applies to `dim`; returns the result and whether the dim was removed.
    fn apply_dim(&self, t: &Tensor, dim: usize) -> (Tensor, bool);
}

impl IndexItem for usize {
    fn apply_dim(&self, t: &Tensor, dim: usize) -> (Tensor, bool) {
        if *self >= t.shape()[dim] {
            panic!(
                "index: index {} is out of range for dim {dim} of shape {:?}",
                self,
                t.shape()
            );
        }
        (t.narrow(dim, *self, 1).squeeze(dim), true)
    }
}
impl IndexItem for RangeFull {
    fn apply_dim(&self, t: &Tensor, _dim: usize) -> (Tensor, bool) {
        (t.clone(), false)
    }
}
impl IndexItem for Range<usize> {
    fn apply_dim(&self, t: &Tensor, dim: usize) -> (Tensor, bool) {
        (t.slice(dim, self.start, self.end, 1), false)
    }
}
impl IndexItem for RangeFrom<usize> {
    fn apply_dim(&self, t: &Tensor, dim: usize) -> (Tensor, bool) {
        (t.slice(dim, self.start, usize::MAX, 1), false)
    }
}
impl IndexItem for RangeTo<usize> {
    fn apply_dim(&self, t: &Tensor, dim: usize) -> (Tensor, bool) {
        (t.slice(dim, 0, self.end, 1), false)
    }
}
impl IndexItem for RangeInclusive<usize> {
    fn apply_dim(&self, t: &Tensor, dim: usize) -> (Tensor, bool) {
        (t.slice(dim, *self.start(), self.end() + 1, 1), false)
    }
}

/// A full index for [`Tensor::i`]: one item or a tuple of items, applied from dim 0.
pub trait IndexArg {
    /// Applies the index.
    fn apply(&self, t: &Tensor) -> Tensor;
}

impl<A: IndexItem> IndexArg for A {
    fn apply(&self, t: &Tensor) -> Tensor {
        self.apply_dim(t, 0).0
    }
}

macro_rules! index_tuple {
    ($($name:ident),+) => {
        impl<$($name: IndexItem),+> IndexArg for ($($name,)+) {
            #[allow(non_snake_case, unused_assignments)]
            fn apply(&self, t: &Tensor) -> Tensor {
                let ($($name,)+) = self;
                let mut cur = t.clone();
                let mut dim = 0;
                $(
                    if dim >= cur.rank() {
                        panic!("index: too many indices for a tensor of shape {:?}", t.shape());
                    }
                    let (next, removed) = $name.apply_dim(&cur, dim);
                    cur = next;
                    if !removed { dim += 1; }
                )+
                cur
            }
        }
    };
}
index_tuple!(A);
index_tuple!(A, B);
index_tuple!(A, B, C);
index_tuple!(A, B, C, D);
index_tuple!(A, B, C, D, E);
