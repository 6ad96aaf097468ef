//! Network ops: convolutions and pooling (1-D and 2-D, any padding ONNX allows), the
//! normalizations, `Gemm`/`MatMul`, softmax and dropout.

use super::{axis, one, pad_dim, NodeIn, OpDef};
use crate::import::builder::{known_f64s, Builder, Value, R};
use kiln_kernels::ops::{Conv2dParams, Dims, Op, Pool2dParams, UnaryOp};
use kiln_kernels::storage::CpuStorage;
use kiln_kernels::{DType, OwnedOperand};

pub(super) const OPS: &[OpDef] = &[
    def!(
        "Conv",
        conv,
        [
            "auto_pad",
            "kernel_shape",
            "pads",
            "strides",
            "dilations",
            "group"
        ]
    ),
    def!(
        "ConvTranspose",
        conv_transpose,
        [
            "auto_pad",
            "kernel_shape",
            "pads",
            "strides",
            "dilations",
            "group",
            "output_padding",
            "output_shape"
        ]
    ),
    def!(
        "MaxPool",
        max_pool,
        [
            "auto_pad",
            "kernel_shape",
            "pads",
            "strides",
            "dilations",
            "ceil_mode",
            "storage_order"
        ]
    ),
    def!(
        "AveragePool",
        average_pool,
        [
            "auto_pad",
            "kernel_shape",
            "pads",
            "strides",
            "dilations",
            "ceil_mode",
            "count_include_pad"
        ]
    ),
    def!("GlobalAveragePool", |b, n| global_pool(b, n, false)),
    def!("GlobalMaxPool", |b, n| global_pool(b, n, true)),
    def!(
        "BatchNormalization",
        batch_norm,
        ["epsilon", "momentum", "training_mode", "spatial", "is_test"]
    ),
    def!("InstanceNormalization", instance_norm, ["epsilon"]),
    def!(
        "LayerNormalization",
        layer_norm,
        ["axis", "epsilon", "stash_type"]
    ),
    def!(
        "RMSNormalization",
        rms_norm,
        ["axis", "epsilon", "stash_type"]
    ),
    def!("Gemm", gemm, ["alpha", "beta", "transA", "transB"]),
    def!("MatMul", matmul),
    def!("Softmax", |b, n| softmax(b, n, false), ["axis"]),
    def!("LogSoftmax", |b, n| softmax(b, n, true), ["axis"]),
    def!("Dropout", dropout, ["ratio", "seed", "is_test"]),
];

/// The geometry of a window op over `spatial` dims: per dim, kernel, stride, dilation and the
/// padding before and after.
struct Window {
    kernel: Vec<usize>,
    stride: Vec<usize>,
    dilation: Vec<usize>,
    pads: Vec<(usize, usize)>,
}

fn positive(v: Vec<i64>, what: &str) -> R<Vec<usize>> {
    v.into_iter()
        .map(|x| {
            usize::try_from(x)
                .ok()
                .filter(|&x| x > 0)
                .ok_or_else(|| format!("{what} {x} must be positive"))
        })
        .collect()
}

