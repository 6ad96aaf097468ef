//! Elementwise binary kernels with broadcasting, and `where`.

use super::cast_if;
use super::dst::Dst;
use super::num::{IntNum, Num};
use super::strided::for_each_run;
use super::threads::MAP_CHUNK;
use crate::dtype::DType;
use crate::operand::{Operand, OwnedOperand};
use crate::ops::{CmpOp, IntOp, Op};
use crate::shape::same_shape;
use crate::storage::{CpuStorage, StorageElement};
use crate::with_dtype;
use std::hint::select_unpredictable;
use std::mem::MaybeUninit;

/// A dense output of `n` elements whose pieces `fill(start, piece)` writes, split across the
/// pool's threads when large; each piece's loop runs in the widest vector build
/// ([`super::simd::widest!`]), so every elementwise kernel built on this gets it.
pub(super) fn dense_out<U: StorageElement>(
    n: usize,
    dst: &mut Dst,
    fill: impl Fn(usize, &mut [MaybeUninit<U>]) + Sync + Send,
) -> Vec<U> {
    let mut out = dst.take(n);
    super::threads::for_each_chunk(&mut out.spare_capacity_mut()[..n], MAP_CHUNK, |s, o| {
        super::simd::widest!(fill(s, o))
    });
    // SAFETY: the pieces cover all `n` slots and `fill` writes each.
    unsafe { out.set_len(n) };
    out
}

/// `f(a[i], b[i])` for dense operands, split across the pool's threads when large.
fn dense_zip<T: StorageElement, U: StorageElement>(
    da: &[T],
    db: &[T],
    dst: &mut Dst,
    f: impl Fn(T, T) -> U + Sync,
) -> Vec<U> {
    dense_out(da.len(), dst, |s, o| {
        for ((o, &x), &y) in o.iter_mut().zip(&da[s..]).zip(&db[s..]) {
            o.write(f(x, y));
        }
    })
}

/// An operand of an elementwise kernel: dense with the output's shape, or one element
/// broadcast to it.
#[derive(Clone, Copy)]
enum Src<'a, T> {
    Dense(&'a [T]),
    One(T),
}

impl<'a, T: StorageElement> Src<'a, T> {
    /// `t`'s elements as a [`Src`] for an output of `shape`, if it is either kind.
    fn of(t: Operand<'_>, data: &'a [T], shape: &[usize]) -> Option<Self> {
        if t.numel() == 1 {
            Some(Src::One(data[t.layout().offset]))
        } else if same_shape(t.shape(), shape) {
            t.layout().contiguous_range().map(|r| Src::Dense(&data[r]))
        } else {
            None
        }
    }
}

/// `f(a, b)` when each operand is dense or a single element (`x > 0` against a scalar tensor
/// included), split across threads; `None` for other layouts.
fn dense_or_one<T: StorageElement, U: StorageElement>(
    a: Operand<'_>,
    b: Operand<'_>,
    shape: &[usize],
    dst: &mut Dst,
    f: &(impl Fn(T, T) -> U + Sync),
) -> Option<Vec<U>> {
    let (ga, gb) = (a.storage().read(), b.storage().read());
    let (da, db) = (
        T::slice(&ga).expect("binary: dtype"),
        T::slice(&gb).expect("binary: dtype"),
    );
    let n = shape.iter().product();
    match (Src::of(a, da, shape)?, Src::of(b, db, shape)?) {
        (Src::Dense(x), Src::Dense(y)) => Some(dense_zip(x, y, dst, f)),
        (Src::Dense(x), Src::One(y)) => Some(dense_out(n, dst, |s, o| {
            for (o, &x) in o.iter_mut().zip(&x[s..]) {
                o.write(f(x, y));
            }
        })),
        (Src::One(x), Src::Dense(y)) => Some(dense_out(n, dst, |s, o| {
            for (o, &y) in o.iter_mut().zip(&y[s..]) {
                o.write(f(x, y));
            }
        })),
        (Src::One(_), Src::One(_)) => None,
    }
}

/// `f(a[i], b[i])` over the broadcast `shape`, in row-major order.
pub fn zip<T: StorageElement, U: StorageElement>(
    a: Operand<'_>,
    b: Operand<'_>,
    shape: &[usize],
    f: impl Fn(T, T) -> U + Sync,
) -> Vec<U> {
    zip_in(a, b, shape, &mut Dst::fresh(), f)
}

