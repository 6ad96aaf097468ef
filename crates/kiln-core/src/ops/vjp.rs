//! Vector-Jacobian products of the primitive ops, written with tensor ops so that backward is
//! itself differentiable and traceable.

use super::{Family, Op};
use crate::tensor::Tensor;
use smallvec::{smallvec, SmallVec};
use std::f64::consts::PI;

/// Gradients for each input (`None` where not needed or not differentiable).
pub type InputGrads = SmallVec<[Option<Tensor>; 3]>;

/// Which of an op's tensors its VJP reads the data of (shapes and dtypes are always kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Saves {
    /// Bit `i` set: input `i`'s data is needed.
    pub inputs: u8,
    /// The output's data is needed.
    pub output: bool,
}

impl Saves {
    /// True when input `i`'s data is needed.
    pub fn input(&self, i: usize) -> bool {
        i < 8 && self.inputs & (1 << i) != 0
    }
}

/// What [`vjp`] reads for `op`. Keep in step with `vjp`: a VJP that reads data not listed here
/// reads an empty stand-in and fails loudly (every op is gradchecked).
pub fn saves(op: &Op) -> Saves {
    let s = |inputs: u8, output: bool| Saves { inputs, output };
    match op {
        Op::Unary(u) => {
            let (input, output) = u.saves();
            s(input as u8, output)
        }
        // Output-based VJPs also keep inputs: under create_graph the output is recomputed.
        Op::Softmax { .. } => s(0b1, true),
        Op::Div | Op::Pow => s(0b11, true),
        Op::Prod { .. } => s(0b1, false),
        Op::Max { .. } | Op::Min { .. } => s(0b1, true),
        Op::Mul | Op::Maximum | Op::Minimum | Op::Matmul | Op::GeluBackward => s(0b11, false),
        // The product is recomputed (with its bias) for the activation's VJP.
        Op::MatmulAct(_) => s(0b111, true),
        Op::LayerNorm { .. } => s(0b11, false),
        Op::Attention { .. } => s(0b111, false),
        Op::LayerNormBackward { .. } => s(0b11, false),
        // A conv's bias is not read; its gradient is a sum of the output gradient.
        Op::Conv2d(_) | Op::Conv2dInputGrad { .. } | Op::Conv2dWeightGrad { .. } => s(0b11, false),
        Op::MaxPool2d(_) | Op::MaxPool2dBackward(_) => s(0b1, false),
        Op::Where => s(0b1, false),
        Op::IndexSelect(_) | Op::IndexAdd(_) | Op::Gather(_) | Op::ScatterAdd(_) => s(0b10, false),
        Op::Add
        | Op::Sub
        | Op::Sum { .. }
        | Op::Reshape(_)
        | Op::Permute(_)
        | Op::Expand(_)
        | Op::Slice { .. }
        | Op::SliceScatter { .. }
        | Op::Contiguous
        | Op::Cast(_)
        | Op::Cat(_)
        | Op::Unfold { .. }
        | Op::Fold { .. } => s(0, false),
        // Never differentiated (bool/int outputs or no inputs); keep everything.
        Op::Compare(_)
        | Op::IntBinary(_)
        | Op::ArgMax { .. }
        | Op::ArgMin { .. }
        | Op::Numel { .. }
        | Op::Random { .. }
        | Op::AttentionBackward { .. }
        | Op::Fused(_)
        | Op::MatmulGeluBackward
        | Op::MatmulReluBackward
        | Op::MatmulGeluRhs
        | Op::AdamStep(_) => s(0xff, true),
    }
}

/// Sums a broadcast gradient back down to `shape`.
pub fn sum_to(g: &Tensor, shape: &[usize]) -> Tensor {
    if g.shape() == shape {
        return g.clone();
    }
    let lead = g.rank() - shape.len();
    let mut dims: Vec<usize> = (0..lead).collect();
    for (i, &s) in shape.iter().enumerate() {
        if s == 1 && g.shape()[lead + i] != 1 {
            dims.push(lead + i);
        }
    }
    let summed = if dims.is_empty() {
        g.clone()
    } else {
        g.sum(&dims, true)
    };
    summed.reshape(shape)
}