/// Reads a window's attributes; `kernel` is the kernel size when a weight gives it.
fn window(n: &NodeIn, input: &[usize], kernel: Option<&[usize]>) -> R<Window> {
    let sp = input.len();
    let list = |name: &str, default: usize| -> R<Vec<usize>> {
        match n.attrs.ints(name)? {
            None => Ok(vec![default; sp]),
            Some(v) if v.len() == sp => positive(v, name),
            Some(v) => Err(format!(
                "{name} {v:?} has {} values for {sp} spatial dims",
                v.len()
            )),
        }
    };
    let kernel = match (n.attrs.ints("kernel_shape")?, kernel) {
        (Some(k), Some(w)) if positive(k.clone(), "kernel_shape")? != w => {
            return Err(format!(
                "kernel_shape {k:?} differs from the weight's {w:?}"
            ))
        }
        (_, Some(w)) => w.to_vec(),
        (Some(k), None) if k.len() == sp => positive(k, "kernel_shape")?,
        (Some(k), None) => return Err(format!("kernel_shape {k:?} for {sp} spatial dims")),
        (None, None) => return Err("kernel_shape is required".into()),
    };
    let stride = list("strides", 1)?;
    let dilation = list("dilations", 1)?;
    let auto = n
        .attrs
        .string("auto_pad")?
        .unwrap_or_else(|| "NOTSET".into());
    let pads = match auto.as_str() {
        "NOTSET" => match n.attrs.ints("pads")? {
            None => vec![(0, 0); sp],
            Some(p) if p.len() == 2 * sp => {
                let p: Vec<usize> = p
                    .iter()
                    .map(|&x| usize::try_from(x).map_err(|_| format!("pads {p:?} are negative")))
                    .collect::<R<_>>()?;
                (0..sp).map(|i| (p[i], p[i + sp])).collect()
            }
            Some(p) => return Err(format!("pads {p:?} for {sp} spatial dims")),
        },
        "VALID" => vec![(0, 0); sp],
        "SAME_UPPER" | "SAME_LOWER" => (0..sp)
            .map(|i| {
                let out = input[i].div_ceil(stride[i]);
                let eff = dilation[i] * (kernel[i] - 1) + 1;
                let total = ((out.max(1) - 1) * stride[i] + eff).saturating_sub(input[i]);
                let small = total / 2;
                if auto == "SAME_UPPER" {
                    (small, total - small)
                } else {
                    (total - small, small)
                }
            })
            .collect(),
        other => return Err(format!("auto_pad {other:?}")),
    };
    // Bounded so the window arithmetic below cannot overflow (real windows are tiny).
    const MOST: usize = 1 << 20;
    let all = kernel.iter().chain(&stride).chain(&dilation);
    if all
        .chain(pads.iter().flat_map(|(p, q)| [p, q]))
        .any(|&v| v > MOST)
    {
        return Err(format!(
            "a window size, stride, dilation or pad past {MOST}"
        ));
    }
    if input.contains(&0) {
        return Err(format!("an empty spatial dim in {input:?}"));
    }
    Ok(Window {
        kernel,
        stride,
        dilation,
        pads,
    })
}

/// A 1-D window op's operand as 2-D (a height of 1), or a 2-D one as it is.
fn as_2d(b: &mut Builder, x: &Value) -> R<Value> {
    match x.rank() {
        3 => {
            let s = x.shape();
            b.reshape(x, &[s[0], s[1], 1, s[2]])
        }
        4 => Ok(x.clone()),
        r => Err(format!(
            "input of rank {r}: Kiln imports 1-D and 2-D windows (rank 3 or 4)"
        )),
    }
}

/// A window op's result back to 1-D when its input was.
fn from_2d(b: &mut Builder, y: &Value, rank: usize) -> R<Value> {
    if rank == 3 {
        let s = y.shape();
        return b.reshape(y, &[s[0], s[1], s[3]]);
    }
    Ok(y.clone())
}

/// A window over 1 or 2 spatial dims as 2 (a leading dim of size 1 for 1-D).
fn two(v: &[usize], fill: usize) -> [usize; 2] {
    if v.len() == 1 {
        [fill, v[0]]
    } else {
        [v[0], v[1]]
    }
}

/// Pads the spatial dims of a 2-D `x` where the op cannot (`keep(i, before, after)` gives
/// the padding it keeps); returns the padded value and the kept padding.
fn pad_outside(
    b: &mut Builder,
    x: &Value,
    pads: &[(usize, usize)],
    value: f64,
    keep: impl Fn(usize, usize, usize) -> usize,
) -> R<(Value, [usize; 2])> {
    let pads2: Vec<(usize, usize)> = if pads.len() == 1 {
        vec![(0, 0), pads[0]]
    } else {
        pads.to_vec()
    };
    let mut x = x.clone();
    let mut kept = [0; 2];
    for (i, &(before, after)) in pads2.iter().enumerate() {
        let k = keep(i, before, after);
        x = pad_dim(b, &x, 2 + i, before - k, after - k, value)?;
        kept[i] = k;
    }
    Ok((x, kept))
}

fn conv(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    one(conv_of(b, n, n.input(0)?, n.input(1)?, n.opt(2), None)?)
}