/// [`zip`] into a vector from `dst`.
pub(crate) fn zip_in<T: StorageElement, U: StorageElement>(
    a: Operand<'_>,
    b: Operand<'_>,
    shape: &[usize],
    dst: &mut Dst,
    f: impl Fn(T, T) -> U + Sync,
) -> Vec<U> {
    // Fast path: both operands dense with the output's shape (no layout building).
    if same_shape(a.shape(), shape) && same_shape(b.shape(), shape) {
        if let (Some(ra), Some(rb)) = (a.layout().contiguous_range(), b.layout().contiguous_range())
        {
            let (ga, gb) = (a.storage().read(), b.storage().read());
            let (da, db) = (
                T::slice(&ga).expect("binary: dtype"),
                T::slice(&gb).expect("binary: dtype"),
            );
            return dense_zip(&da[ra], &db[rb], dst, f);
        }
    }
    if let Some(out) = dense_or_one(a, b, shape, dst, &f) {
        return out;
    }
    let la = a.layout().broadcast_to(shape);
    let lb = b.layout().broadcast_to(shape);
    let ga = a.storage().read();
    let gb = b.storage().read();
    let (da, db) = (
        T::slice(&ga).expect("binary: dtype"),
        T::slice(&gb).expect("binary: dtype"),
    );
    if let (Some(ra), Some(rb)) = (la.contiguous_range(), lb.contiguous_range()) {
        let mut out = dst.take(ra.len());
        out.extend(da[ra].iter().zip(&db[rb]).map(|(&x, &y)| f(x, y)));
        return out;
    }
    let n = shape.iter().product();
    let mut out = dst.take(n);
    for_each_run(
        shape,
        [&la.strides, &lb.strides],
        [la.offset, lb.offset],
        |_, [oa, ob], [sa, sb], len| match (sa, sb) {
            (1, 1) => out.extend(
                da[oa..oa + len]
                    .iter()
                    .zip(&db[ob..ob + len])
                    .map(|(&x, &y)| f(x, y)),
            ),
            (1, 0) => {
                let y = db[ob];
                out.extend(da[oa..oa + len].iter().map(|&x| f(x, y)))
            }
            (0, 1) => {
                let x = da[oa];
                out.extend(db[ob..ob + len].iter().map(|&y| f(x, y)))
            }
            _ => out.extend((0..len).map(|i| f(da[oa + i * sa], db[ob + i * sb]))),
        },
    );
    out
}

/// An [`Op::IntBinary`] in the promoted integer type `out`.
fn int_binary(
    op: IntOp,
    a: Operand<'_>,
    b: Operand<'_>,
    shape: &[usize],
    out: DType,
    d: &mut Dst,
) -> CpuStorage {
    fn go<T: IntNum>(
        op: IntOp,
        a: Operand<'_>,
        b: Operand<'_>,
        shape: &[usize],
        d: &mut Dst,
    ) -> CpuStorage {
        // One loop per op (a constant op in each closure folds `int_op`'s match away), as
        // `typed` does for comparisons: matching the op per element kept loops scalar.
        macro_rules! each {
            ($($i:ident),*) => {
                match op {
                    $(IntOp::$i => {
                        T::wrap(zip_in(a, b, shape, d, |x: T, y: T| T::int_op(IntOp::$i, x, y)))
                    })*
                }
            };
        }
        each!(Div, Rem, Mod, And, Or, Xor, Shl, Shr)
    }
    let (ca, cb) = (cast_if(a, out), cast_if(b, out));
    let (a, b) = (ca.operand(), cb.operand());
    match out {
        DType::I64 => go::<i64>(op, a, b, shape, d),
        DType::I32 => go::<i32>(op, a, b, shape, d),
        DType::I16 => go::<i16>(op, a, b, shape, d),
        DType::I8 => go::<i8>(op, a, b, shape, d),
        DType::U64 => go::<u64>(op, a, b, shape, d),
        DType::U32 => go::<u32>(op, a, b, shape, d),
        DType::U16 => go::<u16>(op, a, b, shape, d),
        DType::U8 => go::<u8>(op, a, b, shape, d),
        d => unreachable!("{}: {d} is not an integer type", op.name()),
    }
}