fn mask(t: &Tensor, like: &Tensor) -> Tensor {
    t.to_dtype(like.dtype())
}

/// The VJP of `y = x̂ · w + b` (or `y = x̂`): `∂/∂x = LayerNormBackward(x, g · w)`,
/// `∂/∂w = Σ g · x̂` and `∂/∂b = Σ g` over all but the last dim (`x̂` recomputed, not saved).
fn layer_norm_vjp(inputs: &[&Tensor], g: &Tensor, eps: f64, needs: &[bool]) -> InputGrads {
    let x = inputs[0];
    let w = inputs.get(1).copied();
    let rows: Vec<usize> = (0..x.rank() - 1).collect();
    let grad_x = needs[0].then(|| {
        let gx_hat = match w {
            Some(w) => g * w,
            None => g.clone(),
        };
        super::dispatch(Op::LayerNormBackward { eps }, &[x, &gx_hat])
    });
    let mut out: InputGrads = smallvec![grad_x];
    if w.is_some() {
        let grad_w = needs[1].then(|| {
            let xhat = super::dispatch(Op::LayerNorm { eps }, &[x]);
            (g * &xhat).sum(rows.as_slice(), false)
        });
        out.push(grad_w);
        out.push(needs[2].then(|| g.sum(rows.as_slice(), false)));
    }
    out
}

/// The VJP of `gx = LayerNormBackward(x, dy)` for an upstream `gg`, per row with `σ` the
/// inverse std, `x̂` the normalized row, `m = mean(dy·x̂)`, `s = Σ gg·x̂`, `a = Σ gg·(dy − mean dy)`:
/// `∂/∂dy = LayerNormBackward(x, gg)` (the map is symmetric in dy) and
/// `∂/∂x = −σ²/D · (x̂·(a − 3·m·s) + s·(dy − mean dy) + D·m·(gg − mean gg))`.
fn layer_norm_backward_vjp(
    x: &Tensor,
    dy: &Tensor,
    gg: &Tensor,
    eps: f64,
    needs: &[bool],
) -> InputGrads {
    let grad_x = needs[0].then(|| {
        let last = [x.rank() - 1];
        let d = x.shape()[last[0]] as f64;
        let xhat = super::dispatch(Op::LayerNorm { eps }, &[x]);
        let centered = x - &x.mean(last, true);
        let rstd = centered.square().mean(last, true).add_scalar(eps).rsqrt();
        let dy_c = dy - &dy.mean(last, true);
        let gg_c = gg - &gg.mean(last, true);
        let m = (dy * &xhat).mean(last, true);
        let s = (gg * &xhat).sum(last, true);
        let a = (gg * &dy_c).sum(last, true);
        let inner = &(&xhat * &(&a - &(&m * &s).affine(3.0, 0.0)))
            + &(&(&s * &dy_c) + &(&m * &gg_c).affine(d, 0.0));
        &rstd.square().affine(-1.0 / d, 0.0) * &inner
    });
    let grad_dy = needs[1].then(|| super::dispatch(Op::LayerNormBackward { eps }, &[x, gg]));
    smallvec![grad_x, grad_dy]
}

/// Computes the gradients of `op`'s inputs given the gradient `g` of its output `y`.
/// `needs[i]` says whether input `i` wants a gradient.
pub fn vjp(op: &Op, inputs: &[&Tensor], y: &Tensor, g: &Tensor, needs: &[bool]) -> InputGrads {
    let x = inputs[0];
    let one = |t: Tensor| -> InputGrads { smallvec![Some(t)] };
    // The saved output is detached (keeping its graph would form a cycle). Under create_graph,
    // VJPs that use it recompute it from the inputs so the gradient stays differentiable.
    let live;
    let y = if crate::autograd::is_grad_enabled()
        && (matches!(op, Op::Softmax { .. } | Op::Div | Op::Pow)
            || matches!(op, Op::Unary(u) if u.recomputes_output()))
        && inputs.iter().any(|t| t.requires_grad())
    {
        live = super::dispatch(op.clone(), inputs);
        &live
    } else {
        y
    };
    match op.family() {
        Family::Unary => match op {
            Op::Unary(u) => match u.vjp(x, y, g) {
                Some(dx) => one(dx),
                None => not_differentiable(op, inputs),
            },
            _ => unreachable!("vjp: {} is not unary", op.name()),
        },
        Family::Elementwise => elementwise_vjp(op, inputs, y, g, needs),
        Family::Reduce => reduce_vjp(op, inputs, y, g, needs),
        Family::Nn => nn_vjp(op, inputs, y, g, needs),
        Family::Layout => layout_vjp(op, inputs, y, g, needs),
        Family::Index => index_vjp(op, inputs, y, g, needs),
        Family::Matmul => matmul_vjp(op, inputs, y, g, needs),
        Family::Unfold => unfold_vjp(op, inputs, y, g, needs),
        Family::Window => window_vjp(op, inputs, g, needs),
        Family::Random | Family::Fused | Family::Optim => not_differentiable(op, inputs),
    }
}