/// The convolution of `x` by `w` (plus `bias`) with the node's window attributes (and its
/// `group`, unless `groups` is given); halves (which Kiln's convolution does not take) run in
/// f32 and round back.
pub(super) fn conv_of(
    b: &mut Builder,
    n: &NodeIn,
    x: &Value,
    w: &Value,
    bias: Option<&Value>,
    groups: Option<usize>,
) -> R<Value> {
    let rank = x.rank();
    if w.rank() != rank || rank < 3 {
        return Err(format!("input {:?} and weight {:?}", x.shape(), w.shape()));
    }
    let dtype = x.dtype();
    if matches!(dtype, DType::F16 | DType::BF16) {
        let x = b.cast(x, DType::F32)?;
        let w = b.cast(w, DType::F32)?;
        let bias = match bias {
            Some(v) => Some(b.cast(v, DType::F32)?),
            None => None,
        };
        let y = conv_of(b, n, &x, &w, bias.as_ref(), groups)?;
        return b.cast(&y, dtype);
    }
    let win = window(n, &x.shape()[2..], Some(&w.shape()[2..]))?;
    let groups = match groups {
        Some(g) => g,
        None => usize::try_from(n.attrs.int_or("group", 1)?).map_err(|_| "negative group")?,
    };
    let x2 = as_2d(b, x)?;
    let w2 = as_2d(b, w)?;
    let (x2, padding) = pad_outside(b, &x2, &win.pads, 0.0, |_, p, q| p.min(q))?;
    let params = Conv2dParams {
        stride: two(&win.stride, 1),
        padding,
        dilation: two(&win.dilation, 1),
        groups,
    };
    let mut args = vec![&x2, &w2];
    if let Some(bias) = bias {
        args.push(bias);
    }
    let y = b.op(Op::Conv2d(params), &args)?;
    from_2d(b, &y, rank)
}

fn conv_transpose(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let (x, w) = (n.input(0)?, n.input(1)?);
    let rank = x.rank();
    if w.rank() != rank || rank < 3 {
        return Err(format!("input {:?} and weight {:?}", x.shape(), w.shape()));
    }
    if n.attrs.has("output_shape") {
        return Err("output_shape is not supported (give pads and output_padding)".into());
    }
    if n.attrs.string("auto_pad")?.is_some_and(|a| a != "NOTSET") {
        return Err("auto_pad is not supported for ConvTranspose".into());
    }
    let win = window(n, &x.shape()[2..], Some(&w.shape()[2..]))?;
    let sp = rank - 2;
    let out_pad = match n.attrs.ints("output_padding")? {
        None => vec![0; sp],
        Some(v) if v.len() == sp => v
            .iter()
            .map(|&p| usize::try_from(p).map_err(|_| format!("output_padding {v:?}")))
            .collect::<R<_>>()?,
        Some(v) => return Err(format!("output_padding {v:?} for {sp} spatial dims")),
    };
    let groups = usize::try_from(n.attrs.int_or("group", 1)?).map_err(|_| "negative group")?;
    if win.pads.iter().any(|&(p, q)| p != q) {
        return Err(format!("asymmetric pads {:?}", win.pads));
    }
    // out = (in − 1)·stride − 2·pad + dilation·(kernel − 1) + output_padding + 1
    let out: Vec<usize> = (0..sp)
        .map(|i| {
            ((x.shape()[2 + i] - 1) * win.stride[i]
                + win.dilation[i] * (win.kernel[i] - 1)
                + out_pad[i]
                + 1)
            .checked_sub(2 * win.pads[i].0)
            .ok_or_else(|| "padding larger than the output".to_string())
        })
        .collect::<R<_>>()?;
    let x2 = as_2d(b, x)?;
    let w2 = as_2d(b, w)?;
    let pads: Vec<usize> = win.pads.iter().map(|p| p.0).collect();
    let conv = Conv2dParams {
        stride: two(&win.stride, 1),
        padding: two(&pads, 0),
        dilation: two(&win.dilation, 1),
        groups,
    };
    let mut y = b.op(
        Op::Conv2dInputGrad {
            conv,
            input: two(&out, 1),
        },
        &[&x2, &w2],
    )?;
    if let Some(bias) = n.opt(2) {
        let c = bias.shape().iter().product::<usize>();
        let bias = b.reshape(bias, &[c, 1, 1])?;
        y = b.binary(Op::Add, &y, &bias)?;
    }
    one(from_2d(b, &y, rank)?)
}