fn typed<T: Num>(
    op: &Op,
    a: Operand<'_>,
    b: Operand<'_>,
    shape: &[usize],
    d: &mut Dst,
) -> CpuStorage {
    match op {
        Op::Add => T::wrap(zip_in(a, b, shape, d, T::add)),
        Op::Sub => T::wrap(zip_in(a, b, shape, d, T::sub)),
        Op::Mul => T::wrap(zip_in(a, b, shape, d, T::mul)),
        Op::Div => T::wrap(zip_in(a, b, shape, d, T::div)),
        Op::Maximum => T::wrap(zip_in(a, b, shape, d, T::max_)),
        Op::Minimum => T::wrap(zip_in(a, b, shape, d, T::min_)),
        // One loop per comparison: matching the kind per element kept the loop scalar.
        Op::Compare(c) => CpuStorage::Bool(match c {
            CmpOp::Eq => zip_in(a, b, shape, d, |x: T, y: T| x == y),
            CmpOp::Ne => zip_in(a, b, shape, d, |x: T, y: T| x != y),
            CmpOp::Lt => zip_in(a, b, shape, d, |x: T, y: T| x < y),
            CmpOp::Le => zip_in(a, b, shape, d, |x: T, y: T| x <= y),
            CmpOp::Gt => zip_in(a, b, shape, d, |x: T, y: T| x > y),
            CmpOp::Ge => zip_in(a, b, shape, d, |x: T, y: T| x >= y),
        }),
        _ => unreachable!("binary: {}", op.name()),
    }
}

/// `out[i] = op(a[i], b[i])` for an f32 binary op, comparisons giving 1.0 / 0.0: the eager
/// kernels' element functions on slices (the fused graph kernel's binary steps).
#[inline(always)]
pub(crate) fn binary_f32_slice(op: &Op, a: &[f32], b: &[f32], out: &mut [f32]) {
    fn each(a: &[f32], b: &[f32], out: &mut [f32], f: impl Fn(f32, f32) -> f32) {
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            *o = f(x, y);
        }
    }
    match op {
        Op::Add => each(a, b, out, f32::add),
        Op::Sub => each(a, b, out, f32::sub),
        Op::Mul => each(a, b, out, f32::mul),
        Op::Div => each(a, b, out, f32::div),
        Op::Pow => each(a, b, out, f32::powf),
        Op::Maximum => each(a, b, out, f32::max_),
        Op::Minimum => each(a, b, out, f32::min_),
        // One loop per comparison, as in `typed`: matching per element kept it scalar.
        Op::Compare(c) => match c {
            CmpOp::Eq => each(a, b, out, |x, y| (x == y) as u8 as f32),
            CmpOp::Ne => each(a, b, out, |x, y| (x != y) as u8 as f32),
            CmpOp::Lt => each(a, b, out, |x, y| (x < y) as u8 as f32),
            CmpOp::Le => each(a, b, out, |x, y| (x <= y) as u8 as f32),
            CmpOp::Gt => each(a, b, out, |x, y| (x > y) as u8 as f32),
            CmpOp::Ge => each(a, b, out, |x, y| (x >= y) as u8 as f32),
        },
        Op::GeluBackward => super::simd::gelu_backward(a, b, out),
        _ => unreachable!("binary: {} is not an f32 binary op", op.name()),
    }
}

/// Applies a broadcasting binary op; operands are promoted to a common dtype first.
pub(crate) fn binary(
    op: &Op,
    a: Operand<'_>,
    b: Operand<'_>,
    shape: &[usize],
    out: DType,
    dst: &mut Dst,
) -> CpuStorage {
    if let Op::IntBinary(i) = op {
        return int_binary(*i, a, b, shape, out, dst);
    }
    let compute = match op {
        Op::Compare(_) => DType::promote(a.dtype(), b.dtype()),
        _ => out,
    };
    let (ca, cb) = (cast_if(a, compute), cast_if(b, compute));
    let (a, b) = (ca.operand(), cb.operand());
    if matches!(op, Op::Pow) {
        return match compute {
            DType::F32 => CpuStorage::F32(zip_in(a, b, shape, dst, f32::powf)),
            DType::F64 => CpuStorage::F64(zip_in(a, b, shape, dst, f64::powf)),
            _ => {
                let r = zip(
                    cast_if(a, DType::F32).operand(),
                    cast_if(b, DType::F32).operand(),
                    shape,
                    f32::powf,
                );
                let t = OwnedOperand::dense(CpuStorage::F32(r), shape);
                super::copy::cast(t.operand(), compute)
            }
        };
    }
    with_dtype!(compute, T => typed::<T>(op, a, b, shape, dst))
}

