//! Convolutions: `conv2d` as the direct convolution primitive ([`Op::Conv2d`]) for f32/f64
//! (else im2col ([`Tensor::unfold_raw`]) plus a batched matrix product), `conv1d` as `conv2d`
//! with height 1, and `conv_transpose2d` as a matrix product plus col2im
//! ([`Tensor::fold_raw`]).

use super::pair::Pair;
use crate::dtype::DType;
use crate::ops::{dispatch, Conv2dParams, Op};
use crate::tensor::Tensor;

#[track_caller]
fn check_rank(t: &Tensor, rank: usize, what: &str, op: &str) {
    if t.rank() != rank {
        panic!("{op}: {what} must be {rank}-D, got shape {:?}", t.shape());
    }
}

#[track_caller]
fn check_bias(b: &Tensor, channels: usize, op: &str) {
    if b.shape() != [channels] {
        panic!(
            "{op}: bias must have shape [{channels}], got {:?}",
            b.shape()
        );
    }
}

#[track_caller]
fn add_channel_bias(out: Tensor, bias: Option<&Tensor>, channels: usize, op: &str) -> Tensor {
    match bias {
        Some(b) => {
            check_bias(b, channels, op);
            &out + &b.reshape([1, channels, 1, 1])
        }
        None => out,
    }
}

/// 2-D convolution (cross-correlation) of `input` `[N, C, H, W]` with `weight`
/// `[O, C/groups, kh, kw]`, like `F.conv2d(input, weight, bias, stride, padding, dilation,
/// groups)`; the output is `[N, O, H', W']`.
#[track_caller]
pub fn conv2d(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: impl Into<Pair>,
    padding: impl Into<Pair>,
    dilation: impl Into<Pair>,
    groups: usize,
) -> Tensor {
    let (stride, padding, dilation) = (stride.into().0, padding.into().0, dilation.into().0);
    check_conv2d(input, weight, groups);
    let d = input.dtype();
    let direct = matches!(d, DType::F32 | DType::F64)
        && weight.dtype() == d
        && bias.is_none_or(|b| b.dtype() == d);
    if !direct {
        return conv2d_composite(input, weight, bias, stride, padding, dilation, groups);
    }
    let p = Conv2dParams {
        stride,
        padding,
        dilation,
        groups,
    };
    match bias {
        Some(b) => {
            check_bias(b, weight.shape()[0], "conv2d");
            dispatch(Op::Conv2d(p), &[input, weight, b])
        }
        None => dispatch(Op::Conv2d(p), &[input, weight]),
    }
}

#[track_caller]
fn check_conv2d(input: &Tensor, weight: &Tensor, groups: usize) {
    let op = "conv2d";
    check_rank(input, 4, "input", op);
    check_rank(weight, 4, "weight", op);
    let (c, o, cg) = (input.shape()[1], weight.shape()[0], weight.shape()[1]);
    if groups == 0 || c % groups != 0 || o % groups != 0 || cg * groups != c {
        panic!(
            "{op}: input {:?} with {groups} groups does not match weight {:?} \
             (expected [O, C/groups, kh, kw] with C and O divisible by groups)",
            input.shape(),
            weight.shape()
        );
    }
}

/// [`conv2d`] composed of im2col ([`Tensor::unfold_raw`]) over the whole batch and a batched
/// matrix product: the path for dtypes the direct kernels do not cover, and the reference
/// they are tested against.
#[track_caller]
pub fn conv2d_composite(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: impl Into<Pair>,
    padding: impl Into<Pair>,
    dilation: impl Into<Pair>,
    groups: usize,
) -> Tensor {
    let op = "conv2d";
    check_conv2d(input, weight, groups);
    let (n, o, cg, kh, kw) = (
        input.shape()[0],
        weight.shape()[0],
        weight.shape()[1],
        weight.shape()[2],
        weight.shape()[3],
    );
    let (stride, padding, dilation) = (stride.into().0, padding.into().0, dilation.into().0);
    let cols = Tensor::unfold_raw(input, [kh, kw], stride, padding, dilation, 0.0);
    let l = cols.shape()[2];
    // The unfold above has validated this geometry.
    let oh = crate::ops::window::conv_len(input.shape()[2], kh, stride[0], padding[0], dilation[0])
        .expect("conv2d: geometry checked by unfold");
    let ow = l / oh.max(1);
    let k = cg * kh * kw;
    let out = if groups == 1 {
        // [O, K] @ [N, K, L] → [N, O, L]
        weight.reshape([o, k]).matmul(&cols)
    } else {
        // [g, O/g, K] @ [N, g, K, L] → [N, g, O/g, L]
        let w = weight.reshape([groups, o / groups, k]);
        w.matmul(&cols.reshape([n, groups, k, l]))
    };
    add_channel_bias(out.reshape([n, o, oh, ow]), bias, o, op)
}