fn max_pool(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    n.outputs_at_most(1)?;
    let x = n.input(0)?;
    let rank = x.rank();
    if !(3..=4).contains(&rank) {
        return Err(format!(
            "input of rank {rank}: Kiln imports 1-D and 2-D pooling"
        ));
    }
    let win = window(n, &x.shape()[2..], None)?;
    let x2 = as_2d(b, x)?;
    // The op pads symmetrically by at most half the window; the rest is padded here with −∞.
    let eff: Vec<usize> = (0..win.kernel.len())
        .map(|i| win.dilation[i] * (win.kernel[i] - 1) + 1)
        .collect();
    let eff2 = two(&eff, 1);
    let (x2, padding) = pad_outside(b, &x2, &win.pads, f64::NEG_INFINITY, |i, p, q| {
        if p == q && p <= eff2[i] / 2 {
            p
        } else {
            0
        }
    })?;
    let params = Pool2dParams {
        kernel: two(&win.kernel, 1),
        stride: two(&win.stride, 1),
        padding,
        dilation: two(&win.dilation, 1),
        ceil_mode: n.attrs.int_or("ceil_mode", 0)? != 0,
    };
    let y = b.op(Op::MaxPool2d(params), &[&x2])?;
    one(from_2d(b, &y, rank)?)
}

fn average_pool(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let rank = x.rank();
    if !(3..=4).contains(&rank) {
        return Err(format!(
            "input of rank {rank}: Kiln imports 1-D and 2-D pooling"
        ));
    }
    let win = window(n, &x.shape()[2..], None)?;
    let ceil = n.attrs.int_or("ceil_mode", 0)? != 0;
    let include_pad = n.attrs.int_or("count_include_pad", 0)? != 0;
    let sp = win.kernel.len();
    // Per spatial dim: the output length, the padding after that ceil mode adds, and how many
    // taps each output position counts.
    let mut outs = Vec::new();
    let mut extra = Vec::new();
    let mut counts: Vec<Vec<usize>> = Vec::new();
    for i in 0..sp {
        let (size, (pb, pe)) = (x.shape()[2 + i], win.pads[i]);
        let (k, s, d) = (win.kernel[i], win.stride[i], win.dilation[i]);
        let eff = d * (k - 1) + 1;
        let padded = size + pb + pe;
        if padded < eff {
            return Err(format!(
                "the window {eff} does not fit the padded input {padded}"
            ));
        }
        let mut out = (padded - eff) / s + 1;
        if ceil && !(padded - eff).is_multiple_of(s) && out * s < size + pb {
            out += 1;
        }
        if out.saturating_mul(k) > 1 << 26 {
            return Err(format!("{out} windows of {k}"));
        }
        extra.push(((out - 1) * s + eff).saturating_sub(padded));
        let (lo, hi) = if include_pad {
            (0, padded)
        } else {
            (pb, pb + size)
        };
        counts.push(
            (0..out)
                .map(|o| {
                    (0..k)
                        .filter(|&j| (lo..hi).contains(&(o * s + j * d)))
                        .count()
                })
                .collect(),
        );
        outs.push(out);
    }
    let x2 = as_2d(b, x)?;
    let pads: Vec<(usize, usize)> = (0..sp)
        .map(|i| (win.pads[i].0, win.pads[i].1 + extra[i]))
        .collect();
    let (x2, _) = pad_outside(b, &x2, &pads, 0.0, |_, _, _| 0)?;
    let c = x.shape()[1];
    let [kh, kw] = two(&win.kernel, 1);
    let counts2: Vec<Vec<usize>> = if sp == 1 {
        vec![vec![1], counts[0].clone()]
    } else {
        counts
    };
    let uniform = counts2.iter().all(|v| v.iter().all(|&n| n == v[0]));
    let tap = if uniform {
        1.0 / (counts2[0][0] * counts2[1][0]) as f64
    } else {
        1.0
    };
    let weight = b.constant(OwnedOperand::dense(
        CpuStorage::from_f64s(x.dtype(), std::iter::repeat_n(tap, c * kh * kw)),
        &[c, 1, kh, kw],
    ));
    let params = Conv2dParams {
        stride: two(&win.stride, 1),
        padding: [0, 0],
        dilation: two(&win.dilation, 1),
        groups: c,
    };
    let mut y = b.op(Op::Conv2d(params), &[&x2, &weight])?;
    if !uniform {
        let (h, w) = (counts2[0].len(), counts2[1].len());
        let divisor = b.constant(OwnedOperand::dense(
            CpuStorage::from_f64s(
                x.dtype(),
                (0..h * w).map(|p| (counts2[0][p / w] * counts2[1][p % w]) as f64),
            ),
            &[h, w],
        ));
        y = b.binary(Op::Div, &y, &divisor)?;
    }
    one(from_2d(b, &y, rank)?)
}

