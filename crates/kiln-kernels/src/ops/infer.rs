//! Shape and dtype inference for every primitive op. Inference returns an [`OpError`] whose
//! message names the op, the shapes and the dtypes (like a PyTorch exception); eager code
//! panics with it ([`infer`]), loaders of graph files return it ([`try_infer`]). It works on
//! shapes and dtypes alone ([`ValueType`]), so a file's graph is checked without tensors, and
//! it checks every attribute a kernel relies on (dims below the rank, window sizes, output
//! sizes that fit in memory), so nothing reaches a kernel with a size it does not own.

use super::{Distribution, Family, Op};
use crate::dtype::DType;
use crate::shape::{broadcast_shapes, checked_numel, same_shape, shape_of, Shape};

use super::value::fail;
pub use super::value::{cast_hint, InferResult, OpError, TypeRef, ValueType};

fn shapes<T: ValueType>(inputs: &[&T]) -> String {
    inputs
        .iter()
        .map(|t| format!("{:?}", t.shape()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn dtypes<T: ValueType>(inputs: &[&T]) -> String {
    inputs
        .iter()
        .map(|t| t.dtype().name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The dtype a float-only elementwise op computes in: floats keep theirs, others become f32.
pub fn float_dtype(d: DType) -> DType {
    if d.is_float() {
        d
    } else {
        DType::F32
    }
}

/// True for a finite whole number.
pub(crate) fn is_integral(v: f64) -> bool {
    v.fract() == 0.0 && v.is_finite()
}

fn reduced_shape(shape: &[usize], dims: &[usize], keepdim: bool) -> Shape {
    let mut out = Shape::new();
    for (i, &s) in shape.iter().enumerate() {
        if dims.contains(&i) {
            if keepdim {
                out.push(1);
            }
        } else {
            out.push(s);
        }
    }
    out
}

fn expect_arity<T: ValueType>(op: &Op, inputs: &[&T], n: usize) -> InferResult<()> {
    if inputs.len() != n {
        fail!("{}: expected {n} inputs, got {}", op.name(), inputs.len());
    }
    Ok(())
}

/// True when `len` entries from `start`, `step` apart, all lie below `size` (no wrapping).
fn span_fits(start: usize, len: usize, step: usize, size: usize) -> bool {
    (len - 1)
        .checked_mul(step)
        .and_then(|d| d.checked_add(start))
        .is_some_and(|last| last < size)
}

/// Checks reduction dims: strictly increasing (sorted, no repeats) and inside the shape.
fn expect_reduce_dims(op: &Op, dims: &[usize], shape: &[usize]) -> InferResult<()> {
    let sorted = dims.windows(2).all(|w| w[0] < w[1]);
    if !sorted || dims.last().is_some_and(|&d| d >= shape.len().max(1)) {
        fail!(
            "{}: reduction dims {dims:?} must be sorted, distinct and below the rank of shape {shape:?}",
            op.name()
        );
    }
    Ok(())
}

/// Checks that `dim` indexes a tensor of `rank` dims (a 0-d tensor has the one dim 0).
fn expect_dim(op: &Op, dim: usize, shape: &[usize]) -> InferResult<()> {
    if dim >= shape.len().max(1) {
        fail!(
            "{}: dim {dim} is out of range for a tensor of shape {shape:?}",
            op.name()
        );
    }
    Ok(())
}

/// Checks that `dim` indexes an existing dim of `shape` (rank ≥ 1).
fn expect_dim_of(op: &Op, dim: usize, shape: &[usize]) -> InferResult<()> {
    if dim >= shape.len() {
        fail!(
            "{}: dim {dim} is out of range for a tensor of shape {shape:?}",
            op.name()
        );
    }
    Ok(())
}

fn expect_index<T: ValueType>(op: &Op, t: &T, what: &str) -> InferResult<()> {
    if t.dtype() != DType::I64 && t.dtype() != DType::I32 {
        fail!(
            "{}: {what} must be an i64 tensor, got {} with shape {:?}",
            op.name(),
            t.dtype(),
            t.shape()
        );
    }
    Ok(())
}

/// Output dtype of a binary elementwise op (`op.is_binary()`).
#[inline(always)]
fn binary_dtype(op: &Op, a: DType, b: DType) -> InferResult<DType> {
    let promoted = DType::promote(a, b);
    Ok(match op {
        Op::Compare(_) => DType::Bool,
        Op::Div | Op::Pow => float_dtype(promoted),
        Op::Sub if promoted == DType::Bool => {
            fail!(
                "sub: subtraction of bool tensors is not supported; use logical_xor or cast first"
            )
        }
        _ => promoted,
    })
}

/// Output shape and dtype of `op` applied to `inputs`; panics on misuse with the message of
/// [`try_infer`], located at the caller's line (`#[track_caller]` up the public API).
#[inline(always)]
#[track_caller]
pub fn infer<T: ValueType>(op: &Op, inputs: &[&T]) -> (Shape, DType) {
    // The common eager case, a binary op on two same-shape operands, stays small enough to
    // inline into `dispatch` (the output shape is built once, in place, and is as valid as
    // its operands').
    if let [a, b] = inputs {
        if op.is_binary() && same_shape(a.shape(), b.shape()) {
            if let Ok(d) = binary_dtype(op, a.dtype(), b.dtype()) {
                return (shape_of(a.shape()), d);
            }
        }
    }
    match try_infer(op, inputs) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

/// Output shape and dtype of `op` applied to operands of the given types, or why it does not
/// apply. Never panics, whatever the op's attributes and the operands' shapes.
#[inline(never)]
pub fn try_infer<T: ValueType>(op: &Op, inputs: &[&T]) -> InferResult<(Shape, DType)> {
    let (shape, dtype) = infer_general(op, inputs)?;
    if let Err(e) = checked_numel(&shape, dtype.size_in_bytes()) {
        fail!("{}: output {e} (inputs {})", op.name(), shapes(inputs));
    }
    Ok((shape, dtype))
}

fn infer_general<T: ValueType>(op: &Op, inputs: &[&T]) -> InferResult<(Shape, DType)> {
    match op.family() {
        Family::Unary => {
            let Op::Unary(u) = op else {
                unreachable!("infer: {} is not unary", op.name())
            };
            expect_arity(op, inputs, 1)?;
            let x = inputs[0];
            Ok((shape_of(x.shape()), u.infer(x.dtype(), x.shape())?))
        }
        Family::Elementwise => infer_elementwise(op, inputs),
        Family::Reduce => infer_reduce(op, inputs),
        Family::Layout => infer_layout(op, inputs),
        Family::Nn => infer_nn(op, inputs),
        Family::Index => infer_index(op, inputs),
        Family::Matmul => infer_matmul(op, inputs),
        Family::Unfold => infer_unfold(op, inputs),
        Family::Window => super::window::try_infer(op, inputs),
        Family::Random | Family::Fused | Family::Optim => infer_other(op, inputs),
    }
}

/// Random draws, fused programs and optimizer updates.
fn infer_other<T: ValueType>(op: &Op, inputs: &[&T]) -> InferResult<(Shape, DType)> {
    Ok(match op {
        Op::Random {
            shape, dtype, dist, ..
        } => {
            expect_arity(op, inputs, 0)?;
            if !dtype.is_float() {
                fail!("random: {dist:?} samples need a float dtype, got {dtype}");
            }
            let _ = Distribution::Uniform;
            (shape.clone(), *dtype)
        }
        Op::Fused(program) => infer_fused(program, inputs)?,
        Op::AdamStep(h) => {
            use super::optim::adam_args::*;
            let Some(p) = inputs.first() else {
                fail!("adam_step: no operands")
            };
            let ok = inputs.len() == h.arity()
                && inputs.iter().enumerate().all(|(i, t)| {
                    if i == STEP || i == LR {
                        t.dtype() == DType::F64 && t.numel() == 1
                    } else {
                        t.dtype() == p.dtype() && t.shape() == p.shape()
                    }
                })
                && matches!(p.dtype(), DType::F32 | DType::F64);
            if !ok {
                fail!(
                    "adam_step: expected {} operands (param, grad, exp_avg, exp_avg_sq{}: f32 or \
                     f64 of one shape; step, lr: 0-d f64), got {:?}",
                    h.arity(),
                    if h.amsgrad { ", max_exp_avg_sq" } else { "" },
                    inputs
                        .iter()
                        .map(|t| (t.shape().to_vec(), t.dtype()))
                        .collect::<Vec<_>>()
                );
            }
            (p.shape().into(), p.dtype())
        }
        _ => unreachable!("infer_other: {}", op.name()),
    })
}

/// Binary ops with broadcasting, and `where`.
fn infer_elementwise<T: ValueType>(op: &Op, inputs: &[&T]) -> InferResult<(Shape, DType)> {
    let name = op.name();
    Ok(match op {
        Op::Add
        | Op::Sub
        | Op::Mul
        | Op::Div
        | Op::Pow
        | Op::Maximum
        | Op::Minimum
        | Op::Compare(_)
        | Op::IntBinary(_) => {
            expect_arity(op, inputs, 2)?;
            let (a, b) = (inputs[0], inputs[1]);
            if matches!(op, Op::IntBinary(_)) && !(a.dtype().is_int() && b.dtype().is_int()) {
                fail!(
                    "{name}: expected integer operands, got {} {:?} and {} {:?}",
                    a.dtype(),
                    a.shape(),
                    b.dtype(),
                    b.shape()
                )
            }
            // Same shapes (the common case) need no broadcasting work.
            let same = same_shape(a.shape(), b.shape()).then(|| shape_of(a.shape()));
            let Some(shape) = same.or_else(|| broadcast_shapes(a.shape(), b.shape())) else {
                fail!(
                    "{name}: shapes {:?} and {:?} cannot be broadcast together ({}, {})",
                    a.shape(),
                    b.shape(),
                    a.dtype(),
                    b.dtype()
                )
            };
            (shape, binary_dtype(op, a.dtype(), b.dtype())?)
        }
        Op::Where => {
            expect_arity(op, inputs, 3)?;
            let (c, a, b) = (inputs[0], inputs[1], inputs[2]);
            if c.dtype() != DType::Bool {
                fail!(
                    "where: condition must be bool, got {} ({})",
                    c.dtype(),
                    shapes(inputs)
                );
            }
            let Some(s) = broadcast_shapes(a.shape(), b.shape())
                .and_then(|s| broadcast_shapes(&s, c.shape()))
            else {
                fail!(
                    "where: shapes {} cannot be broadcast together",
                    shapes(inputs)
                )
            };
            (s, DType::promote(a.dtype(), b.dtype()))
        }
        _ => unreachable!("infer_elementwise: {}", op.name()),
    })
}

/// Reductions over dims, and arg-reductions.
fn infer_reduce<T: ValueType>(op: &Op, inputs: &[&T]) -> InferResult<(Shape, DType)> {
    let name = op.name();
    Ok(match op {
        Op::Sum { dims, keepdim } | Op::Prod { dims, keepdim } => {
            expect_arity(op, inputs, 1)?;
            let x = inputs[0];
            expect_reduce_dims(op, dims, x.shape())?;
            let d = if x.dtype().is_float() {
                x.dtype()
            } else {
                DType::I64
            };
            (reduced_shape(x.shape(), dims, *keepdim), d)
        }
        Op::Max { dims, keepdim } | Op::Min { dims, keepdim } => {
            expect_arity(op, inputs, 1)?;
            let x = inputs[0];
            expect_reduce_dims(op, dims, x.shape())?;
            for &d in dims.iter() {
                if x.shape().get(d).copied().unwrap_or(1) == 0 {
                    fail!(
                        "{name}: cannot reduce over an empty dim {d} of shape {:?}",
                        x.shape()
                    );
                }
            }
            (reduced_shape(x.shape(), dims, *keepdim), x.dtype())
        }
        Op::ArgMax { dim, keepdim } | Op::ArgMin { dim, keepdim } => {
            expect_arity(op, inputs, 1)?;
            let x = inputs[0];
            expect_dim(op, *dim, x.shape())?;
            if x.shape().get(*dim).copied().unwrap_or(1) == 0 {
                fail!(
                    "{name}: cannot reduce over an empty dim {dim} of shape {:?}",
                    x.shape()
                );
            }
            (reduced_shape(x.shape(), &[*dim], *keepdim), DType::I64)
        }
        Op::Numel { dims, dtype } => {
            expect_arity(op, inputs, 1)?;
            expect_reduce_dims(op, dims, inputs[0].shape())?;
            if !dtype.is_float() {
                fail!("{name}: the count's dtype must be float, got {dtype}");
            }
            (Shape::new(), *dtype)
        }
        _ => unreachable!("infer_reduce: {}", op.name()),
    })
}

/// Reshapes, views, copies, casts and concatenation.
fn infer_layout<T: ValueType>(op: &Op, inputs: &[&T]) -> InferResult<(Shape, DType)> {
    Ok(match op {
        Op::Reshape(shape) => {
            expect_arity(op, inputs, 1)?;
            let x = inputs[0];
            if checked_numel(shape, 1).ok() != Some(x.numel()) {
                fail!(
                    "reshape: cannot reshape {:?} ({} elements) into {:?}",
                    x.shape(),
                    x.numel(),
                    shape
                );
            }
            (shape.clone(), x.dtype())
        }
        Op::Permute(perm) => {
            expect_arity(op, inputs, 1)?;
            let x = inputs[0];
            let mut seen = vec![false; x.rank()];
            if perm.len() != x.rank()
                || perm
                    .iter()
                    .any(|&p| p >= x.rank() || std::mem::replace(&mut seen[p], true))
            {
                fail!(
                    "permute: {:?} is not a permutation of the dims of a tensor of shape {:?}",
                    perm,
                    x.shape()
                );
            }
            (perm.iter().map(|&p| x.shape()[p]).collect(), x.dtype())
        }
        Op::Expand(shape) => {
            expect_arity(op, inputs, 1)?;
            let x = inputs[0];
            let ok = shape.len() >= x.rank()
                && x.shape()
                    .iter()
                    .enumerate()
                    .all(|(i, &s)| s == 1 || s == shape[i + shape.len() - x.rank()]);
            if !ok {
                fail!(
                    "expand: cannot broadcast shape {:?} to {:?}",
                    x.shape(),
                    shape
                );
            }
            (shape.clone(), x.dtype())
        }
        Op::Slice {
            dim,
            start,
            len,
            step,
        } => {
            expect_arity(op, inputs, 1)?;
            let x = inputs[0];
            expect_dim_of(op, *dim, x.shape())?;
            let size = x.shape()[*dim];
            if *step == 0 || (*len > 0 && !span_fits(*start, *len, *step, size)) {
                fail!(
                    "slice: start {start}, len {len}, step {step} out of range for dim {dim} of shape {:?}",
                    x.shape()
                );
            }
            let mut s: Shape = x.shape().into();
            s[*dim] = *len;
            (s, x.dtype())
        }
        Op::SliceScatter {
            dim,
            start,
            step,
            size,
        } => {
            expect_arity(op, inputs, 1)?;
            let x = inputs[0];
            expect_dim_of(op, *dim, x.shape())?;
            let len = x.shape()[*dim];
            if *step == 0 || (len > 0 && !span_fits(*start, len, *step, *size)) {
                fail!("slice_scatter: {len} entries from {start} step {step} do not fit in size {size}");
            }
            let mut s: Shape = x.shape().into();
            s[*dim] = *size;
            (s, x.dtype())
        }
        Op::Contiguous => {
            expect_arity(op, inputs, 1)?;
            (inputs[0].shape().into(), inputs[0].dtype())
        }
        Op::Cast(d) => {
            expect_arity(op, inputs, 1)?;
            (inputs[0].shape().into(), *d)
        }
        Op::Cat(dim) => {
            if inputs.is_empty() {
                fail!("cat: expected a non-empty list of tensors");
            }
            let first = inputs[0];
            let mut s: Shape = first.shape().into();
            if *dim >= s.len() {
                fail!("cat: dim {dim} out of range for shapes {}", shapes(inputs));
            }
            s[*dim] = 0;
            for t in inputs {
                let ok = t.rank() == first.rank()
                    && t.shape()
                        .iter()
                        .enumerate()
                        .all(|(i, &v)| i == *dim || v == first.shape()[i]);
                if !ok {
                    fail!("cat: shapes {} differ outside dim {dim}", shapes(inputs));
                }
                if t.dtype() != first.dtype() {
                    fail!(
                        "cat: dtypes differ ({}){}",
                        dtypes(inputs),
                        cast_hint(first.dtype(), t.dtype())
                    );
                }
                let Some(total) = s[*dim].checked_add(t.shape()[*dim]) else {
                    fail!("cat: sizes along dim {dim} overflow ({})", shapes(inputs));
                };
                s[*dim] = total;
            }
            (s, first.dtype())
        }
        _ => unreachable!("infer_layout: {}", op.name()),
    })
}

/// The fused neural-network ops: softmax, layer norm, attention, GELU backward.
fn infer_nn<T: ValueType>(op: &Op, inputs: &[&T]) -> InferResult<(Shape, DType)> {
    let name = op.name();
    Ok(match op {
        Op::GeluBackward => {
            expect_arity(op, inputs, 2)?;
            let (x, g) = (inputs[0], inputs[1]);
            if x.shape() != g.shape() || x.dtype() != g.dtype() || !x.dtype().is_float() {
                fail!(
                    "{name}: x and g must be float tensors of one shape and dtype, got {} ({})",
                    shapes(inputs),
                    dtypes(inputs)
                );
            }
            (x.shape().into(), x.dtype())
        }
        Op::LayerNorm { .. } => {
            if inputs.is_empty() {
                fail!("{name}: expected 1 or 3 inputs, got none");
            }
            let x = inputs[0];
            let d = x.shape().last().copied();
            let affine_ok = inputs.len() == 1
                || (inputs.len() == 3
                    && inputs[1..].iter().all(|t| {
                        t.rank() == 1 && Some(t.shape()[0]) == d && t.dtype() == x.dtype()
                    }));
            if d.is_none() || !x.dtype().is_float() || !affine_ok {
                fail!(
                    "{name}: expected a float tensor with at least 1 dim, optionally with weight \
                     and bias of its last dim's size and dtype, got {} ({})",
                    shapes(inputs),
                    dtypes(inputs)
                );
            }
            (x.shape().into(), x.dtype())
        }
        Op::Attention { .. } | Op::AttentionBackward { .. } => {
            let n = if matches!(op, Op::Attention { .. }) {
                3
            } else {
                4
            };
            expect_arity(op, inputs, n)?;
            let q = inputs[0];
            if q.rank() < 2
                || !matches!(q.dtype(), DType::F32 | DType::F64)
                || inputs
                    .iter()
                    .any(|t| t.shape() != q.shape() || t.dtype() != q.dtype())
            {
                fail!(
                    "{name}: expected f32 or f64 tensors of one shape [.., T, D], got {} ({})",
                    shapes(inputs),
                    dtypes(inputs)
                );
            }
            let mut s: Shape = q.shape().into();
            if n == 4 {
                s.insert(0, 3);
            }
            (s, q.dtype())
        }
        Op::LayerNormBackward { .. } => {
            expect_arity(op, inputs, 2)?;
            let (x, g) = (inputs[0], inputs[1]);
            if x.rank() == 0
                || x.shape() != g.shape()
                || x.dtype() != g.dtype()
                || !x.dtype().is_float()
            {
                fail!(
                    "{name}: x and g must be float tensors of one shape (at least 1 dim) and \
                     dtype, got {} ({})",
                    shapes(inputs),
                    dtypes(inputs)
                );
            }
            (x.shape().into(), x.dtype())
        }
        Op::Softmax { dim, .. } => {
            expect_arity(op, inputs, 1)?;
            let x = inputs[0];
            if *dim >= x.rank().max(1) {
                fail!(
                    "{name}: dim {dim} is out of range for a tensor of shape {:?} ({})",
                    x.shape(),
                    x.dtype()
                );
            }
            (x.shape().into(), float_dtype(x.dtype()))
        }
        _ => unreachable!("infer_nn: {}", op.name()),
    })
}

/// Gathers and scatters along one dim.
fn infer_index<T: ValueType>(op: &Op, inputs: &[&T]) -> InferResult<(Shape, DType)> {
    Ok(match op {
        Op::IndexSelect(dim) => {
            expect_arity(op, inputs, 2)?;
            let (x, idx) = (inputs[0], inputs[1]);
            expect_index(op, idx, "index")?;
            expect_dim_of(op, *dim, x.shape())?;
            if idx.rank() != 1 {
                fail!(
                    "index_select: index must be 1-D, got shape {:?}",
                    idx.shape()
                );
            }
            let mut s: Shape = x.shape().into();
            s[*dim] = idx.numel();
            (s, x.dtype())
        }
        Op::IndexAdd(dim) => {
            expect_arity(op, inputs, 3)?;
            let (base, idx, src) = (inputs[0], inputs[1], inputs[2]);
            expect_index(op, idx, "index")?;
            expect_dim_of(op, *dim, base.shape())?;
            let mut expect: Shape = base.shape().into();
            expect[*dim] = idx.numel();
            if idx.rank() != 1 || src.shape() != expect.as_slice() || src.dtype() != base.dtype() {
                fail!(
                    "index_add: base {:?} ({}), index {:?}, source {:?} ({}): source must have shape {:?}",
                    base.shape(),
                    base.dtype(),
                    idx.shape(),
                    src.shape(),
                    src.dtype(),
                    expect
                );
            }
            (base.shape().into(), base.dtype())
        }
        Op::Gather(dim) => {
            expect_arity(op, inputs, 2)?;
            let (x, idx) = (inputs[0], inputs[1]);
            expect_index(op, idx, "index")?;
            expect_dim(op, *dim, x.shape())?;
            let ok = idx.rank() == x.rank()
                && idx
                    .shape()
                    .iter()
                    .enumerate()
                    .all(|(i, &s)| i == *dim || s <= x.shape()[i]);
            if !ok {
                fail!(
                    "gather: index shape {:?} does not fit input shape {:?} at dim {dim}",
                    idx.shape(),
                    x.shape()
                );
            }
            (idx.shape().into(), x.dtype())
        }
        Op::ScatterAdd(dim) => {
            expect_arity(op, inputs, 3)?;
            let (base, idx, src) = (inputs[0], inputs[1], inputs[2]);
            expect_index(op, idx, "index")?;
            expect_dim(op, *dim, base.shape())?;
            let ok = idx.rank() == base.rank()
                && src.rank() == base.rank()
                && src.dtype() == base.dtype()
                && idx
                    .shape()
                    .iter()
                    .enumerate()
                    .all(|(i, &s)| s <= src.shape()[i] && (i == *dim || s <= base.shape()[i]));
            if !ok {
                fail!(
                    "scatter_add: base {:?} ({}), index {:?}, source {:?} ({}) do not fit at dim {dim}",
                    base.shape(),
                    base.dtype(),
                    idx.shape(),
                    src.shape(),
                    src.dtype()
                );
            }
            (base.shape().into(), base.dtype())
        }
        _ => unreachable!("infer_index: {}", op.name()),
    })
}

/// Matrix products and their fused epilogues and backward ops.
fn infer_matmul<T: ValueType>(op: &Op, inputs: &[&T]) -> InferResult<(Shape, DType)> {
    Ok(match op {
        Op::MatmulGeluBackward | Op::MatmulReluBackward => {
            let name = op.name();
            if inputs.len() != 3 {
                fail!("{name}: expected 3 inputs (a, b, x), got {}", inputs.len());
            }
            let (a, b, x) = (inputs[0], inputs[1], inputs[2]);
            let ok = [a, b, x]
                .iter()
                .all(|t| t.dtype() == DType::F32 && t.rank() == 2)
                && a.shape()[1] == b.shape()[0]
                && x.shape() == [a.shape()[0], b.shape()[1]];
            if !ok {
                fail!(
                    "{name}: needs f32 a [m, k], b [k, n], x [m, n], got {:?} ({}), \
                     {:?} ({}), {:?} ({})",
                    a.shape(),
                    a.dtype(),
                    b.shape(),
                    b.dtype(),
                    x.shape(),
                    x.dtype()
                );
            }
            (x.shape().into(), DType::F32)
        }
        Op::MatmulGeluRhs => {
            if inputs.len() != 2 {
                fail!(
                    "matmul_gelu_rhs: expected 2 inputs (a, x), got {}",
                    inputs.len()
                );
            }
            let (a, x) = (inputs[0], inputs[1]);
            let ok = [a, x]
                .iter()
                .all(|t| t.dtype() == DType::F32 && t.rank() == 2)
                && a.shape()[1] == x.shape()[0];
            if !ok {
                fail!(
                    "matmul_gelu_rhs: needs f32 a [m, k] and x [k, n], got {:?} ({}), {:?} ({})",
                    a.shape(),
                    a.dtype(),
                    x.shape(),
                    x.dtype()
                );
            }
            ([a.shape()[0], x.shape()[1]][..].into(), DType::F32)
        }
        Op::MatmulAct(_) => {
            let (shape, dtype) = infer_general(&Op::Matmul, inputs)?;
            if !dtype.is_float() {
                fail!(
                    "{}: needs float operands, got {:?} @ {:?} ({})",
                    op.name(),
                    inputs[0].shape(),
                    inputs[1].shape(),
                    dtype
                );
            }
            (shape, dtype)
        }
        Op::Matmul => {
            if inputs.len() != 2 && inputs.len() != 3 {
                fail!(
                    "matmul: expected 2 inputs (or 3 with a bias), got {}",
                    inputs.len()
                );
            }
            let (a, b) = (inputs[0], inputs[1]);
            if a.rank() < 2 || b.rank() < 2 {
                fail!(
                    "matmul: primitive needs rank ≥ 2 operands, got {:?} @ {:?}",
                    a.shape(),
                    b.shape()
                );
            }
            let (m, k1) = (a.shape()[a.rank() - 2], a.shape()[a.rank() - 1]);
            let (k2, n) = (b.shape()[b.rank() - 2], b.shape()[b.rank() - 1]);
            if k1 != k2 {
                fail!(
                    "matmul: {:?} @ {:?}: inner dimensions {k1} and {k2} differ",
                    a.shape(),
                    b.shape()
                );
            }
            if a.dtype() != b.dtype() {
                fail!(
                    "matmul: {:?} ({}) @ {:?} ({}): dtypes differ{}",
                    a.shape(),
                    a.dtype(),
                    b.shape(),
                    b.dtype(),
                    cast_hint(a.dtype(), b.dtype())
                );
            }
            if a.dtype() == DType::Bool {
                fail!(
                    "matmul: bool operands are not supported ({:?} @ {:?})",
                    a.shape(),
                    b.shape()
                );
            }
            let Some(mut s) =
                broadcast_shapes(&a.shape()[..a.rank() - 2], &b.shape()[..b.rank() - 2])
            else {
                fail!(
                    "matmul: batch dims of {:?} and {:?} cannot be broadcast",
                    a.shape(),
                    b.shape()
                )
            };
            s.push(m);
            s.push(n);
            if let Some(bias) = inputs.get(2) {
                if bias.shape() != [n] || bias.dtype() != a.dtype() {
                    fail!(
                        "matmul: bias must be [{n}] of dtype {} for {:?} @ {:?}, got {:?} ({})",
                        a.dtype(),
                        a.shape(),
                        b.shape(),
                        bias.shape(),
                        bias.dtype()
                    );
                }
            }
            (s, a.dtype())
        }
        _ => unreachable!("infer_matmul: {}", op.name()),
    })
}

/// Sliding windows (im2col) and their adjoint.
fn infer_unfold<T: ValueType>(op: &Op, inputs: &[&T]) -> InferResult<(Shape, DType)> {
    Ok(match op {
        Op::Unfold {
            kernel,
            stride,
            padding,
            dilation,
            ..
        } => {
            expect_arity(op, inputs, 1)?;
            let x = inputs[0];
            if x.rank() != 4 {
                fail!(
                    "unfold: expected a 4-D [N, C, H, W] input, got {:?}",
                    x.shape()
                );
            }
            let (n, c, h, w) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
            let axis = |a: usize| [kernel[a], stride[a], padding[a], dilation[a]];
            let oh = window_len(op, h, axis(0), x.shape())?;
            let ow = window_len(op, w, axis(1), x.shape())?;
            (
                [
                    n,
                    mul_sizes(op, &[c, kernel[0], kernel[1]])?,
                    mul_sizes(op, &[oh, ow])?,
                ]
                .as_slice()
                .into(),
                x.dtype(),
            )
        }
        Op::Fold {
            output,
            kernel,
            stride,
            padding,
            dilation,
        } => {
            expect_arity(op, inputs, 1)?;
            let x = inputs[0];
            let axis = |a: usize| [kernel[a], stride[a], padding[a], dilation[a]];
            let oh = window_len(op, output[0], axis(0), x.shape())?;
            let ow = window_len(op, output[1], axis(1), x.shape())?;
            // Both kernel sizes are positive here (window_len refuses 0).
            let kk = mul_sizes(op, &kernel[..])?;
            let blocks = mul_sizes(op, &[oh, ow])?;
            if x.rank() != 3 || !x.shape()[1].is_multiple_of(kk) || x.shape()[2] != blocks {
                fail!(
                    "fold: input {:?} does not match kernel {:?} and output size {:?} (expected [N, C·{kk}, {blocks}])",
                    x.shape(),
                    kernel,
                    output,
                );
            }
            (
                [x.shape()[0], x.shape()[1] / kk, output[0], output[1]]
                    .as_slice()
                    .into(),
                x.dtype(),
            )
        }
        _ => unreachable!("infer_unfold: {}", op.name()),
    })
}

/// Output length of `op`'s window along one spatial dim ([`super::window::conv_len`]), or
/// why the window does not fit.
fn window_len(
    op: &Op,
    size: usize,
    [k, s, p, d]: [usize; 4],
    shape: &[usize],
) -> InferResult<usize> {
    match super::window::conv_len(size, k, s, p, d) {
        Some(n) => Ok(n),
        None => fail!(
            "{}: kernel {k} (stride {s}, dilation {d}) does not fit input size {size} with \
             padding {p} (input shape {shape:?})",
            op.name()
        ),
    }
}

/// The product of sizes that make one output dim, or an error naming `op` when it passes
/// `usize` (the output's total size is checked after inference).
fn mul_sizes(op: &Op, sizes: &[usize]) -> InferResult<usize> {
    match sizes.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)) {
        Some(n) => Ok(n),
        None => fail!("{}: sizes {sizes:?} overflow", op.name()),
    }
}

/// Shape and dtype of a fused elementwise op (kept out of `infer` so the eager path stays
/// small enough to inline).
#[cold]
#[inline(never)]
fn infer_fused<T: ValueType>(
    program: &super::fused::FusedProgram,
    inputs: &[&T],
) -> InferResult<(Shape, DType)> {
    if let Err(e) = program.validate() {
        fail!("{e}");
    }
    if inputs.len() != program.n_inputs as usize {
        fail!(
            "fused: program takes {} inputs, got {}",
            program.n_inputs,
            inputs.len()
        );
    }
    let mut shape = Shape::new();
    for t in inputs {
        if !matches!(t.dtype(), DType::F32 | DType::Bool) {
            fail!(
                "fused: inputs must be f32 or bool, got {} ({:?})",
                t.dtype(),
                t.shape()
            );
        }
        let Some(s) = broadcast_shapes(&shape, t.shape()) else {
            fail!("fused: input shapes {} do not broadcast", shapes(inputs))
        };
        shape = s;
    }
    // A store writes the whole iteration space into its input: it must be that big.
    for st in &program.stores {
        let t = inputs[st.input as usize];
        if t.shape() != shape.as_slice() || t.dtype() != DType::F32 {
            fail!(
                "fused: store into input {} ({} {:?}) needs an f32 input of the iteration shape {shape:?}",
                st.input,
                t.dtype(),
                t.shape()
            );
        }
    }
    if let Some(r) = &program.reduce {
        let sorted = r.dims.windows(2).all(|w| w[0] < w[1]);
        if !sorted || r.dims.last().is_some_and(|&d| d >= shape.len()) {
            fail!(
                "fused: reduction dims {:?} must be sorted, distinct and in range for shape {shape:?}",
                r.dims
            );
        }
        return Ok((reduced_shape(&shape, &r.dims, r.keepdim), DType::F32));
    }
    Ok((shape, DType::F32))
}
