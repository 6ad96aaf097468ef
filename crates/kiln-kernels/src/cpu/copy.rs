//! Copies: making a tensor dense, dtype casts, concatenation, slice scatter and in-place
//! strided writes.

use super::dst::Dst;
use super::strided::for_each_run;
use super::to_contiguous_vec_in;
use crate::dtype::{DType, Element};
use crate::layout::Layout;
use crate::operand::{Operand, OwnedOperand};
use crate::storage::{CpuStorage, StorageElement};
use crate::{with_dtype, with_storage};
use half::{bf16, f16};

/// A dense row-major copy of `x`.
pub fn contiguous(x: Operand<'_>) -> CpuStorage {
    contiguous_in(x, &mut Dst::fresh())
}

/// [`contiguous`] into a vector from `dst`.
pub(crate) fn contiguous_in(x: Operand<'_>, dst: &mut Dst) -> CpuStorage {
    fn go<T: StorageElement>(x: Operand<'_>, dst: &mut Dst) -> CpuStorage {
        T::wrap(to_contiguous_vec_in::<T>(x, dst))
    }
    with_dtype!(x.dtype(), T => go::<T>(x, dst))
}

/// One value converted: between integer types (and bool) through `i128`, wrapping as C and
/// NumPy casts do; everything else through f64.
#[inline(always)]
fn convert_one<S: Element, D: Element>(v: S) -> D {
    let int = |d: DType| d.is_int() || d == DType::Bool;
    if int(S::DTYPE) && int(D::DTYPE) {
        D::from_i128(v.to_i128())
    } else {
        D::from_f64(v.to_f64())
    }
}

fn convert<S: Element, D: StorageElement>(src: Vec<S>) -> CpuStorage {
    D::wrap(src.into_iter().map(convert_one::<S, D>).collect())
}

fn cast_vec<S: Element>(src: Vec<S>, to: DType) -> CpuStorage {
    with_dtype!(to, D => convert::<S, D>(src))
}

/// A dense copy of `x` converted to `to` (floats to ints truncate toward zero).
pub fn cast(x: Operand<'_>, to: DType) -> CpuStorage {
    cast_in(x, to, &mut Dst::fresh())
}

/// [`cast`] into a vector from `dst`: a dense `x` is converted straight from its buffer.
pub(crate) fn cast_in(x: Operand<'_>, to: DType, dst: &mut Dst) -> CpuStorage {
    if x.dtype() == to {
        return contiguous_in(x, dst);
    }
    let Some(r) = x.layout().contiguous_range() else {
        return cast_strided(x, to);
    };
    let g = x.storage().read();
    with_storage!(&*g, v => convert_in(&v[r], to, dst))
}

/// `src` converted to `to` in a vector from `dst` (floats through f64, which is exact for
/// every float source, so they round once, as the direct f32 → half conversions do; integers
/// to integers exactly, wrapping).
fn convert_in<S: Element>(src: &[S], to: DType, dst: &mut Dst) -> CpuStorage {
    fn go<S: Element, D: StorageElement>(src: &[S], dst: &mut Dst) -> CpuStorage {
        let mut out = dst.take(src.len());
        out.extend(src.iter().map(|&v| convert_one::<S, D>(v)));
        D::wrap(out)
    }
    with_dtype!(to, D => go::<S, D>(src, dst))
}

/// [`cast`] of a strided tensor: a dense copy first.
fn cast_strided(x: Operand<'_>, to: DType) -> CpuStorage {
    if x.dtype() == to {
        return contiguous(x);
    }
    // f32 <-> half types have exact direct conversions; everything else goes through f64.
    match (contiguous(x), to) {
        (CpuStorage::F32(v), DType::BF16) => {
            CpuStorage::BF16(v.into_iter().map(bf16::from_f32).collect())
        }
        (CpuStorage::F32(v), DType::F16) => {
            CpuStorage::F16(v.into_iter().map(f16::from_f32).collect())
        }
        (CpuStorage::BF16(v), DType::F32) => {
            CpuStorage::F32(v.into_iter().map(|e| e.to_f32()).collect())
        }
        (CpuStorage::F16(v), DType::F32) => {
            CpuStorage::F32(v.into_iter().map(|e| e.to_f32()).collect())
        }
        (s, to) => with_storage!(s, v => cast_vec(v, to)),
    }
}