fn global_pool(b: &mut Builder, n: &NodeIn, max: bool) -> R<Vec<Value>> {
    let x = n.input(0)?;
    if x.rank() < 3 {
        return Err(format!("input of rank {}", x.rank()));
    }
    let dims = (2..x.rank()).collect();
    if max {
        return one(b.op(
            Op::Max {
                dims,
                keepdim: true,
            },
            &[x],
        )?);
    }
    let count: usize = x.shape()[2..].iter().product();
    let sum = b.op(
        Op::Sum {
            dims,
            keepdim: true,
        },
        &[x],
    )?;
    one(b.scale(&sum, 1.0 / count as f64)?)
}

/// A per-channel vector `[C]` shaped to broadcast over `[N, C, …]` of rank `rank`.
fn per_channel(b: &mut Builder, v: &Value, rank: usize) -> R<Value> {
    let c = v.shape().iter().product::<usize>();
    let mut shape = vec![c];
    shape.resize(rank.saturating_sub(1).max(1), 1);
    b.reshape(v, &shape)
}

fn batch_norm(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    n.outputs_at_most(1)?;
    if n.attrs.int_or("training_mode", 0)? != 0 {
        return Err(
            "training_mode=1 (batch statistics) is not supported; export in eval mode".into(),
        );
    }
    if n.attrs.int_or("spatial", 1)? != 1 {
        return Err("spatial=0 is not supported".into());
    }
    let x = n.input(0)?;
    let (scale, bias, mean, var) = (n.input(1)?, n.input(2)?, n.input(3)?, n.input(4)?);
    // Running statistics, not parameters: a trainable import keeps them fixed.
    b.freeze(mean);
    b.freeze(var);
    let eps = n.attrs.float_or("epsilon", 1e-5)? as f64;
    // y = x·s + t with s = scale / sqrt(var + eps), t = bias − mean·s: two constants when the
    // statistics are weights (the usual case), folded here.
    let std = b.unary(var, UnaryOp::Affine { mul: 1.0, add: eps })?;
    let inv = b.unary(&std, UnaryOp::PowScalar(-0.5))?;
    let s = b.binary(Op::Mul, scale, &inv)?;
    let ms = b.binary(Op::Mul, mean, &s)?;
    let t = b.binary(Op::Sub, bias, &ms)?;
    // After a conv that nothing else reads, the scale and shift go into its weight and bias.
    if let (Some(sv), Some(tv), Some(1)) = (s.known(), t.known(), n.readers.first()) {
        if b.fold_affine_into_conv(x, &known_f64s(sv), &known_f64s(tv)) {
            return one(x.clone());
        }
    }
    let s = per_channel(b, &s, x.rank())?;
    let t = per_channel(b, &t, x.rank())?;
    let y = b.binary(Op::Mul, x, &s)?;
    one(b.binary(Op::Add, &y, &t)?)
}

fn instance_norm(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let (x, scale, bias) = (n.input(0)?, n.input(1)?, n.input(2)?);
    if x.rank() < 3 {
        return Err(format!("input of rank {}", x.rank()));
    }
    let eps = n.attrs.float_or("epsilon", 1e-5)? as f64;
    let m = moments(b, x, (2..x.rank()).collect(), eps)?;
    let y = b.binary(Op::Mul, &m.centered, &m.inv_std)?;
    let s = per_channel(b, scale, x.rank())?;
    let t = per_channel(b, bias, x.rank())?;
    let y = b.binary(Op::Mul, &y, &s)?;
    one(b.binary(Op::Add, &y, &t)?)
}