/// VJPs: binary ops with broadcasting and `where`.
fn elementwise_vjp(
    op: &Op,
    inputs: &[&Tensor],
    y: &Tensor,
    g: &Tensor,
    needs: &[bool],
) -> InputGrads {
    let x = inputs[0];
    match op {
        Op::Add => smallvec![
            needs[0].then(|| sum_to(g, x.shape())),
            needs[1].then(|| sum_to(g, inputs[1].shape()))
        ],
        Op::Sub => smallvec![
            needs[0].then(|| sum_to(g, x.shape())),
            needs[1].then(|| sum_to(&-g, inputs[1].shape()))
        ],
        Op::Mul => {
            let b = inputs[1];
            smallvec![
                needs[0].then(|| sum_to(&(g * b), x.shape())),
                needs[1].then(|| sum_to(&(g * x), b.shape()))
            ]
        }
        Op::Div => {
            let b = inputs[1];
            smallvec![
                needs[0].then(|| sum_to(&(g / b), x.shape())),
                needs[1].then(|| sum_to(&-(&(g * y) / b), b.shape()))
            ]
        }
        Op::Pow => {
            let b = inputs[1];
            smallvec![
                needs[0].then(|| sum_to(&(g * &(b * &x.pow(&b.affine(1.0, -1.0)))), x.shape())),
                needs[1].then(|| sum_to(&(g * &(y * &x.log())), b.shape()))
            ]
        }
        Op::Maximum | Op::Minimum => {
            let b = inputs[1];
            let (win_a, win_b) = if matches!(op, Op::Maximum) {
                (x.gt(b), x.lt(b))
            } else {
                (x.lt(b), x.gt(b))
            };
            let tie = mask(&x.eq(b), g).affine(0.5, 0.0);
            smallvec![
                needs[0].then(|| sum_to(&(g * &(&mask(&win_a, g) + &tie)), x.shape())),
                needs[1].then(|| sum_to(&(g * &(&mask(&win_b, g) + &tie)), b.shape()))
            ]
        }
        Op::Where => {
            let (c, a, b) = (inputs[0], inputs[1], inputs[2]);
            let z = Tensor::zeros(&[] as &[usize], g.dtype());
            smallvec![
                None,
                needs[1].then(|| sum_to(&Tensor::where_(c, g, &z), a.shape())),
                needs[2].then(|| sum_to(&Tensor::where_(c, &z, g), b.shape()))
            ]
        }
        _ => not_differentiable(op, inputs),
    }
}

/// VJPs: Reductions over dims.
fn reduce_vjp(op: &Op, inputs: &[&Tensor], y: &Tensor, g: &Tensor, _needs: &[bool]) -> InputGrads {
    let x = inputs[0];
    let one = |t: Tensor| -> InputGrads { smallvec![Some(t)] };
    match op {
        Op::Sum { dims, keepdim } => one(unreduce(g, x.shape(), dims, *keepdim).expand(x.shape())),
        Op::Max { dims, keepdim } | Op::Min { dims, keepdim } => {
            let yk = unreduce(y, x.shape(), dims, *keepdim);
            let gk = unreduce(g, x.shape(), dims, *keepdim);
            let hit = mask(&x.eq(&yk), g);
            let count = hit.sum(dims.as_slice(), true);
            one(&(&gk * &hit) / &count)
        }
        Op::Prod { dims, keepdim } => {
            // ∂y/∂xᵢ = Π_{j≠i} xⱼ without dividing by zero: with no zero in the slice it is
            // y / xᵢ; with exactly one zero, the product of the others at that zero and 0
            // elsewhere; with more zeros, 0.
            let gk = unreduce(g, x.shape(), dims, *keepdim);
            let zero = x.eq_scalar(0.0);
            let ones = x.masked_fill(&zero, 1.0);
            let rest = ones.prod(dims.as_slice(), true);
            let zeros = mask(&zero, x).sum(dims.as_slice(), true);
            let z = Tensor::zeros(&[] as &[usize], x.dtype());
            let lone = Tensor::where_(&zeros.eq_scalar(1.0).logical_and(&zero), &rest, &z);
            one(&gk * &Tensor::where_(&zeros.eq_scalar(0.0), &(&rest / &ones), &lone))
        }
        // y·(g − Σ g·y), as PyTorch's softmax_backward.
        _ => not_differentiable(op, inputs),
    }
}

