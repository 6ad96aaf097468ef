//! Elementwise unary kernels.

use super::dst::Dst;
use super::threads::MAP_CHUNK;
use super::{to_contiguous_vec, to_contiguous_vec_in};
use crate::dtype::DType;
use crate::operand::Operand;
use crate::ops::unary::{with_float_unary, UnaryFloat};
use crate::ops::UnaryOp;
use crate::storage::{CpuStorage, StorageElement};
use half::{bf16, f16};

fn map<T: StorageElement>(x: Operand<'_>, dst: &mut Dst, f: impl Fn(T) -> T + Sync) -> Vec<T> {
    if let Some(r) = x.layout().contiguous_range() {
        let g = x.storage().read();
        let src = &T::slice(&g).expect("unary: dtype")[r];
        return super::binary::dense_out(src.len(), dst, |s, o| {
            for (o, &v) in o.iter_mut().zip(&src[s..]) {
                o.write(f(v));
            }
        });
    }
    let mut v = to_contiguous_vec_in::<T>(x, dst);
    v.iter_mut().for_each(|e| *e = f(*e));
    v
}

fn float_kernel<T: UnaryFloat + StorageElement>(
    op: &UnaryOp,
    x: Operand<'_>,
    dst: &mut Dst,
) -> Vec<T> {
    with_float_unary!(op, T, |f| map(x, dst, f))
}

/// `dst[i] = op(src[i])` for an f32 unary op: the vectorized kernels where there is one, else
/// the element functions of `ops::unary` (used by the fused graph kernel).
#[inline(always)]
pub(crate) fn unary_f32_slice(op: &UnaryOp, src: &[f32], dst: &mut [f32]) {
    if let Some(f) = f32_slice_fast(op) {
        return f(src, dst);
    }
    with_float_unary!(op, f32, |f| {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = f(s);
        }
    })
}

/// `data[i] = op(data[i])` for an f32 unary op, on the pool's threads when large (a matmul's
/// activation epilogue over the product it just wrote).
pub(crate) fn unary_f32_in_place(op: &UnaryOp, data: &mut [f32]) {
    in_place_by_strips(data, |_, src, strip| unary_f32_slice(op, src, strip));
}

/// Updates `data` in place with `f(start, src, dst)`, a kernel reading one slice and writing
/// another, over strips that go through a copy on the stack (in L1), on the pool's threads
/// when large. Written as one loop over `data` itself, a select keeping the old value became
/// a conditional store, which LLVM emits as a masked store (`vmaskmovps`), microcoded on AMD
/// Zen (a ReLU-gradient mask: 31 vs 11 µs for 128×512).
pub(crate) fn in_place_by_strips(
    data: &mut [f32],
    f: impl Fn(usize, &[f32], &mut [f32]) + Sync + Send,
) {
    const STRIP: usize = 512;
    super::threads::for_each_chunk(data, MAP_CHUNK, |at, piece| {
        let mut src = [0f32; STRIP];
        for (k, strip) in piece.chunks_mut(STRIP).enumerate() {
            let src = &mut src[..strip.len()];
            src.copy_from_slice(strip);
            f(at + k * STRIP, src, strip);
        }
    });
}

/// Runs a vectorized f32 slice kernel over `x` into a new dense buffer, on the pool's threads
/// when the tensor is large.
fn simd_map(x: Operand<'_>, f: SliceKernel, dst: &mut Dst) -> Vec<f32> {
    let mut run = |src: &[f32]| {
        let mut out = dst.take(src.len());
        out.resize(src.len(), 0.0);
        super::threads::for_each_chunk(&mut out, MAP_CHUNK, |s, d| f(&src[s..s + d.len()], d));
        out
    };
    if let Some(r) = x.layout().contiguous_range() {
        let g = x.storage().read();
        return run(&f32::slice(&g).expect("unary: dtype")[r]);
    }
    run(&to_contiguous_vec::<f32>(x))
}

/// A kernel from one f32 slice into another of the same length.
type SliceKernel = fn(&[f32], &mut [f32]);

/// The f32 ops with a vectorized slice kernel (libm's are scalar calls).
fn f32_slice_fast(op: &UnaryOp) -> Option<SliceKernel> {
    match op {
        UnaryOp::Exp => Some(super::simd::exp),
        UnaryOp::Erf => Some(super::simd::erf),
        UnaryOp::Gelu { tanh: false } => Some(super::simd::gelu),
        _ => None,
    }
}

/// An f32 unary op through its vectorized kernel, if it has one.
fn f32_fast(op: &UnaryOp, x: Operand<'_>, dst: &mut Dst) -> Option<Vec<f32>> {
    f32_slice_fast(op).map(|f| simd_map(x, f, dst))
}