fn layer_norm(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let (x, scale) = (n.input(0)?, n.input(1)?);
    let a = axis(n.attrs.int_or("axis", -1)?, x.rank())?;
    let eps = n.attrs.float_or("epsilon", 1e-5)? as f64;
    if n.attrs.int_or("stash_type", 1)? != 1 {
        return Err("stash_type other than 1 (float) is not supported".into());
    }
    let normalized = &x.shape()[a..];
    let d: usize = normalized.iter().product();
    // Kiln's op normalizes the last dim with a weight and bias of its size: flatten the
    // normalized dims, and broadcast the scale and bias to them.
    let full = |b: &mut Builder, v: &Value| -> R<Value> {
        let e = b.op(Op::Expand(normalized.iter().copied().collect()), &[v])?;
        b.reshape(&e, &[d])
    };
    let w = full(b, scale)?;
    let bias = match n.opt(2) {
        Some(v) => full(b, v)?,
        None => {
            let z = b.scalar(0.0, x.dtype());
            full(b, &z)?
        }
    };
    let mut flat = x.shape()[..a].to_vec();
    flat.push(d);
    let x2 = b.reshape(x, &flat)?;
    let y = b.op(Op::LayerNorm { eps }, &[&x2, &w, &bias])?;
    let mut outs = vec![b.reshape(&y, x.shape())?];
    if n.outputs > 1 {
        // The saved statistics: the mean and 1/sqrt(var + eps), keeping the normalized dims
        // as size 1.
        let m = moments(b, &x2, [x2.rank() - 1].into_iter().collect(), eps)?;
        let mut kept = x.shape()[..a].to_vec();
        kept.resize(x.rank(), 1);
        outs.push(b.reshape(&m.mean, &kept)?);
        outs.push(b.reshape(&m.inv_std, &kept)?);
    }
    Ok(outs)
}

/// The statistics of `x` over `dims` (kept as size 1): what instance and layer norms
/// compute.
pub(super) struct Moments {
    /// The mean.
    pub mean: Value,
    /// `x − mean`.
    pub centered: Value,
    /// `1 / sqrt(biased var + eps)`.
    pub inv_std: Value,
}

pub(super) fn moments(b: &mut Builder, x: &Value, dims: Dims, eps: f64) -> R<Moments> {
    let k = 1.0 / dims.iter().map(|&d| x.shape()[d]).product::<usize>() as f64;
    let sum = |b: &mut Builder, v: &Value| {
        let dims = dims.clone();
        b.op(
            Op::Sum {
                dims,
                keepdim: true,
            },
            &[v],
        )
    };
    let total = sum(b, x)?;
    let mean = b.scale(&total, k)?;
    let centered = b.binary(Op::Sub, x, &mean)?;
    let sq = b.binary(Op::Mul, &centered, &centered)?;
    let var = sum(b, &sq)?;
    let var = b.unary(&var, UnaryOp::Affine { mul: k, add: eps })?;
    let inv_std = b.unary(&var, UnaryOp::PowScalar(-0.5))?;
    Ok(Moments {
        mean,
        centered,
        inv_std,
    })
}

fn rms_norm(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let (x, scale) = (n.input(0)?, n.input(1)?);
    let a = axis(n.attrs.int_or("axis", -1)?, x.rank())?;
    let eps = n.attrs.float_or("epsilon", 1e-5)? as f64;
    if n.attrs.int_or("stash_type", 1)? != 1 {
        return Err("stash_type other than 1 (float) is not supported".into());
    }
    // x / sqrt(mean(x²) + eps) · scale, the mean over dims axis…
    let dims: Dims = (a..x.rank()).collect();
    let k = 1.0 / x.shape()[a..].iter().product::<usize>() as f64;
    let sq = b.binary(Op::Mul, x, x)?;
    let ms = b.op(
        Op::Sum {
            dims,
            keepdim: true,
        },
        &[&sq],
    )?;
    let ms = b.unary(&ms, UnaryOp::Affine { mul: k, add: eps })?;
    let inv = b.unary(&ms, UnaryOp::PowScalar(-0.5))?;
    let y = b.binary(Op::Mul, x, &inv)?;
    one(b.binary(Op::Mul, &y, scale)?)
}