/// VJPs: softmax, layer norm, attention and GELU backward.
fn nn_vjp(op: &Op, inputs: &[&Tensor], y: &Tensor, g: &Tensor, needs: &[bool]) -> InputGrads {
    let x = inputs[0];
    let one = |t: Tensor| -> InputGrads { smallvec![Some(t)] };
    match op {
        Op::GeluBackward => {
            // y = g·gelu′(x): ∂/∂g is gelu′(x), ∂/∂x is g·gelu″(x) = g·φ(x)·(2 − x²).
            let gg = g;
            let dg = inputs[1];
            let x2 = x * x;
            let pdf = x2
                .affine(-0.5, 0.0)
                .exp()
                .affine(1.0 / (2.0 * PI).sqrt(), 0.0);
            smallvec![
                needs[0].then(|| &(gg * dg) * &(&pdf * &x2.affine(-1.0, 2.0))),
                needs[1].then(|| super::dispatch(Op::GeluBackward, &[x, gg]))
            ]
        }
        Op::Softmax { dim, log: false } => one(y * &(g - &(g * y).sum([*dim], true))),
        // g − softmax·Σ g, with softmax = exp(y).
        Op::Softmax { dim, log: true } => one(g - &(&y.exp() * &g.sum([*dim], true))),
        Op::LayerNorm { eps } => layer_norm_vjp(inputs, g, *eps, needs),
        Op::Attention { scale, causal } => {
            let op = Op::AttentionBackward {
                scale: *scale,
                causal: *causal,
            };
            let packed = super::dispatch(op, &[x, inputs[1], inputs[2], g]);
            (0..3)
                .map(|i| needs[i].then(|| packed.narrow(0, i, 1).squeeze(0)))
                .collect()
        }
        Op::LayerNormBackward { eps } => layer_norm_backward_vjp(x, inputs[1], g, *eps, needs),
        _ => not_differentiable(op, inputs),
    }
}

/// VJPs: Reshapes, views, copies, casts and concatenation.
fn layout_vjp(op: &Op, inputs: &[&Tensor], _y: &Tensor, g: &Tensor, needs: &[bool]) -> InputGrads {
    let x = inputs[0];
    let one = |t: Tensor| -> InputGrads { smallvec![Some(t)] };
    match op {
        Op::Reshape(_) => one(g.reshape(x.shape())),
        Op::Permute(p) => {
            let mut inv = vec![0usize; p.len()];
            for (i, &d) in p.iter().enumerate() {
                inv[d] = i;
            }
            one(g.permute(&inv))
        }
        Op::Expand(_) => one(sum_to(g, x.shape())),
        Op::Slice {
            dim, start, step, ..
        } => one(Tensor::slice_scatter_zeros(
            g,
            *dim,
            *start,
            *step,
            x.shape()[*dim],
        )),
        Op::SliceScatter {
            dim, start, step, ..
        } => one(g.slice_step(*dim, *start, x.shape()[*dim], *step)),
        Op::Contiguous => one(g.clone()),
        Op::Cast(_) => one(g.to_dtype(x.dtype())),
        Op::Cat(dim) => {
            let mut start = 0;
            inputs
                .iter()
                .zip(needs)
                .map(|(t, &need)| {
                    let len = t.shape()[*dim];
                    let r = need.then(|| g.narrow(*dim, start, len));
                    start += len;
                    r
                })
                .collect()
        }
        _ => not_differentiable(op, inputs),
    }
}