fn where_typed<T: StorageElement>(
    c: Operand<'_>,
    a: Operand<'_>,
    b: Operand<'_>,
    shape: &[usize],
    dst: &mut Dst,
) -> Vec<T> {
    let lc = c.layout().broadcast_to(shape);
    let la = a.layout().broadcast_to(shape);
    let lb = b.layout().broadcast_to(shape);
    let (gc, ga, gb) = (c.storage().read(), a.storage().read(), b.storage().read());
    let dc = bool::slice(&gc).expect("where: cond dtype");
    let (da, db) = (
        T::slice(&ga).expect("where: dtype"),
        T::slice(&gb).expect("where: dtype"),
    );
    if let (Some(Src::Dense(c)), Some(a), Some(b)) = (
        Src::of(c, dc, shape),
        Src::of(a, da, shape),
        Src::of(b, db, shape),
    ) {
        return where_dense(c, a, b, dst);
    }
    let mut out = dst.take(shape.iter().product());
    for_each_run(
        shape,
        [&lc.strides, &la.strides, &lb.strides],
        [lc.offset, la.offset, lb.offset],
        |_, [oc, oa, ob], [sc, sa, sb], len| {
            // Dense runs against a dense or scalar branch (masks, masked_fill and the where
            // VJP) as straight selects.
            let c = &dc[oc..oc + if sc == 1 { len } else { 1 }];
            match (sc, sa, sb) {
                (1, 1, 1) => out.extend(
                    c.iter()
                        .zip(&da[oa..oa + len])
                        .zip(&db[ob..ob + len])
                        .map(|((&c, &a), &b)| select_unpredictable(c, a, b)),
                ),
                (1, 1, 0) => {
                    let b = db[ob];
                    out.extend(
                        c.iter()
                            .zip(&da[oa..oa + len])
                            .map(|(&c, &a)| select_unpredictable(c, a, b)),
                    )
                }
                (1, 0, 1) => {
                    let a = da[oa];
                    out.extend(
                        c.iter()
                            .zip(&db[ob..ob + len])
                            .map(|(&c, &b)| select_unpredictable(c, a, b)),
                    )
                }
                _ => out.extend((0..len).map(|i| {
                    if dc[oc + i * sc] {
                        da[oa + i * sa]
                    } else {
                        db[ob + i * sb]
                    }
                })),
            }
        },
    );
    out
}

/// `where` over a dense condition and dense or single-element branches (masks, masked_fill,
/// the ReLU and where VJPs), split across threads. One small loop per kind of branch, each
/// inlined into the vector build (one closure matching on them was too large to inline and
/// ran as baseline code), and a select LLVM keeps as a blend: a plain `if` became a load from
/// the chosen address, eight scalar loads per vector (3.6 vs 0.2 ns per element measured).
fn where_dense<T: StorageElement>(c: &[bool], a: Src<T>, b: Src<T>, dst: &mut Dst) -> Vec<T> {
    macro_rules! select {
        (|$s:ident| $a:expr, $b:expr) => {
            dense_out(
                c.len(),
                dst,
                #[inline(always)]
                |$s, o| select_into(o, &c[$s..], $a, $b),
            )
        };
    }
    use std::iter::repeat;
    match (a, b) {
        (Src::Dense(a), Src::Dense(b)) => {
            select!(|s| a[s..].iter().copied(), b[s..].iter().copied())
        }
        (Src::Dense(a), Src::One(b)) => select!(|s| a[s..].iter().copied(), repeat(b)),
        (Src::One(a), Src::Dense(b)) => select!(|s| repeat(a), b[s..].iter().copied()),
        (Src::One(a), Src::One(b)) => select!(|_s| repeat(a), repeat(b)),
    }
}

/// `o[i] = if c[i] { a[i] } else { b[i] }` as a blend.
#[inline(always)]
fn select_into<T: Copy>(
    o: &mut [MaybeUninit<T>],
    c: &[bool],
    a: impl Iterator<Item = T>,
    b: impl Iterator<Item = T>,
) {
    for (((o, &c), a), b) in o.iter_mut().zip(c).zip(a).zip(b) {
        o.write(select_unpredictable(c, a, b));
    }
}

/// `where(cond, a, b)` with broadcasting.
pub(crate) fn where_(
    c: Operand<'_>,
    a: Operand<'_>,
    b: Operand<'_>,
    shape: &[usize],
    out: DType,
    d: &mut Dst,
) -> CpuStorage {
    let (ca, cb) = (cast_if(a, out), cast_if(b, out));
    let (a, b) = (ca.operand(), cb.operand());
    with_dtype!(out, T => T::wrap(where_typed::<T>(c, a, b, shape, d)))
}
