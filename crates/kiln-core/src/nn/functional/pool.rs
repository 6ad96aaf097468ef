//! Pooling: max pooling as a primitive ([`Op::MaxPool2d`]) for f32/f64, average pooling and
//! the other max pooling paths over sliding windows (im2col with a pad value, then a
//! reduction), and adaptive average pooling (exact PyTorch windows as averaging matrices).

use super::pair::{OptPair, Pair};
use crate::dtype::DType;
use crate::ops::pool_windows::{axes, max_pool2d_indices, windows, Axis};
use crate::ops::{dispatch, Op, Pool2dParams};
use crate::tensor::Tensor;

/// Validates `[N, C, H, W]` or unbatched `[C, H, W]` input, returning it as 4-D.
fn as_batched(input: &Tensor, op: &str) -> Tensor {
    match input.rank() {
        4 => input.clone(),
        3 => input.unsqueeze(0),
        _ => panic!(
            "{op}: expected a [N, C, H, W] or [C, H, W] input, got {:?}",
            input.shape()
        ),
    }
}

fn unbatch(out: Tensor, input: &Tensor) -> Tensor {
    if input.rank() == 3 {
        out.squeeze(0)
    } else {
        out
    }
}

/// 2-D max pooling of `[N, C, H, W]` (or `[C, H, W]`), like `F.max_pool2d(input, kernel_size,
/// stride, padding, dilation, ceil_mode)`; `stride: None` means the kernel size. Padding reads
/// −∞, so it never wins; the gradient goes to each window's first maximum, as in PyTorch.
#[track_caller]
pub fn max_pool2d(
    input: &Tensor,
    kernel_size: impl Into<Pair>,
    stride: impl Into<OptPair>,
    padding: impl Into<Pair>,
    dilation: impl Into<Pair>,
    ceil_mode: bool,
) -> Tensor {
    let kernel = kernel_size.into();
    let (stride, padding, dilation) = (stride.into().or(kernel), padding.into(), dilation.into());
    if !matches!(input.dtype(), DType::F32 | DType::F64) {
        return max_pool2d_composite(input, kernel, stride, padding, dilation, ceil_mode);
    }
    let x = as_batched(input, "max_pool2d");
    let p = Pool2dParams {
        kernel: kernel.0,
        stride: stride.0,
        padding: padding.0,
        dilation: dilation.0,
        ceil_mode,
    };
    unbatch(dispatch(Op::MaxPool2d(p), &[&x]), input)
}

/// [`max_pool2d`] as a maximum over im2col windows ([`Tensor::unfold_raw`]): the path for
/// dtypes the primitive does not cover, and the reference it is tested against (its gradient
/// splits ties evenly instead of picking the first maximum).
#[track_caller]
pub fn max_pool2d_composite(
    input: &Tensor,
    kernel_size: impl Into<Pair>,
    stride: impl Into<OptPair>,
    padding: impl Into<Pair>,
    dilation: impl Into<Pair>,
    ceil_mode: bool,
) -> Tensor {
    let x = as_batched(input, "max_pool2d");
    let kernel = kernel_size.into();
    let ax = axes(
        &x,
        kernel.0,
        stride.into().or(kernel).0,
        padding.into().0,
        dilation.into().0,
        ceil_mode,
        "max_pool2d",
    );
    let cols = windows(&x, ax, f64::NEG_INFINITY);
    let out = cols
        .amax([1], false)
        .reshape([x.shape()[0], x.shape()[1], ax[0].out, ax[1].out]);
    unbatch(out, input)
}

/// [`max_pool2d`] that also returns, for each output, the flat index (into its `H·W` input
/// plane, as i64) of the element that won, like `return_indices=True`.
#[track_caller]
pub fn max_pool2d_with_indices(
    input: &Tensor,
    kernel_size: impl Into<Pair>,
    stride: impl Into<OptPair>,
    padding: impl Into<Pair>,
    dilation: impl Into<Pair>,
    ceil_mode: bool,
) -> (Tensor, Tensor) {
    let x = as_batched(input, "max_pool2d");
    let kernel = kernel_size.into();
    let (stride, padding, dilation) = (stride.into().or(kernel), padding.into(), dilation.into());
    let out = max_pool2d(&x, kernel, stride, padding, dilation, ceil_mode);
    let indices = max_pool2d_indices(
        &x,
        &Pool2dParams {
            kernel: kernel.0,
            stride: stride.0,
            padding: padding.0,
            dilation: dilation.0,
            ceil_mode,
        },
    );
    (unbatch(out, input), unbatch(indices, input))
}