/// VJPs: Gathers and scatters along one dim.
fn index_vjp(op: &Op, inputs: &[&Tensor], _y: &Tensor, g: &Tensor, needs: &[bool]) -> InputGrads {
    let x = inputs[0];
    match op {
        Op::IndexSelect(dim) => {
            let idx = inputs[1];
            smallvec![Some(x.zeros_like().index_add(*dim, idx, g)), None]
        }
        Op::IndexAdd(dim) => {
            let idx = inputs[1];
            smallvec![
                needs[0].then(|| g.clone()),
                None,
                needs[2].then(|| g.index_select(*dim, idx))
            ]
        }
        Op::Gather(dim) => {
            let idx = inputs[1];
            smallvec![Some(x.zeros_like().scatter_add(*dim, idx, g)), None]
        }
        Op::ScatterAdd(dim) => {
            let (idx, src) = (inputs[1], inputs[2]);
            if needs[2] && idx.shape() != src.shape() {
                panic!(
                    "scatter_add: the gradient w.r.t. src needs index and src of the same shape, got {:?} and {:?}",
                    idx.shape(),
                    src.shape()
                );
            }
            smallvec![
                needs[0].then(|| g.clone()),
                None,
                needs[2].then(|| g.gather(*dim, idx))
            ]
        }
        _ => not_differentiable(op, inputs),
    }
}

/// VJPs: Matrix products and their fused epilogues.
fn matmul_vjp(op: &Op, inputs: &[&Tensor], y: &Tensor, g: &Tensor, needs: &[bool]) -> InputGrads {
    let x = inputs[0];
    match op {
        Op::MatmulAct(act) => {
            // The composite's VJP: the activation's on the recomputed product, then matmul's.
            let pre = super::dispatch(Op::Matmul, inputs);
            let g_pre = vjp(&act.op(), &[&pre], y, g, &[true])
                .remove(0)
                .expect("activation gradient");
            vjp(&Op::Matmul, inputs, &pre, &g_pre, needs)
        }
        Op::Matmul => {
            let b = inputs[1];
            // For an operand that is a transposed view (`x @ w.t()` in every Linear), produce its
            // gradient in the same transposed layout, so that the view's own VJP (transposing
            // back) hands the parameter a dense gradient instead of one that must be copied.
            let ga = || {
                if is_transposed(x) {
                    b.matmul(&g.transpose(-2, -1)).transpose(-2, -1)
                } else {
                    g.matmul(&b.transpose(-2, -1))
                }
            };
            let gb = || {
                if is_transposed(b) {
                    g.transpose(-2, -1).matmul(x).transpose(-2, -1)
                } else {
                    x.transpose(-2, -1).matmul(g)
                }
            };
            let mut out: InputGrads = smallvec![
                needs[0].then(|| sum_to(&ga(), x.shape())),
                needs[1].then(|| sum_to(&gb(), b.shape()))
            ];
            if let Some(bias) = inputs.get(2) {
                out.push(needs[2].then(|| sum_to(g, bias.shape())));
            }
            out
        }
        _ => not_differentiable(op, inputs),
    }
}

/// VJPs: Sliding windows and their adjoint.
fn unfold_vjp(op: &Op, inputs: &[&Tensor], _y: &Tensor, g: &Tensor, _needs: &[bool]) -> InputGrads {
    let x = inputs[0];
    let one = |t: Tensor| -> InputGrads { smallvec![Some(t)] };
    match op {
        Op::Unfold {
            kernel,
            stride,
            padding,
            dilation,
            ..
        } => one(crate::tensor::Tensor::fold_raw(
            g,
            [x.shape()[2], x.shape()[3]],
            *kernel,
            *stride,
            *padding,
            *dilation,
        )),
        Op::Fold {
            kernel,
            stride,
            padding,
            dilation,
            ..
        } => one(Tensor::unfold_raw(
            g, *kernel, *stride, *padding, *dilation, 0.0,
        )),
        _ => not_differentiable(op, inputs),
    }
}

