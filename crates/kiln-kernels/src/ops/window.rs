//! Geometry of the sliding-window primitives (convolution and max pooling): their parameters,
//! output sizes, and shape/dtype inference with PyTorch-style messages.

use super::value::{fail, InferResult, OpError, ValueType};
use super::Op;
use crate::dtype::DType;
use crate::shape::Shape;

/// Parameters of a 2-D convolution (the kernel size comes from the weight).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Conv2dParams {
    /// stride (h, w)
    pub stride: [usize; 2],
    /// zero padding (h, w)
    pub padding: [usize; 2],
    /// dilation (h, w)
    pub dilation: [usize; 2],
    /// number of channel groups
    pub groups: usize,
}

/// Parameters of 2-D max pooling, as `torch.nn.MaxPool2d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Pool2dParams {
    /// window size (h, w)
    pub kernel: [usize; 2],
    /// stride (h, w)
    pub stride: [usize; 2],
    /// implicit −∞ padding (h, w)
    pub padding: [usize; 2],
    /// dilation (h, w)
    pub dilation: [usize; 2],
    /// round the output size up instead of down
    pub ceil_mode: bool,
}

/// The span of `kernel` taps `dilation` apart, `dilation·(kernel − 1) + 1`, or `None` for a
/// zero kernel or dilation or a span past `usize`.
fn effective_kernel(kernel: usize, dilation: usize) -> Option<usize> {
    if kernel == 0 || dilation == 0 {
        return None;
    }
    dilation.checked_mul(kernel - 1)?.checked_add(1)
}