/// 2-D average pooling, like `F.avg_pool2d(input, kernel_size, stride, padding, ceil_mode,
/// count_include_pad, divisor_override)`; `stride: None` means the kernel size.
/// `count_include_pad` counts zero padding in the divisor (PyTorch's default).
#[track_caller]
pub fn avg_pool2d(
    input: &Tensor,
    kernel_size: impl Into<Pair>,
    stride: impl Into<OptPair>,
    padding: impl Into<Pair>,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: Option<usize>,
) -> Tensor {
    let x = as_batched(input, "avg_pool2d");
    let kernel = kernel_size.into();
    let ax = axes(
        &x,
        kernel.0,
        stride.into().or(kernel).0,
        padding.into().0,
        [1, 1],
        ceil_mode,
        "avg_pool2d",
    );
    let shape = [x.shape()[0], x.shape()[1], ax[0].out, ax[1].out];
    let sums = windows(&x, ax, 0.0).sum([1], false).reshape(shape);
    // PyTorch's divisor: the window clipped to the padded input (count_include_pad), or to the
    // input itself.
    let extent = |a: &Axis, o: usize| -> (i64, i64) {
        let start = a.source(o, 0);
        let end = (start + a.kernel as i64).min((a.size + a.padding) as i64);
        let padded = end - start;
        let inner = end.min(a.size as i64) - start.max(0);
        (padded, inner)
    };
    let mut divisors = Vec::with_capacity(ax[0].out * ax[1].out);
    for oy in 0..ax[0].out {
        let (ph, ih) = extent(&ax[0], oy);
        for ox in 0..ax[1].out {
            let (pw, iw) = extent(&ax[1], ox);
            let d = match divisor_override {
                Some(d) => d as i64,
                None if count_include_pad => ph * pw,
                None => ih * iw,
            };
            divisors.push(d as f64);
        }
    }
    let out = if divisors.iter().all(|&d| d == divisors[0]) {
        sums.div_scalar(divisors[0])
    } else {
        let d = Tensor::from_vec(divisors, [ax[0].out, ax[1].out]).to_dtype(x.dtype());
        &sums / &d
    };
    unbatch(out, input)
}

/// The `[out, size]` matrix averaging PyTorch's adaptive windows
/// `[⌊i·size/out⌋, ⌈(i+1)·size/out⌉)`.
fn adaptive_matrix(size: usize, out: usize, dtype: DType) -> Tensor {
    let mut m = vec![0.0f64; out * size];
    for i in 0..out {
        let start = i * size / out;
        let end = ((i + 1) * size).div_ceil(out);
        for j in start..end {
            m[i * size + j] = 1.0 / (end - start) as f64;
        }
    }
    Tensor::from_vec(m, [out, size]).to_dtype(dtype)
}

/// Adaptive average pooling to `output_size` (H', W'), like `F.adaptive_avg_pool2d`: output
/// `i` averages input `[⌊i·H/H'⌋, ⌈(i+1)·H/H'⌉)`. A plain mean over equal blocks when the sizes
/// divide.
#[track_caller]
pub fn adaptive_avg_pool2d(input: &Tensor, output_size: impl Into<Pair>) -> Tensor {
    let x = as_batched(input, "adaptive_avg_pool2d");
    let [oh, ow] = output_size.into().0;
    let (n, c, h, w) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    if oh == 0 || ow == 0 {
        panic!("adaptive_avg_pool2d: output size must be positive, got ({oh}, {ow})");
    }
    let out = if h % oh == 0 && w % ow == 0 {
        x.reshape([n, c, oh, h / oh, ow, w / ow])
            .mean([3, 5], false)
    } else {
        let ph = adaptive_matrix(h, oh, x.dtype());
        let pw = adaptive_matrix(w, ow, x.dtype());
        ph.matmul(&x).matmul(&pw.t())
    };
    unbatch(out, input)
}
