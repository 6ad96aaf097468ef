//! Shapes, dimension arguments and broadcasting rules.

use smallvec::SmallVec;

/// Dimensions of a tensor; no heap allocation up to rank 6.
pub type Shape = SmallVec<[usize; 6]>;

/// Number of elements of a shape that is already known to be valid (see [`checked_numel`]).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// The most bytes one tensor may span: Rust's allocation limit, `isize::MAX`.
pub const MAX_TENSOR_BYTES: usize = isize::MAX as usize;

/// A shape whose elements (or strides) do not fit in memory; see [`checked_numel`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SizeError {
    /// The refused shape.
    pub shape: Shape,
    /// Bytes per element.
    pub elem_bytes: usize,
}

impl std::fmt::Display for SizeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "shape {:?} is too large: its {}-byte elements would span more than isize::MAX bytes",
            self.shape, self.elem_bytes
        )
    }
}

impl std::error::Error for SizeError {}

/// Number of elements of `shape`, checked: the product of its dims (zeros counted as 1, so
/// that every row-major stride fits too) times `elem_bytes` must not exceed
/// [`MAX_TENSOR_BYTES`]. Every shape that reaches storage or a kernel passes this once, so
/// [`numel`] and stride arithmetic after it cannot wrap.
pub fn checked_numel(shape: &[usize], elem_bytes: usize) -> Result<usize, SizeError> {
    let limit = MAX_TENSOR_BYTES / elem_bytes.max(1);
    let mut span = 1usize;
    let mut empty = false;
    for &d in shape {
        empty |= d == 0;
        span = match span.checked_mul(d.max(1)) {
            Some(s) if s <= limit => s,
            _ => {
                return Err(SizeError {
                    shape: shape_of(shape),
                    elem_bytes,
                })
            }
        };
    }
    Ok(if empty { 0 } else { span })
}

/// The first six entries of `dims`, padded with `fill`; built from constant indices so the
/// result stays in registers (no per-element stores followed by a wide copy).
#[inline(always)]
pub(crate) fn padded6(dims: &[usize], fill: usize) -> [usize; 6] {
    let n = dims.len();
    let g = |i: usize| if i < n { dims[i] } else { fill };
    [g(0), g(1), g(2), g(3), g(4), g(5)]
}

/// A [`Shape`] copied from a slice (straight into the inline buffer up to rank 6).
#[inline]
pub fn shape_of(dims: &[usize]) -> Shape {
    let n = dims.len();
    if n <= 6 {
        Shape::from_buf_and_len(padded6(dims, 0), n)
    } else {
        Shape::from_slice(dims)
    }
}