/// Output length of a convolution window along one axis,
/// `(size + 2·padding − dilation·(kernel − 1) − 1) / stride + 1`, or `None` when the kernel does
/// not fit the padded input, a parameter is zero, or a size passes `usize`. The one place
/// convolution-like window arithmetic is done (conv, unfold, fold, their kernels).
pub fn conv_len(
    size: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Option<usize> {
    if stride == 0 {
        return None;
    }
    let eff = effective_kernel(kernel, dilation)?;
    let padded = padding.checked_mul(2)?.checked_add(size)?;
    Some(padded.checked_sub(eff)? / stride + 1)
}

/// Output length of a pooling window along one axis, like PyTorch's `pooling_output_shape`:
/// in ceil mode the last window must still start inside the input or its left padding.
/// Refuses, naming `op`, a geometry PyTorch rejects.
pub fn pool_out(
    size: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    ceil: bool,
    op: &str,
) -> InferResult<usize> {
    if kernel == 0 || stride == 0 || dilation == 0 {
        fail!("{op}: kernel size, stride and dilation must be positive");
    }
    let Some(eff) = effective_kernel(kernel, dilation) else {
        fail!("{op}: kernel size {kernel} with dilation {dilation} overflows");
    };
    if padding > eff / 2 {
        fail!("{op}: padding {padding} should be at most half of the effective kernel size {eff}");
    }
    let Some(out) = conv_len(size, kernel, stride, padding, dilation) else {
        fail!("{op}: input size {size} (padded by {padding}) is smaller than the kernel {eff}");
    };
    // Ceil mode: one more window if it starts inside the input or its left padding
    // (size + padding ≤ size + 2·padding fits; a start past usize is past it too).
    let span = size + 2 * padding - eff;
    let starts_inside = |n: usize| n.checked_mul(stride).is_some_and(|s| s < size + padding);
    Ok(
        if ceil && !span.is_multiple_of(stride) && starts_inside(out) {
            out + 1
        } else {
            out
        },
    )
}

impl Pool2dParams {
    /// Output (H', W') for an input of spatial size (h, w), or why the window does not fit.
    pub fn output_size(&self, h: usize, w: usize, op: &str) -> InferResult<[usize; 2]> {
        let mut out = [0; 2];
        for (a, size) in [h, w].into_iter().enumerate() {
            out[a] = pool_out(
                size,
                self.kernel[a],
                self.stride[a],
                self.padding[a],
                self.dilation[a],
                self.ceil_mode,
                op,
            )?;
        }
        Ok(out)
    }
}

impl Conv2dParams {
    /// Output (H', W') for an input of spatial size `hw` and a kernel of size `kernel`, or an
    /// error naming `op` and the shapes when the kernel does not fit (sizes past `usize`
    /// included).
    pub fn output_size(
        &self,
        hw: [usize; 2],
        kernel: [usize; 2],
        op: &str,
        shapes: &str,
    ) -> InferResult<[usize; 2]> {
        if self.stride.contains(&0) || self.dilation.contains(&0) {
            fail!(
                "{op}: stride {:?} and dilation {:?} must be positive ({shapes})",
                self.stride,
                self.dilation
            );
        }
        let mut out = [0; 2];
        for a in 0..2 {
            let len = conv_len(
                hw[a],
                kernel[a],
                self.stride[a],
                self.padding[a],
                self.dilation[a],
            );
            let Some(len) = len else {
                fail!(
                    "{op}: kernel {kernel:?} (dilation {:?}) does not fit the input {hw:?} \
                     padded by {:?} ({shapes})",
                    self.dilation,
                    self.padding
                )
            };
            out[a] = len;
        }
        Ok(out)
    }
}

fn shapes<T: ValueType>(inputs: &[&T]) -> String {
    inputs
        .iter()
        .map(|t| format!("{:?} {}", t.shape(), t.dtype()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks the arity, the ranks (4-D; a third input, the bias, 1-D) and one f32/f64 dtype.
fn expect_float4<T: ValueType>(
    op: &Op,
    inputs: &[&T],
    arity: &[usize],
    desc: &str,
) -> InferResult<DType> {
    let name = op.name();
    if !arity.contains(&inputs.len()) {
        fail!(
            "{name}: expected {desc}, got {} inputs ({})",
            inputs.len(),
            shapes(inputs)
        );
    }
    let dtype = inputs[0].dtype();
    for (i, t) in inputs.iter().enumerate() {
        // A conv bias (third input) is 1-D.
        let rank = if i == 2 { 1 } else { 4 };
        if t.rank() != rank || t.dtype() != dtype || !matches!(dtype, DType::F32 | DType::F64) {
            fail!(
                "{name}: expected {desc} of one dtype, f32 or f64; got {}{}",
                shapes(inputs),
                super::value::cast_hint(dtype, t.dtype())
            );
        }
    }
    Ok(dtype)
}

fn groups_ok(c: usize, o: usize, cg: usize, groups: usize) -> bool {
    groups > 0
        && c.is_multiple_of(groups)
        && o.is_multiple_of(groups)
        && cg.checked_mul(groups) == Some(c)
}

/// Output shape and dtype of a sliding-window op, or why it does not apply.
pub fn try_infer<T: ValueType>(op: &Op, inputs: &[&T]) -> InferResult<(Shape, DType)> {
    let name = op.name();
    Ok(match op {
        Op::Conv2d(p) => {
            let d = expect_float4(
                op,
                inputs,
                &[2, 3],
                "input [N, C, H, W], weight [O, C/groups, kh, kw] and an optional bias [O]",
            )?;
            let (x, w) = (inputs[0].shape(), inputs[1].shape());
            if !groups_ok(x[1], w[0], w[1], p.groups)
                || inputs.get(2).is_some_and(|b| b.shape() != [w[0]])
            {
                fail!(
                    "{name}: input, weight and bias {} do not match with {} groups \
                     (expected weight [O, C/groups, kh, kw] and bias [O])",
                    shapes(inputs),
                    p.groups
                );
            }
            let [oh, ow] = p.output_size([x[2], x[3]], [w[2], w[3]], name, &shapes(inputs))?;
            ([x[0], w[0], oh, ow].as_slice().into(), d)
        }
        Op::Conv2dInputGrad { conv, input } => {
            let d = expect_float4(
                op,
                inputs,
                &[2],
                "output gradient [N, O, H', W'] and weight",
            )?;
            let (g, w) = (inputs[0].shape(), inputs[1].shape());
            let out = conv.output_size(*input, [w[2], w[3]], name, &shapes(inputs))?;
            let Some(channels) = w[1].checked_mul(conv.groups) else {
                fail!(
                    "{name}: {} groups of {} channels overflow",
                    conv.groups,
                    w[1]
                );
            };
            if g[1] != w[0] || [g[2], g[3]] != out || !groups_ok(channels, w[0], w[1], conv.groups)
            {
                fail!(
                    "{name}: gradient and weight {} do not match an input of size {input:?} \
                     with {} groups (expected gradient [N, {}, {}, {}])",
                    shapes(inputs),
                    conv.groups,
                    w[0],
                    out[0],
                    out[1]
                );
            }
            ([g[0], channels, input[0], input[1]].as_slice().into(), d)
        }
        Op::Conv2dWeightGrad { conv, kernel } => {
            let d = expect_float4(op, inputs, &[2], "input [N, C, H, W] and output gradient")?;
            let (x, g) = (inputs[0].shape(), inputs[1].shape());
            let out = conv.output_size([x[2], x[3]], *kernel, name, &shapes(inputs))?;
            let cg = x[1] / conv.groups.max(1);
            if g[0] != x[0] || [g[2], g[3]] != out || !groups_ok(x[1], g[1], cg, conv.groups) {
                fail!(
                    "{name}: input and gradient {} do not match kernel {kernel:?} with {} groups",
                    shapes(inputs),
                    conv.groups
                );
            }
            ([g[1], cg, kernel[0], kernel[1]].as_slice().into(), d)
        }
        Op::MaxPool2d(p) => {
            let d = expect_float4(op, inputs, &[1], "one input [N, C, H, W]")?;
            let x = inputs[0].shape();
            let [oh, ow] = p.output_size(x[2], x[3], name)?;
            ([x[0], x[1], oh, ow].as_slice().into(), d)
        }
        Op::MaxPool2dBackward(p) => {
            let d = expect_float4(op, inputs, &[2], "input [N, C, H, W] and output gradient")?;
            let (x, g) = (inputs[0].shape(), inputs[1].shape());
            let [oh, ow] = p.output_size(x[2], x[3], name)?;
            if g != [x[0], x[1], oh, ow] {
                fail!(
                    "{name}: gradient must have shape {:?}, got {}",
                    [x[0], x[1], oh, ow],
                    shapes(inputs)
                );
            }
            (x.into(), d)
        }
        _ => fail!("{name}: not a sliding-window op"),
    })
}