/// Writes `src` (same dtype, already broadcast to `dst_layout`'s shape) into `dst` storage.
fn write_strided<T: Copy>(dst: &mut [T], dst_layout: &Layout, src: &[T], src_layout: &Layout) {
    for_each_run(
        &dst_layout.shape,
        [&dst_layout.strides, &src_layout.strides],
        [dst_layout.offset, src_layout.offset],
        |_, [d, s], [ds, ss], len| {
            if ds == 1 && ss == 1 {
                dst[d..d + len].copy_from_slice(&src[s..s + len]);
            } else {
                for i in 0..len {
                    dst[d + i * ds] = src[s + i * ss];
                }
            }
        },
    );
}

/// Concatenates `inputs` along `dim` into a buffer of `shape` (from `dst` for f32/f64).
pub(crate) fn cat(
    inputs: &[Operand<'_>],
    dim: usize,
    shape: &[usize],
    dst: &mut Dst,
) -> CpuStorage {
    // The inputs tile the output, so every element is written.
    fn buffer<T: StorageElement>(n: usize, dst: &mut Dst) -> CpuStorage {
        T::wrap(dst.for_overwrite::<T>(n))
    }
    let n = shape.iter().product();
    let mut out = match inputs[0].dtype() {
        DType::F32 => buffer::<f32>(n, dst),
        DType::F64 => buffer::<f64>(n, dst),
        d => CpuStorage::filled(d, n, 0.0),
    };
    let full = Layout::contiguous(shape);
    let mut start = 0;
    for t in inputs {
        let len = t.shape()[dim];
        let dst_layout = full.slice(dim, start, len, 1);
        write_into(&mut out, &dst_layout, *t);
        start += len;
    }
    out
}

/// Zeros of `shape` with `x` written at `start, start+step, …` along `dim`.
pub(crate) fn slice_scatter(
    x: Operand<'_>,
    dim: usize,
    start: usize,
    step: usize,
    shape: &[usize],
    dst: &mut Dst,
) -> CpuStorage {
    // Zeros from the buffer cache: a fresh zeroed allocation of this size is an `mmap` whose
    // page faults cost more than the copy (profiled: 3 ms per [16, 128, 768] gradient).
    fn zeros<T: StorageElement>(n: usize, dst: &mut Dst) -> CpuStorage {
        T::wrap(dst.filled(n, T::from_f64(0.0)))
    }
    let n = shape.iter().product();
    let mut out = match x.dtype() {
        DType::F32 => zeros::<f32>(n, dst),
        DType::F64 => zeros::<f64>(n, dst),
        d => CpuStorage::filled(d, n, 0.0),
    };
    let dst_layout = Layout::contiguous(shape).slice(dim, start, x.shape()[dim], step);
    write_into(&mut out, &dst_layout, x);
    out
}

fn write_into(out: &mut CpuStorage, dst_layout: &Layout, src: Operand<'_>) {
    let guard = src.storage().read();
    macro_rules! go {
        ($($v:ident),*) => {
            match (out, &*guard) {
                $((CpuStorage::$v(d), CpuStorage::$v(s)) => write_strided(d, dst_layout, s, src.layout()),)*
                (o, s) => panic!("copy: dtype mismatch {} vs {}", o.dtype(), s.dtype()),
            }
        };
    }
    go!(F32, F64, BF16, F16, I64, I32, U8, Bool, I8, I16, U16, U32, U64)
}

/// Writes `src` (broadcast to `dst`'s shape and cast to its dtype) into `dst`'s storage in place.
pub fn copy_into(dst: Operand<'_>, src: Operand<'_>) {
    let cast = super::cast_if(src, dst.dtype());
    let src = cast.operand();
    let src_layout = src.layout().broadcast_to(dst.shape());
    if dst.shares_storage(src) {
        // Read fully before writing when source and destination alias.
        let dense = OwnedOperand::dense(contiguous(src), src.shape());
        return copy_into(dst, dense.operand());
    }
    let guard = src.storage().read();
    let mut out = dst.storage().write();
    macro_rules! go {
        ($($v:ident),*) => {
            match (&mut *out, &*guard) {
                $((CpuStorage::$v(d), CpuStorage::$v(s)) => write_strided(d, dst.layout(), s, &src_layout),)*
                (o, s) => panic!("copy_: dtype mismatch {} vs {}", o.dtype(), s.dtype()),
            }
        };
    }
    go!(F32, F64, BF16, F16, I64, I32, U8, Bool, I8, I16, U16, U32, U64)
}
