//! Pooling windows over tensors: the geometry of each pooling axis, every window of every
//! plane as columns, and the input position of each window's maximum. Shared by the pooling
//! functionals (`nn::functional::pool`) and the VJP of max-pool's backward, which needs the
//! argmax positions (so the op declarations do not reach up into `nn`).

use crate::dtype::DType;
use crate::ops::window::pool_out;
use crate::ops::Pool2dParams;
use crate::tensor::Tensor;

/// Geometry of one pooling axis.
#[derive(Clone, Copy)]
pub(crate) struct Axis {
    pub(crate) size: usize,
    pub(crate) kernel: usize,
    pub(crate) stride: usize,
    pub(crate) padding: usize,
    pub(crate) dilation: usize,
    pub(crate) out: usize,
    /// Rows/cols appended past the end so that ceil-mode windows fit.
    pub(crate) extra: usize,
}

impl Axis {
    #[track_caller]
    pub(crate) fn new(
        size: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        dilation: usize,
        ceil: bool,
        op: &str,
    ) -> Axis {
        let out = match pool_out(size, kernel, stride, padding, dilation, ceil, op) {
            Ok(n) => n,
            Err(e) => panic!("{e}"),
        };
        let eff = dilation * (kernel - 1) + 1;
        let extra = ((out - 1) * stride + eff).saturating_sub(size + 2 * padding);
        Axis {
            size,
            kernel,
            stride,
            padding,
            dilation,
            out,
            extra,
        }
    }

    /// Input coordinate read by output `o` at kernel tap `t` (may lie outside the input).
    pub(crate) fn source(&self, o: usize, t: usize) -> i64 {
        (o * self.stride + t * self.dilation) as i64 - self.padding as i64
    }
}

/// Appends `extra` entries of `value` at the end of `dim`.
pub(crate) fn pad_end(x: Tensor, dim: usize, extra: usize, value: f64) -> Tensor {
    if extra == 0 {
        return x;
    }
    let mut shape = x.shape().to_vec();
    shape[dim] = extra;
    let fill = Tensor::full(shape, value, x.dtype());
    Tensor::cat(&[x, fill], dim)
}

/// Every pooling window of every plane: `[N·C, kh·kw, H'·W']`, reading `pad_value` outside.
pub(crate) fn windows(x: &Tensor, ax: [Axis; 2], pad_value: f64) -> Tensor {
    let (n, c, h, w) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    let planes = x.reshape([n * c, 1, h, w]);
    let planes = pad_end(planes, 2, ax[0].extra, pad_value);
    let planes = pad_end(planes, 3, ax[1].extra, pad_value);
    Tensor::unfold_raw(
        &planes,
        [ax[0].kernel, ax[1].kernel],
        [ax[0].stride, ax[1].stride],
        [ax[0].padding, ax[1].padding],
        [ax[0].dilation, ax[1].dilation],
        pad_value,
    )
}

/// The two spatial axes of `x` (`[N, C, H, W]`) under a window of these sizes.
pub(crate) fn axes(
    x: &Tensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    ceil: bool,
    op: &str,
) -> [Axis; 2] {
    [0, 1].map(|a| {
        Axis::new(
            x.shape()[2 + a],
            kernel[a],
            stride[a],
            padding[a],
            dilation[a],
            ceil,
            op,
        )
    })
}

/// For each window of max pooling `x` (`[N, C, H, W]`) with `p`, the flat `H·W` position of
/// its first maximum (`[N, C, H', W']`, i64; as PyTorch's `return_indices`). Read off a
/// detached copy: indices carry no gradient.
pub(crate) fn max_pool2d_indices(x: &Tensor, p: &Pool2dParams) -> Tensor {
    let ax = axes(
        x,
        p.kernel,
        p.stride,
        p.padding,
        p.dilation,
        p.ceil_mode,
        "max_pool2d",
    );
    let cols = windows(&x.detach(), ax, f64::NEG_INFINITY);
    let shape = [x.shape()[0], x.shape()[1], ax[0].out, ax[1].out];
    // The winning tap per window, mapped to an input position through a table indexed by
    // (tap, window).
    let l = ax[0].out * ax[1].out;
    let width = ax[1].size as i64;
    let mut table = Vec::with_capacity(ax[0].kernel * ax[1].kernel * l);
    for ki in 0..ax[0].kernel {
        for kj in 0..ax[1].kernel {
            for oy in 0..ax[0].out {
                for ox in 0..ax[1].out {
                    let (iy, ix) = (ax[0].source(oy, ki), ax[1].source(ox, kj));
                    let inside = (0..ax[0].size as i64).contains(&iy) && (0..width).contains(&ix);
                    table.push(if inside { iy * width + ix } else { -1 });
                }
            }
        }
    }
    let table = Tensor::from_vec(table, [ax[0].kernel * ax[1].kernel * l]);
    let window = Tensor::arange(0.0, l as f64, 1.0, DType::I64);
    let tap = cols.argmax(1, false);
    let flat = &tap.affine(l as f64, 0.0) + &window;
    table.index_select(0, &flat.flatten_all()).reshape(shape)
}