/// `g · gelu′(x)` (exact GELU), the VJP of GELU in one pass.
pub(crate) fn gelu_backward(
    x: Operand<'_>,
    g: Operand<'_>,
    out: DType,
    dst: &mut Dst,
) -> CpuStorage {
    let (x, g) = (super::cast_if(x, out), super::cast_if(g, out));
    let (x, g) = (x.operand(), g.operand());
    if out == DType::F64 {
        let (xs, gs) = (to_contiguous_vec::<f64>(x), to_contiguous_vec::<f64>(g));
        let r = std::f64::consts::FRAC_1_SQRT_2;
        let k = 1.0 / (2.0 * std::f64::consts::PI).sqrt();
        let mut o = dst.take(xs.len());
        o.extend(
            xs.iter().zip(&gs).map(|(&x, &g)| {
                g * (0.5 * (1.0 + libm::erf(x * r)) + x * k * (-0.5 * x * x).exp())
            }),
        );
        return CpuStorage::F64(o);
    }
    let (x32, g32) = (super::cast_if(x, DType::F32), super::cast_if(g, DType::F32));
    let (xs, gs) = (dense_f32(x32.operand()), dense_f32(g32.operand()));
    let n = xs.len();
    let mut o = if out == DType::F32 {
        dst.take(n)
    } else {
        crate::pool::take(n)
    };
    o.resize(n, 0.0);
    super::threads::for_each_chunk(&mut o, MAP_CHUNK, |s, d| {
        let e = s + d.len();
        super::simd::gelu_backward(&xs[s..e], &gs[s..e], d)
    });
    match out {
        DType::F32 => CpuStorage::F32(o),
        DType::BF16 => CpuStorage::BF16(o.into_iter().map(bf16::from_f32).collect()),
        DType::F16 => CpuStorage::F16(o.into_iter().map(f16::from_f32).collect()),
        d => unreachable!("gelu_backward: non-float dtype {d}"),
    }
}

/// The elements of an f32 tensor in row-major order: borrowed when dense, else copied.
fn dense_f32(t: Operand<'_>) -> DenseF32<'_> {
    match t.layout().contiguous_range() {
        Some(r) => DenseF32::Borrowed(t.storage().read(), r),
        None => DenseF32::Owned(to_contiguous_vec::<f32>(t)),
    }
}

enum DenseF32<'a> {
    Borrowed(
        parking_lot::RwLockReadGuard<'a, CpuStorage>,
        std::ops::Range<usize>,
    ),
    Owned(Vec<f32>),
}

impl std::ops::Deref for DenseF32<'_> {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            DenseF32::Borrowed(g, r) => &f32::slice(g).expect("gelu_backward: dtype")[r.clone()],
            DenseF32::Owned(v) => v,
        }
    }
}

/// Integer / generic path through f64 (Relu, Abs, Sign, Affine, Clamp, and the rounding ops,
/// which keep integers as they are, on integer tensors).
fn generic_kernel(op: &UnaryOp, x: Operand<'_>, out: DType) -> CpuStorage {
    let vals = super::copy::cast(x, DType::F64);
    let CpuStorage::F64(v) = vals else {
        unreachable!()
    };
    let f = |e: f64| -> f64 {
        match op {
            UnaryOp::Relu => e.max(0.0),
            UnaryOp::Abs => e.abs(),
            UnaryOp::Sign => e.signum() * (e != 0.0) as i32 as f64,
            UnaryOp::Affine { mul, add } => e * mul + add,
            UnaryOp::Clamp { min, max } => e
                .max(min.unwrap_or(f64::NEG_INFINITY))
                .min(max.unwrap_or(f64::INFINITY)),
            UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round => e,
            _ => unreachable!(),
        }
    };
    CpuStorage::from_f64s(out, v.into_iter().map(f))
}

/// Applies a unary op, producing a dense buffer of `out` dtype.
pub(crate) fn unary(op: &UnaryOp, x: Operand<'_>, out: DType, dst: &mut Dst) -> CpuStorage {
    if matches!(op, UnaryOp::LogicalNot) {
        let vals = super::copy::cast(x, DType::Bool);
        let CpuStorage::Bool(v) = vals else {
            unreachable!()
        };
        return CpuStorage::Bool(v.into_iter().map(|b| !b).collect());
    }
    if !out.is_float() {
        return generic_kernel(op, x, out);
    }
    let x = super::cast_if(x, out);
    let x = x.operand();
    match out {
        DType::F32 => CpuStorage::F32(match f32_fast(op, x, dst) {
            Some(v) => v,
            None => float_kernel::<f32>(op, x, dst),
        }),
        DType::F64 => CpuStorage::F64(float_kernel::<f64>(op, x, dst)),
        DType::BF16 | DType::F16 => {
            let x32 = super::cast_if(x, DType::F32);
            let x32 = x32.operand();
            let fresh = &mut Dst::fresh();
            let r = match f32_fast(op, x32, fresh) {
                Some(v) => v,
                None => float_kernel::<f32>(op, x32, fresh),
            };
            if out == DType::BF16 {
                CpuStorage::BF16(r.into_iter().map(bf16::from_f32).collect())
            } else {
                CpuStorage::F16(r.into_iter().map(f16::from_f32).collect())
            }
        }
        _ => unreachable!(),
    }
}
