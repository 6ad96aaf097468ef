//! Strided layouts: how a tensor's logical indices map onto its storage.

use crate::shape::{numel, padded6, shape_of, Shape};
use smallvec::SmallVec;

/// Strides in elements, one per dimension.
pub type Strides = SmallVec<[usize; 6]>;

/// Shape, strides and offset of a tensor into its storage. Views share storage and differ only
/// in layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Size of each dimension.
    pub shape: Shape,
    /// Elements to skip in storage per step along each dimension (0 for broadcast dims).
    pub strides: Strides,
    /// Index of the first element in storage.
    pub offset: usize,
}

/// Row-major (C order) strides for `shape`.
#[inline(always)]
pub fn contiguous_strides(shape: &[usize]) -> Strides {
    let n = shape.len();
    if n <= 6 {
        // Suffix products over the shape padded with 1s, from constant indices (kept in
        // registers; entries past `n` are ignored).
        let d = padded6(shape, 1);
        let s5 = 1;
        let s4 = d[5];
        let s3 = s4 * d[4];
        let s2 = s3 * d[3];
        let s1 = s2 * d[2];
        let s0 = s1 * d[1];
        return Strides::from_buf_and_len([s0, s1, s2, s3, s4, s5], n);
    }
    let mut s: Strides = SmallVec::from_elem(0, shape.len());
    let mut acc = 1;
    for i in (0..shape.len()).rev() {
        s[i] = acc;
        acc *= shape[i];
    }
    s
}

impl Layout {
    /// A dense row-major layout starting at offset 0.
    pub fn contiguous(shape: &[usize]) -> Layout {
        Layout::contiguous_owned(shape_of(shape))
    }

    /// A dense row-major layout over an already-built `shape` (no copy of the dims).
    #[inline(always)]
    pub fn contiguous_owned(shape: Shape) -> Layout {
        Layout {
            strides: contiguous_strides(&shape),
            shape,
            offset: 0,
        }
    }