/// Shape equality as a short inline loop (ranks are tiny; avoids a `memcmp` call).
#[inline]
pub fn same_shape(a: &[usize], b: &[usize]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// Integer types accepted where Kiln takes a dimension index or size
/// (`usize`, `isize`, `i32`, `i64`, `u32`); negative dims count from the end.
pub trait DimInt: Copy {
    /// The value as a signed integer.
    fn as_i64(self) -> i64;
}
macro_rules! dim_int {
    ($($t:ty),*) => {$(impl DimInt for $t { #[inline] fn as_i64(self) -> i64 { self as i64 } })*};
}
dim_int!(usize, isize, i32, i64, u32);

/// Resolves a possibly negative dim against `rank`, panicking with `op` on misuse.
#[track_caller]
pub fn resolve_dim(dim: impl DimInt, rank: usize, op: &str) -> usize {
    let d = dim.as_i64();
    let r = rank as i64;
    let rd = if d < 0 { d + r } else { d };
    if rd < 0 || rd >= r.max(1) || (r == 0 && rd != 0) {
        panic!("{op}: dim {d} is out of range for a tensor of rank {rank}");
    }
    rd as usize
}

/// Anything that lists dims or sizes: arrays, slices and vectors of [`DimInt`].
pub trait DimList {
    /// The entries as signed integers.
    fn to_i64s(&self) -> SmallVec<[i64; 6]>;
}
impl<T: DimInt, const N: usize> DimList for [T; N] {
    fn to_i64s(&self) -> SmallVec<[i64; 6]> {
        self.iter().map(|d| d.as_i64()).collect()
    }
}
impl<T: DimInt, const N: usize> DimList for &[T; N] {
    fn to_i64s(&self) -> SmallVec<[i64; 6]> {
        self.iter().map(|d| d.as_i64()).collect()
    }
}
impl<T: DimInt> DimList for &[T] {
    fn to_i64s(&self) -> SmallVec<[i64; 6]> {
        self.iter().map(|d| d.as_i64()).collect()
    }
}
impl<T: DimInt> DimList for Vec<T> {
    fn to_i64s(&self) -> SmallVec<[i64; 6]> {
        self.iter().map(|d| d.as_i64()).collect()
    }
}
impl<T: DimInt> DimList for &Vec<T> {
    fn to_i64s(&self) -> SmallVec<[i64; 6]> {
        self.iter().map(|d| d.as_i64()).collect()
    }
}
impl DimList for Shape {
    fn to_i64s(&self) -> SmallVec<[i64; 6]> {
        self.iter().map(|d| *d as i64).collect()
    }
}
impl DimList for &Shape {
    fn to_i64s(&self) -> SmallVec<[i64; 6]> {
        self.iter().map(|d| *d as i64).collect()
    }
}
impl DimList for () {
    fn to_i64s(&self) -> SmallVec<[i64; 6]> {
        SmallVec::new()
    }
}
// One integer is a list of one, as in PyTorch: `x.sum(1, false)`, `Tensor::zeros(3, ..)`.
macro_rules! dim_list_of_one {
    ($($t:ty),*) => {$(impl DimList for $t {
        fn to_i64s(&self) -> SmallVec<[i64; 6]> {
            smallvec::smallvec![self.as_i64()]
        }
    })*};
}
dim_list_of_one!(usize, isize, i32, i64, u32);

/// Converts a list of non-negative sizes into a [`Shape`] for elements of `elem_bytes` bytes,
/// panicking (naming `op`) on negative sizes and on shapes [`checked_numel`] refuses.
#[track_caller]
pub fn to_shape(list: impl DimList, op: &str, elem_bytes: usize) -> Shape {
    let mut shape = Shape::new();
    for d in list.to_i64s() {
        if d < 0 {
            panic!("{op}: negative size {d} in shape");
        }
        shape.push(d as usize);
    }
    if let Err(e) = checked_numel(&shape, elem_bytes) {
        panic!("{op}: {e}");
    }
    shape
}

/// Resolves a list of possibly negative dims, sorted and de-duplicated.
#[track_caller]
pub fn resolve_dims(list: impl DimList, rank: usize, op: &str) -> SmallVec<[usize; 6]> {
    let mut v: SmallVec<[usize; 6]> = SmallVec::new();
    for d in list.to_i64s() {
        v.push(resolve_dim(d, rank, op));
    }
    v.sort_unstable();
    v.dedup();
    v
}

/// NumPy broadcasting of two shapes; `None` if incompatible.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Shape> {
    let rank = a.len().max(b.len());
    let mut out = Shape::with_capacity(rank);
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        out.push(match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        });
    }
    Some(out)
}

/// Resolves a target shape that may contain one `-1` against `numel` elements.
#[track_caller]
pub fn infer_reshape(list: impl DimList, numel_in: usize, from: &[usize]) -> Shape {
    let dims = list.to_i64s();
    let mut infer_at = None;
    let mut known = 1usize;
    for (i, &d) in dims.iter().enumerate() {
        if d == -1 {
            if infer_at.replace(i).is_some() {
                panic!("reshape: {from:?} -> {dims:?}: only one dimension can be -1");
            }
        } else if d < 0 {
            panic!("reshape: {from:?} -> {dims:?}: invalid size {d}");
        } else {
            // A product past usize cannot equal `numel_in`; saturating keeps the message.
            known = known.saturating_mul(d as usize);
        }
    }
    let mut shape: Shape = dims.iter().map(|&d| d.max(0) as usize).collect();
    if let Some(i) = infer_at {
        if known == 0 || !numel_in.is_multiple_of(known) {
            panic!("reshape: shape {dims:?} is invalid for input of shape {from:?} ({numel_in} elements)");
        }
        shape[i] = numel_in / known;
    } else if known != numel_in {
        panic!(
            "reshape: shape {dims:?} is invalid for input of shape {from:?} ({numel_in} elements)"
        );
    }
    shape
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(
            broadcast_shapes(&[2, 1, 3], &[4, 1]).unwrap().as_slice(),
            &[2, 4, 3]
        );
        assert_eq!(broadcast_shapes(&[], &[5]).unwrap().as_slice(), &[5]);
        assert!(broadcast_shapes(&[2, 3], &[4, 3]).is_none());
    }

    #[test]
    fn reshape_infers_minus_one() {
        assert_eq!(infer_reshape([2, -1], 12, &[3, 4]).as_slice(), &[2, 6]);
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn bad_dim_panics() {
        resolve_dim(3, 2, "sum");
    }
}