/// Backward reached an op that has no gradient while an input requires one.
#[track_caller]
fn not_differentiable(op: &Op, inputs: &[&Tensor]) -> ! {
    panic!(
        "backward: op {} is not differentiable but an input requires grad (shapes {:?})",
        op.name(),
        inputs
            .iter()
            .map(|t| t.shape().to_vec())
            .collect::<Vec<_>>()
    )
}

/// VJPs of the convolution and max-pooling primitives. With `B(x, w, gy) = ⟨gy, conv(x, w)⟩`
/// (linear in each argument), the input gradient is `∂B/∂x`, the weight gradient `∂B/∂w`, and
/// the gradients of those two are again partial derivatives of `B`: every convolution VJP is
/// one of the three convolution primitives.
fn window_vjp(op: &Op, inputs: &[&Tensor], g: &Tensor, needs: &[bool]) -> InputGrads {
    let spatial = |t: &Tensor| [t.shape()[2], t.shape()[3]];
    let input_grad = |conv, input, gy: &Tensor, w: &Tensor| {
        super::dispatch(Op::Conv2dInputGrad { conv, input }, &[gy, w])
    };
    let weight_grad = |conv, kernel, x: &Tensor, gy: &Tensor| {
        super::dispatch(Op::Conv2dWeightGrad { conv, kernel }, &[x, gy])
    };
    let conv = |conv, x: &Tensor, w: &Tensor| super::dispatch(Op::Conv2d(conv), &[x, w]);
    match op {
        Op::Conv2d(p) => {
            let (x, w) = (inputs[0], inputs[1]);
            let mut grads: InputGrads = smallvec![
                needs[0].then(|| input_grad(*p, spatial(x), g, w)),
                needs[1].then(|| weight_grad(*p, spatial(w), x, g))
            ];
            if inputs.len() == 3 {
                grads.push(needs[2].then(|| g.sum([0, 2, 3], false)));
            }
            grads
        }
        Op::Conv2dInputGrad { conv: p, .. } => {
            let (gy, w) = (inputs[0], inputs[1]);
            smallvec![
                needs[0].then(|| conv(*p, g, w)),
                needs[1].then(|| weight_grad(*p, spatial(w), g, gy))
            ]
        }
        Op::Conv2dWeightGrad { conv: p, .. } => {
            let (x, gy) = (inputs[0], inputs[1]);
            smallvec![
                needs[0].then(|| input_grad(*p, spatial(x), gy, g)),
                needs[1].then(|| conv(*p, x, g))
            ]
        }
        Op::MaxPool2d(p) => smallvec![Some(super::dispatch(
            Op::MaxPool2dBackward(*p),
            &[inputs[0], g]
        ))],
        Op::MaxPool2dBackward(p) => {
            // Linear in the output gradient (its VJP picks each window's argmax entry of `g`),
            // piecewise constant in x.
            let x = inputs[0];
            let pick = || {
                let idx = super::pool_windows::max_pool2d_indices(x, p);
                let s = idx.shape().to_vec();
                g.reshape([s[0], s[1], x.shape()[2] * x.shape()[3]])
                    .gather(2, &idx.reshape([s[0], s[1], s[2] * s[3]]))
                    .reshape(&s)
            };
            smallvec![needs[0].then(|| x.zeros_like()), needs[1].then(pick)]
        }
        _ => unreachable!("window_vjp: {}", op.name()),
    }
}

/// True for a matrix (batch) whose last two dims are stored column-major, i.e. a transposed
/// view of a dense matrix.
fn is_transposed(t: &Tensor) -> bool {
    let (r, st, sh) = (t.rank(), t.strides(), t.shape());
    r >= 2 && st[r - 2] == 1 && st[r - 1] != 1 && sh[r - 2] > 1 && sh[r - 1] > 1
}

/// Re-inserts reduced dims of size 1 so a reduced tensor broadcasts against the input again.
fn unreduce(t: &Tensor, in_shape: &[usize], dims: &[usize], keepdim: bool) -> Tensor {
    if keepdim {
        return t.clone();
    }
    let shape: Vec<usize> = in_shape
        .iter()
        .enumerate()
        .map(|(i, &s)| if dims.contains(&i) { 1 } else { s })
        .collect();
    t.reshape(&shape)
}
