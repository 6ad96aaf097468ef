//! Shape and dtype inference for every primitive op, with PyTorch-style panic messages that
//! name the op, the shapes and the dtypes.

use super::{Distribution, Op};
use crate::dtype::DType;
use crate::shape::{broadcast_shapes, numel, same_shape, shape_of, Shape};
use crate::tensor::Tensor;

fn shapes(inputs: &[&Tensor]) -> String {
    inputs
        .iter()
        .map(|t| format!("{:?}", t.shape()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn dtypes(inputs: &[&Tensor]) -> String {
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

fn is_integral(v: f64) -> bool {
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

fn expect_arity(op: &Op, inputs: &[&Tensor], n: usize) {
    if inputs.len() != n {
        panic!("{}: expected {n} inputs, got {}", op.name(), inputs.len());
    }
}

fn expect_index(op: &Op, t: &Tensor, what: &str) {
    if t.dtype() != DType::I64 && t.dtype() != DType::I32 {
        panic!(
            "{}: {what} must be an i64 tensor, got {} with shape {:?}",
            op.name(),
            t.dtype(),
            t.shape()
        );
    }
}

/// Output dtype of a binary elementwise op (`op.is_binary()`).
fn binary_dtype(op: &Op, a: &Tensor, b: &Tensor) -> DType {
    let promoted = DType::promote(a.dtype(), b.dtype());
    match op {
        Op::Compare(_) => DType::Bool,
        Op::Div | Op::Pow => float_dtype(promoted),
        Op::Sub if promoted == DType::Bool => {
            panic!(
                "sub: subtraction of bool tensors is not supported; use logical_xor or cast first"
            )
        }
        _ => promoted,
    }
}

/// Output shape and dtype of `op` applied to `inputs`; panics on misuse.
#[inline(always)]
pub fn infer(op: &Op, inputs: &[&Tensor]) -> (Shape, DType) {
    // The common eager case, a binary op on two same-shape operands, stays small enough to
    // inline into `dispatch` (the output shape is built once, in place).
    if let [a, b] = inputs {
        if op.is_binary() && same_shape(a.shape(), b.shape()) {
            return (shape_of(a.shape()), binary_dtype(op, a, b));
        }
    }
    infer_general(op, inputs)
}

fn infer_general(op: &Op, inputs: &[&Tensor]) -> (Shape, DType) {
    let name = op.name();
    if op.is_unary() {
        expect_arity(op, inputs, 1);
        let x = inputs[0];
        let d = x.dtype();
        let out = match op {
            Op::Relu | Op::Abs | Op::Sign | Op::Clamp { .. } => {
                if d == DType::Bool {
                    panic!(
                        "{name}: not supported for bool tensors (shape {:?})",
                        x.shape()
                    );
                }
                d
            }
            Op::Affine { mul, add } => {
                if d.is_float() {
                    d
                } else if is_integral(*mul) && is_integral(*add) {
                    if d == DType::Bool {
                        DType::I64
                    } else {
                        d
                    }
                } else {
                    DType::F32
                }
            }
            Op::LogicalNot => DType::Bool,
            _ => float_dtype(d),
        };
        return (shape_of(x.shape()), out);
    }
    match op {
        Op::Add
        | Op::Sub
        | Op::Mul
        | Op::Div
        | Op::Pow
        | Op::Maximum
        | Op::Minimum
        | Op::Compare(_) => {
            expect_arity(op, inputs, 2);
            let (a, b) = (inputs[0], inputs[1]);
            // Same shapes (the common case) need no broadcasting work.
            let same = same_shape(a.shape(), b.shape()).then(|| shape_of(a.shape()));
            let shape = same
                .or_else(|| broadcast_shapes(a.shape(), b.shape()))
                .unwrap_or_else(|| {
                    panic!(
                        "{name}: shapes {:?} and {:?} cannot be broadcast together ({}, {})",
                        a.shape(),
                        b.shape(),
                        a.dtype(),
                        b.dtype()
                    )
                });
            (shape, binary_dtype(op, a, b))
        }
        Op::Where => {
            expect_arity(op, inputs, 3);
            let (c, a, b) = (inputs[0], inputs[1], inputs[2]);
            if c.dtype() != DType::Bool {
                panic!(
                    "where: condition must be bool, got {} ({})",
                    c.dtype(),
                    shapes(inputs)
                );
            }
            let s = broadcast_shapes(a.shape(), b.shape())
                .and_then(|s| broadcast_shapes(&s, c.shape()))
                .unwrap_or_else(|| {
                    panic!(
                        "where: shapes {} cannot be broadcast together",
                        shapes(inputs)
                    )
                });
            (s, DType::promote(a.dtype(), b.dtype()))
        }
        Op::Sum { dims, keepdim } | Op::Prod { dims, keepdim } => {
            expect_arity(op, inputs, 1);
            let x = inputs[0];
            let d = if x.dtype().is_float() {
                x.dtype()
            } else {
                DType::I64
            };
            (reduced_shape(x.shape(), dims, *keepdim), d)
        }
        Op::Max { dims, keepdim } | Op::Min { dims, keepdim } => {
            expect_arity(op, inputs, 1);
            let x = inputs[0];
            for &d in dims.iter() {
                if x.shape()[d] == 0 {
                    panic!(
                        "{name}: cannot reduce over an empty dim {d} of shape {:?}",
                        x.shape()
                    );
                }
            }
            (reduced_shape(x.shape(), dims, *keepdim), x.dtype())
        }
        Op::ArgMax { dim, keepdim } | Op::ArgMin { dim, keepdim } => {
            expect_arity(op, inputs, 1);
            let x = inputs[0];
            if x.shape().get(*dim).copied().unwrap_or(1) == 0 {
                panic!(
                    "{name}: cannot reduce over an empty dim {dim} of shape {:?}",
                    x.shape()
                );
            }
            (reduced_shape(x.shape(), &[*dim], *keepdim), DType::I64)
        }
        Op::Reshape(shape) => {
            let x = inputs[0];
            if numel(shape) != x.numel() {
                panic!(
                    "reshape: cannot reshape {:?} ({} elements) into {:?}",
                    x.shape(),
                    x.numel(),
                    shape
                );
            }
            (shape.clone(), x.dtype())
        }
        Op::Permute(perm) => {
            let x = inputs[0];
            let mut seen = vec![false; x.rank()];
            if perm.len() != x.rank()
                || perm
                    .iter()
                    .any(|&p| p >= x.rank() || std::mem::replace(&mut seen[p], true))
            {
                panic!(
                    "permute: {:?} is not a permutation of the dims of a tensor of shape {:?}",
                    perm,
                    x.shape()
                );
            }
            (perm.iter().map(|&p| x.shape()[p]).collect(), x.dtype())
        }
        Op::Expand(shape) => {
            let x = inputs[0];
            let ok = shape.len() >= x.rank()
                && x.shape()
                    .iter()
                    .enumerate()
                    .all(|(i, &s)| s == 1 || s == shape[i + shape.len() - x.rank()]);
            if !ok {
                panic!(
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
            let x = inputs[0];
            let size = x.shape()[*dim];
            if *step == 0 || (*len > 0 && start + (len - 1) * step >= size) {
                panic!(
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
            let x = inputs[0];
            let len = x.shape()[*dim];
            if len > 0 && start + (len - 1) * step >= *size {
                panic!("slice_scatter: {len} entries from {start} step {step} do not fit in size {size}");
            }
            let mut s: Shape = x.shape().into();
            s[*dim] = *size;
            (s, x.dtype())
        }
        Op::Contiguous => (inputs[0].shape().into(), inputs[0].dtype()),
        Op::GeluBackward => {
            expect_arity(op, inputs, 2);
            let (x, g) = (inputs[0], inputs[1]);
            if x.shape() != g.shape() || x.dtype() != g.dtype() || !x.dtype().is_float() {
                panic!(
                    "{name}: x and g must be float tensors of one shape and dtype, got {} ({})",
                    shapes(inputs),
                    dtypes(inputs)
                );
            }
            (x.shape().into(), x.dtype())
        }
        Op::LayerNorm { .. } => {
            let x = inputs[0];
            let d = x.shape().last().copied();
            let affine_ok = inputs.len() == 1
                || (inputs.len() == 3
                    && inputs[1..].iter().all(|t| {
                        t.rank() == 1 && Some(t.shape()[0]) == d && t.dtype() == x.dtype()
                    }));
            if d.is_none() || !x.dtype().is_float() || !affine_ok {
                panic!(
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
            expect_arity(op, inputs, n);
            let q = inputs[0];
            if q.rank() < 2
                || !matches!(q.dtype(), DType::F32 | DType::F64)
                || inputs
                    .iter()
                    .any(|t| t.shape() != q.shape() || t.dtype() != q.dtype())
            {
                panic!(
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
            expect_arity(op, inputs, 2);
            let (x, g) = (inputs[0], inputs[1]);
            if x.rank() == 0
                || x.shape() != g.shape()
                || x.dtype() != g.dtype()
                || !x.dtype().is_float()
            {
                panic!(
                    "{name}: x and g must be float tensors of one shape (at least 1 dim) and \
                     dtype, got {} ({})",
                    shapes(inputs),
                    dtypes(inputs)
                );
            }
            (x.shape().into(), x.dtype())
        }
        Op::Softmax { dim, .. } => {
            expect_arity(op, inputs, 1);
            let x = inputs[0];
            if *dim >= x.rank().max(1) {
                panic!(
                    "{name}: dim {dim} is out of range for a tensor of shape {:?} ({})",
                    x.shape(),
                    x.dtype()
                );
            }
            (x.shape().into(), float_dtype(x.dtype()))
        }
        Op::Cast(d) => (inputs[0].shape().into(), *d),
        Op::Cat(dim) => {
            if inputs.is_empty() {
                panic!("cat: expected a non-empty list of tensors");
            }
            let first = inputs[0];
            let mut s: Shape = first.shape().into();
            if *dim >= s.len() {
                panic!("cat: dim {dim} out of range for shapes {}", shapes(inputs));
            }
            s[*dim] = 0;
            for t in inputs {
                let ok = t.rank() == first.rank()
                    && t.shape()
                        .iter()
                        .enumerate()
                        .all(|(i, &v)| i == *dim || v == first.shape()[i]);
                if !ok {
                    panic!("cat: shapes {} differ outside dim {dim}", shapes(inputs));
                }
                if t.dtype() != first.dtype() {
                    panic!("cat: dtypes differ ({})", dtypes(inputs));
                }
                s[*dim] += t.shape()[*dim];
            }
            (s, first.dtype())
        }
        Op::IndexSelect(dim) => {
            expect_arity(op, inputs, 2);
            let (x, idx) = (inputs[0], inputs[1]);
            expect_index(op, idx, "index");
            if idx.rank() != 1 {
                panic!(
                    "index_select: index must be 1-D, got shape {:?}",
                    idx.shape()
                );
            }
            let mut s: Shape = x.shape().into();
            s[*dim] = idx.numel();
            (s, x.dtype())
        }
        Op::IndexAdd(dim) => {
            expect_arity(op, inputs, 3);
            let (base, idx, src) = (inputs[0], inputs[1], inputs[2]);
            expect_index(op, idx, "index");
            let mut expect: Shape = base.shape().into();
            expect[*dim] = idx.numel();
            if idx.rank() != 1 || src.shape() != expect.as_slice() || src.dtype() != base.dtype() {
                panic!(
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
            expect_arity(op, inputs, 2);
            let (x, idx) = (inputs[0], inputs[1]);
            expect_index(op, idx, "index");
            let ok = idx.rank() == x.rank()
                && idx
                    .shape()
                    .iter()
                    .enumerate()
                    .all(|(i, &s)| i == *dim || s <= x.shape()[i]);
            if !ok {
                panic!(
                    "gather: index shape {:?} does not fit input shape {:?} at dim {dim}",
                    idx.shape(),
                    x.shape()
                );
            }
            (idx.shape().into(), x.dtype())
        }
        Op::ScatterAdd(dim) => {
            expect_arity(op, inputs, 3);
            let (base, idx, src) = (inputs[0], inputs[1], inputs[2]);
            expect_index(op, idx, "index");
            let ok = idx.rank() == base.rank()
                && src.rank() == base.rank()
                && src.dtype() == base.dtype()
                && idx
                    .shape()
                    .iter()
                    .enumerate()
                    .all(|(i, &s)| s <= src.shape()[i] && (i == *dim || s <= base.shape()[i]));
            if !ok {
                panic!(
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
        Op::MatmulGeluBackward | Op::MatmulReluBackward => {
            let name = op.name();
            if inputs.len() != 3 {
                panic!("{name}: expected 3 inputs (a, b, x), got {}", inputs.len());
            }
            let (a, b, x) = (inputs[0], inputs[1], inputs[2]);
            let ok = [a, b, x]
                .iter()
                .all(|t| t.dtype() == DType::F32 && t.rank() == 2)
                && a.shape()[1] == b.shape()[0]
                && x.shape() == [a.shape()[0], b.shape()[1]];
            if !ok {
                panic!(
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
                panic!(
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
                panic!(
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
            let (shape, dtype) = infer(&Op::Matmul, inputs);
            if !dtype.is_float() {
                panic!(
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
                panic!(
                    "matmul: expected 2 inputs (or 3 with a bias), got {}",
                    inputs.len()
                );
            }
            let (a, b) = (inputs[0], inputs[1]);
            if a.rank() < 2 || b.rank() < 2 {
                panic!(
                    "matmul: primitive needs rank ≥ 2 operands, got {:?} @ {:?}",
                    a.shape(),
                    b.shape()
                );
            }
            let (m, k1) = (a.shape()[a.rank() - 2], a.shape()[a.rank() - 1]);
            let (k2, n) = (b.shape()[b.rank() - 2], b.shape()[b.rank() - 1]);
            if k1 != k2 {
                panic!(
                    "matmul: {:?} @ {:?}: inner dimensions {k1} and {k2} differ",
                    a.shape(),
                    b.shape()
                );
            }
            if a.dtype() != b.dtype() {
                panic!(
                    "matmul: {:?} ({}) @ {:?} ({}): dtypes differ",
                    a.shape(),
                    a.dtype(),
                    b.shape(),
                    b.dtype()
                );
            }
            if a.dtype() == DType::Bool {
                panic!(
                    "matmul: bool operands are not supported ({:?} @ {:?})",
                    a.shape(),
                    b.shape()
                );
            }
            let mut s = broadcast_shapes(&a.shape()[..a.rank() - 2], &b.shape()[..b.rank() - 2])
                .unwrap_or_else(|| {
                    panic!(
                        "matmul: batch dims of {:?} and {:?} cannot be broadcast",
                        a.shape(),
                        b.shape()
                    )
                });
            s.push(m);
            s.push(n);
            if let Some(bias) = inputs.get(2) {
                if bias.shape() != [n] || bias.dtype() != a.dtype() {
                    panic!(
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
        Op::Unfold {
            kernel,
            stride,
            padding,
            dilation,
            ..
        } => {
            expect_arity(op, inputs, 1);
            let x = inputs[0];
            if x.rank() != 4 {
                panic!(
                    "unfold: expected a 4-D [N, C, H, W] input, got {:?}",
                    x.shape()
                );
            }
            let (n, c, h, w) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
            let oh = conv_out(h, kernel[0], stride[0], padding[0], dilation[0], x.shape());
            let ow = conv_out(w, kernel[1], stride[1], padding[1], dilation[1], x.shape());
            (
                [n, c * kernel[0] * kernel[1], oh * ow].as_slice().into(),
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
            expect_arity(op, inputs, 1);
            let x = inputs[0];
            let kk = kernel[0] * kernel[1];
            let oh = conv_out(
                output[0],
                kernel[0],
                stride[0],
                padding[0],
                dilation[0],
                x.shape(),
            );
            let ow = conv_out(
                output[1],
                kernel[1],
                stride[1],
                padding[1],
                dilation[1],
                x.shape(),
            );
            if x.rank() != 3 || !x.shape()[1].is_multiple_of(kk) || x.shape()[2] != oh * ow {
                panic!(
                    "fold: input {:?} does not match kernel {:?} and output size {:?} (expected [N, C·{kk}, {}])",
                    x.shape(),
                    kernel,
                    output,
                    oh * ow
                );
            }
            (
                [x.shape()[0], x.shape()[1] / kk, output[0], output[1]]
                    .as_slice()
                    .into(),
                x.dtype(),
            )
        }
        Op::Random {
            shape, dtype, dist, ..
        } => {
            if !dtype.is_float() {
                panic!("random: {dist:?} samples need a float dtype, got {dtype}");
            }
            let _ = Distribution::Uniform;
            (shape.clone(), *dtype)
        }
        Op::Fused(program) => infer_fused(program, inputs),
        Op::AdamStep(h) => {
            use super::optim::adam_args::*;
            let p = inputs
                .first()
                .unwrap_or_else(|| panic!("adam_step: no operands"));
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
                panic!(
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
        Op::Conv2d(_)
        | Op::Conv2dInputGrad { .. }
        | Op::Conv2dWeightGrad { .. }
        | Op::MaxPool2d(_)
        | Op::MaxPool2dBackward(_) => super::window::infer(op, inputs),
        _ => unreachable!("infer: unhandled op {}", name),
    }
}

/// Output length of a convolution-like window along one spatial dim.
pub fn conv_out(size: usize, k: usize, s: usize, p: usize, d: usize, shape: &[usize]) -> usize {
    let eff = d * (k - 1) + 1;
    if size + 2 * p < eff || s == 0 {
        panic!(
            "unfold: kernel {k} (dilation {d}) does not fit input size {size} with padding {p} (input shape {shape:?})"
        );
    }
    (size + 2 * p - eff) / s + 1
}

/// Shape and dtype of a fused elementwise op (kept out of `infer` so the eager path stays
/// small enough to inline).
#[cold]
#[inline(never)]
fn infer_fused(program: &super::fused::FusedProgram, inputs: &[&Tensor]) -> (Shape, DType) {
    if let Err(e) = program.validate() {
        panic!("{e}");
    }
    if inputs.len() != program.n_inputs as usize {
        panic!(
            "fused: program takes {} inputs, got {}",
            program.n_inputs,
            inputs.len()
        );
    }
    let mut shape = Shape::new();
    for t in inputs {
        if !matches!(t.dtype(), DType::F32 | DType::Bool) {
            panic!(
                "fused: inputs must be f32 or bool, got {} ({:?})",
                t.dtype(),
                t.shape()
            );
        }
        shape = broadcast_shapes(&shape, t.shape())
            .unwrap_or_else(|| panic!("fused: input shapes {} do not broadcast", shapes(inputs)));
    }
    if let Some(r) = &program.reduce {
        if r.dims.last().is_some_and(|&d| d >= shape.len()) {
            panic!(
                "fused: reduction dims {:?} out of range for shape {shape:?}",
                r.dims
            );
        }
        return (reduced_shape(&shape, &r.dims, r.keepdim), DType::F32);
    }
    (shape, DType::F32)
}
