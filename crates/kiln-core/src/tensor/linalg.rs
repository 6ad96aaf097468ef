//! Matrix products and the raw unfold/fold primitives behind convolution.

use super::Tensor;
use crate::ops::{dispatch, Op};

impl Tensor {
    /// Matrix product with `torch.matmul` semantics: 1-D operands are promoted and the added
    /// dim removed; batch dims broadcast.
    pub fn matmul(&self, other: &Tensor) -> Tensor {
        let (a1, b1) = (self.rank() == 1, other.rank() == 1);
        if self.rank() == 0 || other.rank() == 0 {
            panic!(
                "matmul: both arguments need at least 1 dim, got {:?} @ {:?}",
                self.shape(),
                other.shape()
            );
        }
        let a = if a1 { self.unsqueeze(0) } else { self.clone() };
        let b = if b1 {
            other.unsqueeze(1)
        } else {
            other.clone()
        };
        if a.shape()[a.rank() - 1] != b.shape()[b.rank() - 2] {
            panic!(
                "matmul: {:?} @ {:?}: inner dimensions {} and {} differ",
                self.shape(),
                other.shape(),
                a.shape()[a.rank() - 1],
                b.shape()[b.rank() - 2]
            );
        }
        let out = dispatch(Op::Matmul, &[&a, &b]);
        match (a1, b1) {
            (true, true) => out.reshape([0usize; 0]),
            (true, false) => out.squeeze(-2),
            (false, true) => out.squeeze(-1),
            (false, false) => out,
        }
    }

    /// im2col: `[N, C, H, W]` → `[N, C·kh·kw, L]`; positions outside the input read `pad_value`.
    pub fn unfold_raw(
        x: &Tensor,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
        pad_value: f64,
    ) -> Tensor {
        dispatch(
            Op::Unfold {
                kernel,
                stride,
                padding,
                dilation,
                pad_value,
            },
            &[x],
        )
    }

    /// col2im: `[N, C·kh·kw, L]` → `[N, C, H, W]` summing overlaps (adjoint of unfold).
    pub fn fold_raw(
        x: &Tensor,
        output: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
    ) -> Tensor {
        dispatch(
            Op::Fold {
                output,
                kernel,
                stride,
                padding,
                dilation,
            },
            &[x],
        )
    }
}
