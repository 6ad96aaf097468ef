//! Pooling beyond max and average: `LpPool` (a depthwise convolution of ones over |x|^p),
//! and `Col2Im`, the adjoint of im2col, on Kiln's fold.

use super::nn::conv_of;
use super::{one, NodeIn, OpDef};
use crate::import::builder::{Builder, Value, R};
use kiln_kernels::ops::{Op, UnaryOp};
use kiln_kernels::storage::CpuStorage;
use kiln_kernels::OwnedOperand;

pub(super) const OPS: &[OpDef] = &[
    def!(
        "LpPool",
        lp_pool,
        [
            "auto_pad",
            "ceil_mode",
            "dilations",
            "kernel_shape",
            "p",
            "pads",
            "strides"
        ]
    ),
    def!("Col2Im", col2im, ["dilations", "pads", "strides"]),
];

/// `(Σ_window |x|^p)^(1/p)` per channel.
fn lp_pool(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    if n.attrs.int_or("ceil_mode", 0)? != 0 {
        return Err("ceil_mode=1 is not supported for LpPool".into());
    }
    if !x.dtype().is_float() || x.rank() < 3 {
        return Err(format!(
            "input {:?} {}; expected [N, C, …] floats",
            x.shape(),
            x.dtype()
        ));
    }
    let p = n.attrs.int_or("p", 2)?;
    if p <= 0 {
        return Err(format!("p={p} (expected a positive integer)"));
    }
    let kernel = n
        .attrs
        .ints("kernel_shape")?
        .ok_or("kernel_shape is required")?;
    let c = x.shape()[1];
    let mut wshape = vec![c, 1];
    for &k in &kernel {
        wshape.push(usize::try_from(k).map_err(|_| format!("kernel_shape {kernel:?}"))?);
    }
    let taps: usize = wshape.iter().product();
    let ones = b.constant(OwnedOperand::dense(
        CpuStorage::from_f64s(x.dtype(), std::iter::repeat_n(1.0, taps)),
        &wshape,
    ));
    let a = b.unary(x, UnaryOp::Abs)?;
    let powered = b.unary(&a, UnaryOp::PowScalar(p as f64))?;
    let sum = conv_of(b, n, &powered, &ones, None, Some(c))?;
    one(b.unary(&sum, UnaryOp::PowScalar(1.0 / p as f64))?)
}

fn col2im(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let image = n.ints(1)?.ok_or("image_shape is missing")?;
    let block = n.ints(2)?.ok_or("block_shape is missing")?;
    if image.len() != 2 || block.len() != 2 {
        return Err(format!(
            "image_shape {image:?} and block_shape {block:?}: Kiln imports 2-D images"
        ));
    }
    let pair = |name: &str, default: i64| -> R<[usize; 2]> {
        let v = n.attrs.ints(name)?.unwrap_or_else(|| vec![default; 2]);
        match v.as_slice() {
            [a, b] if *a >= 0 && *b >= 0 => Ok([*a as usize, *b as usize]),
            _ => Err(format!("{name} {v:?}")),
        }
    };
    let pads = n.attrs.ints("pads")?.unwrap_or_else(|| vec![0; 4]);
    let padding = match pads.as_slice() {
        [t, l, bo, r] if t == bo && l == r && *t >= 0 && *l >= 0 => [*t as usize, *l as usize],
        _ => return Err(format!("pads {pads:?}: Kiln folds with symmetric padding")),
    };
    let size = |v: i64| usize::try_from(v).map_err(|_| format!("negative size {v}"));
    let op = Op::Fold {
        output: [size(image[0])?, size(image[1])?],
        kernel: [size(block[0])?, size(block[1])?],
        stride: pair("strides", 1)?,
        padding,
        dilation: pair("dilations", 1)?,
    };
    one(b.op(op, &[x])?)
}