/// 1-D convolution of `input` `[N, C, L]` with `weight` `[O, C/groups, k]`, like
/// `F.conv1d(input, weight, bias, stride, padding, dilation, groups)`.
#[track_caller]
pub fn conv1d(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    dilation: usize,
    groups: usize,
) -> Tensor {
    check_rank(input, 3, "input", "conv1d");
    check_rank(weight, 3, "weight", "conv1d");
    conv2d(
        &input.unsqueeze(2),
        &weight.unsqueeze(2),
        bias,
        (1, stride),
        (0, padding),
        (1, dilation),
        groups,
    )
    .squeeze(2)
}

/// 2-D transposed convolution (the gradient of [`conv2d`] with respect to its input) of
/// `input` `[N, C_in, H, W]` with `weight` `[C_in, C_out/groups, kh, kw]`, like
/// `F.conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups,
/// dilation)`. The output is `[N, C_out, H', W']` with
/// `H' = (H − 1)·stride − 2·padding + dilation·(kh − 1) + output_padding + 1`.
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn conv_transpose2d(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: impl Into<Pair>,
    padding: impl Into<Pair>,
    output_padding: impl Into<Pair>,
    groups: usize,
    dilation: impl Into<Pair>,
) -> Tensor {
    let op = "conv_transpose2d";
    check_rank(input, 4, "input", op);
    check_rank(weight, 4, "weight", op);
    let (stride, padding, out_pad, dilation) = (
        stride.into().0,
        padding.into().0,
        output_padding.into().0,
        dilation.into().0,
    );
    let (n, c_in, h, w) = (
        input.shape()[0],
        input.shape()[1],
        input.shape()[2],
        input.shape()[3],
    );
    let (wc, cog, kh, kw) = (
        weight.shape()[0],
        weight.shape()[1],
        weight.shape()[2],
        weight.shape()[3],
    );
    if groups == 0 || wc != c_in || c_in % groups != 0 {
        panic!(
            "{op}: input {:?} with {groups} groups does not match weight {:?} \
             (expected [C_in, C_out/groups, kh, kw] with C_in divisible by groups)",
            input.shape(),
            weight.shape()
        );
    }
    let kernel = [kh, kw];
    let mut out_hw = [0usize; 2];
    for a in 0..2 {
        if stride[a] == 0 || dilation[a] == 0 {
            panic!("{op}: stride and dilation must be positive, got {stride:?} and {dilation:?}");
        }
        if out_pad[a] >= stride[a].max(dilation[a]) {
            panic!(
                "{op}: output_padding {out_pad:?} must be smaller than stride {stride:?} or dilation {dilation:?}"
            );
        }
        let size = [h, w][a];
        // (size − 1)·stride + dilation·(k − 1) + 1 + output_padding, without wrapping.
        let full = (size.max(1) - 1)
            .checked_mul(stride[a])
            .zip(
                kernel[a]
                    .checked_sub(1)
                    .and_then(|k1| dilation[a].checked_mul(k1)),
            )
            .and_then(|(x, y)| x.checked_add(y)?.checked_add(1 + out_pad[a]));
        let Some(full) = full else {
            panic!(
                "{op}: kernel {kernel:?}, stride {stride:?} and dilation {dilation:?} give no \
                 valid output size for input {:?}",
                input.shape()
            );
        };
        if padding[a].checked_mul(2).is_none_or(|p2| full <= p2) {
            panic!(
                "{op}: padding {padding:?} leaves an empty output for input {:?}",
                input.shape()
            );
        }
        out_hw[a] = full - 2 * padding[a];
    }
    let c_out = cog * groups;
    let kk = kh * kw;
    let hw = h * w;
    let cols = if groups == 1 {
        // [C_out·K, C_in] @ [N, C_in, HW] → [N, C_out·K, HW]
        weight
            .reshape([c_in, c_out * kk])
            .t()
            .matmul(&input.reshape([n, c_in, hw]))
    } else {
        // [g, C_out/g·K, C_in/g] @ [N, g, C_in/g, HW] → [N, g, C_out/g·K, HW]
        let wg = weight
            .reshape([groups, c_in / groups, cog * kk])
            .transpose(1, 2);
        wg.matmul(&input.reshape([n, groups, c_in / groups, hw]))
            .reshape([n, c_out * kk, hw])
    };
    let out = if out_pad[0] < stride[0] && out_pad[1] < stride[1] {
        Tensor::fold_raw(&cols, out_hw, kernel, stride, padding, dilation)
    } else {
        // output_padding ≥ stride (allowed when below the dilation): fold the full, unpadded
        // result, then crop the padding and zero-fill what output_padding adds beyond it.
        let full = [
            (h - 1) * stride[0] + dilation[0] * (kh - 1) + 1,
            (w - 1) * stride[1] + dilation[1] * (kw - 1) + 1,
        ];
        let mut t = Tensor::fold_raw(&cols, full, kernel, stride, [0, 0], dilation);
        for a in 0..2 {
            let start = padding[a].min(full[a]);
            let avail = full[a] - start;
            t = t.narrow(2 + a, start, out_hw[a].min(avail));
            if out_hw[a] > avail {
                t = Tensor::slice_scatter_zeros(&t, 2 + a, 0, 1, out_hw[a]);
            }
        }
        t
    };
    add_channel_bias(out, bias, c_out, op)
}