fn transpose2(b: &mut Builder, v: &Value) -> R<Value> {
    if v.rank() != 2 {
        return Err(format!("operand of shape {:?} is not a matrix", v.shape()));
    }
    b.permute(v, &[1, 0])
}

fn gemm(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let (mut a, mut m) = (n.input(0)?.clone(), n.input(1)?.clone());
    if n.attrs.int_or("transA", 0)? != 0 {
        a = transpose2(b, &a)?;
    }
    if n.attrs.int_or("transB", 0)? != 0 {
        m = transpose2(b, &m)?;
    }
    let alpha = n.attrs.float_or("alpha", 1.0)? as f64;
    let beta = n.attrs.float_or("beta", 1.0)? as f64;
    let cols = m.shape().get(1).copied().unwrap_or(0);
    match n.opt(2) {
        // The common Linear layer: the bias rides in the product's kernel.
        Some(c)
            if alpha == 1.0
                && beta == 1.0
                && c.shape().iter().product::<usize>() == cols
                && c.rank() <= 2
                && c.shape().first() != Some(&0)
                && (c.rank() < 2 || c.shape()[0] == 1) =>
        {
            let bias = b.reshape(c, &[cols])?;
            one(b.op(Op::Matmul, &[&a, &m, &bias])?)
        }
        c => {
            let y = b.op(Op::Matmul, &[&a, &m])?;
            let y = b.scale(&y, alpha)?;
            match c {
                None => one(y),
                Some(c) => {
                    let c = b.scale(c, beta)?;
                    one(b.binary(Op::Add, &y, &c)?)
                }
            }
        }
    }
}

fn matmul(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let (x, y) = (n.input(0)?, n.input(1)?);
    if x.rank() == 0 || y.rank() == 0 {
        return Err("MatMul of a scalar".into());
    }
    // 1-D operands are a row (left) or a column (right), dropped from the result.
    let x2 = if x.rank() == 1 {
        b.reshape(x, &[1, x.shape()[0]])?
    } else {
        x.clone()
    };
    let y2 = if y.rank() == 1 {
        b.reshape(y, &[y.shape()[0], 1])?
    } else {
        y.clone()
    };
    let out = b.op(Op::Matmul, &[&x2, &y2])?;
    let mut shape = out.shape().to_vec();
    let r = shape.len();
    if x.rank() == 1 {
        shape.remove(r - 2);
    }
    if y.rank() == 1 {
        shape.pop();
    }
    one(b.reshape(&out, &shape)?)
}

fn softmax(b: &mut Builder, n: &NodeIn, log: bool) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let rank = x.rank();
    if n.opset >= 13 {
        let dim = axis(n.attrs.int_or("axis", -1)?, rank)?;
        return one(b.op(Op::Softmax { dim, log }, &[x])?);
    }
    // Before opset 13 the input is seen as a matrix split at `axis`.
    let a = axis(n.attrs.int_or("axis", 1)?, rank.max(1))?;
    let rows: usize = x.shape()[..a].iter().product();
    let cols: usize = x.shape()[a..].iter().product();
    let m = b.reshape(x, &[rows, cols])?;
    let y = b.op(Op::Softmax { dim: 1, log }, &[&m])?;
    one(b.reshape(&y, x.shape())?)
}

fn dropout(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    if n.opt(2).is_some() {
        // training_mode and the ratio, known while importing (as small model inputs, per
        // value); training with a ratio of 0 drops nothing: the identity, as in inference.
        let training = n.ints(2)?.is_some_and(|v| v.iter().any(|&t| t != 0));
        let no_drop = training && n.floats(1)?.is_some_and(|r| r.iter().all(|&r| r == 0.0));
        if training && !no_drop {
            return Err(
                "training_mode must be a constant false (or the ratio a constant 0): Kiln does \
                 not import random dropout"
                    .into(),
            );
        }
    }
    let mut outs = vec![x.clone()];
    if n.outputs > 1 {
        let t = b.scalar(1.0, kiln_kernels::DType::Bool);
        outs.push(b.op(Op::Expand(x.shape().iter().copied().collect()), &[&t])?);
    }
    Ok(outs)
}