    /// Number of elements.
    #[inline]
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }

    /// Number of dimensions.
    #[inline]
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// True when elements are dense in row-major order (size-1 dims may have any stride).
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        self.dense_numel().is_some()
    }

    /// The storage range `[offset, offset + numel)` when contiguous.
    #[inline]
    pub fn contiguous_range(&self) -> Option<std::ops::Range<usize>> {
        self.dense_numel().map(|n| self.offset..self.offset + n)
    }

    /// The number of elements when dense in row-major order (one pass over the dims, which
    /// every kernel's fast path checks).
    #[inline]
    fn dense_numel(&self) -> Option<usize> {
        let mut acc = 1;
        for (&d, &s) in self.shape.iter().zip(self.strides.iter()).rev() {
            if d != 1 && s != acc {
                return None;
            }
            acc *= d;
        }
        Some(acc)
    }

    /// Layout with dims reordered by `perm`.
    pub fn permute(&self, perm: &[usize]) -> Layout {
        Layout {
            shape: perm.iter().map(|&p| self.shape[p]).collect(),
            strides: perm.iter().map(|&p| self.strides[p]).collect(),
            offset: self.offset,
        }
    }

    /// Layout broadcast to `shape` (stride 0 on expanded dims); caller has checked validity.
    pub fn broadcast_to(&self, shape: &[usize]) -> Layout {
        let extra = shape.len() - self.rank();
        let mut strides: Strides = SmallVec::from_elem(0, shape.len());
        for i in 0..self.rank() {
            strides[i + extra] = if self.shape[i] == shape[i + extra] {
                self.strides[i]
            } else {
                0
            };
        }
        Layout {
            shape: shape.into(),
            strides,
            offset: self.offset,
        }
    }

    /// Layout restricted to `start, start+step, ...` (`len` entries) along `dim`.
    pub fn slice(&self, dim: usize, start: usize, len: usize, step: usize) -> Layout {
        let mut l = self.clone();
        l.offset += start * self.strides[dim];
        l.shape[dim] = len;
        l.strides[dim] *= step;
        l
    }

    /// A view with a new shape over the same elements, if the strides allow it without a copy
    /// (PyTorch's `view` rule: each new dim must fall inside a run of mergeable old dims).
    pub fn reshape_view(&self, new_shape: &[usize]) -> Option<Layout> {
        if self.is_contiguous() {
            return Some(Layout {
                shape: new_shape.into(),
                strides: contiguous_strides(new_shape),
                offset: self.offset,
            });
        }
        // Group old dims (ignoring size-1) into chunks that are contiguous among themselves.
        let old: SmallVec<[(usize, usize); 6]> = self
            .shape
            .iter()
            .zip(self.strides.iter())
            .filter(|(s, _)| **s != 1)
            .map(|(s, st)| (*s, *st))
            .collect();
        let mut new_strides: Strides = SmallVec::from_elem(0, new_shape.len());
        let mut oi = 0;
        let mut ni = 0;
        while ni < new_shape.len() {
            if new_shape[ni] == 1 {
                new_strides[ni] = 1;
                ni += 1;
                continue;
            }
            if oi >= old.len() {
                return None;
            }
            // Take a chunk of old dims that merge (stride[i] == stride[i+1]*size[i+1]).
            let chunk_start = oi;
            let mut chunk_size = old[oi].0;
            while oi + 1 < old.len() && old[oi].1 == old[oi + 1].1 * old[oi + 1].0 {
                oi += 1;
                chunk_size *= old[oi].0;
            }
            let inner_stride = old[oi].1;
            oi += 1;
            let _ = chunk_start;
            // Fill new dims whose product equals chunk_size.
            let mut prod = 1;
            let first_new = ni;
            while ni < new_shape.len() && prod < chunk_size {
                prod *= new_shape[ni];
                ni += 1;
            }
            if prod != chunk_size {
                return None;
            }
            let mut st = inner_stride;
            for j in (first_new..ni).rev() {
                new_strides[j] = st;
                st *= new_shape[j];
            }
        }
        if oi != old.len() {
            return None;
        }
        Some(Layout {
            shape: new_shape.into(),
            strides: new_strides,
            offset: self.offset,
        })
    }

    /// Storage index of the element at `index`.
    pub fn storage_index(&self, index: &[usize]) -> usize {
        self.offset
            + index
                .iter()
                .zip(self.strides.iter())
                .map(|(i, s)| i * s)
                .sum::<usize>()
    }

    /// Largest storage index touched plus one (0 for empty tensors).
    pub fn storage_extent(&self) -> usize {
        if self.numel() == 0 {
            return 0;
        }
        self.offset
            + self
                .shape
                .iter()
                .zip(self.strides.iter())
                .map(|(d, s)| (d - 1) * s)
                .sum::<usize>()
            + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguity_and_transpose() {
        let l = Layout::contiguous(&[2, 3]);
        assert!(l.is_contiguous());
        let t = l.permute(&[1, 0]);
        assert!(!t.is_contiguous());
        assert_eq!(t.strides.as_slice(), &[1, 3]);
    }

    #[test]
    fn reshape_view_of_sliced_tensor() {
        // [4, 6] narrowed to columns 0..6 step 1 of rows 1..3 is still row-contiguous chunks.
        let l = Layout::contiguous(&[4, 6]).slice(0, 1, 2, 1);
        let v = l.reshape_view(&[2, 2, 3]).unwrap();
        assert_eq!(v.strides.as_slice(), &[6, 3, 1]);
        // A transposed layout cannot be flattened without a copy.
        let t = Layout::contiguous(&[2, 3]).permute(&[1, 0]);
        assert!(t.reshape_view(&[6]).is_none());
        assert!(t.reshape_view(&[3, 1, 2]).is_some());
    }
}
