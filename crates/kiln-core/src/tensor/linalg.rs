//! Matrix products and the raw unfold/fold primitives behind convolution.

use super::Tensor;
use crate::ops::{dispatch, Op};

/// `[.., M, K] @ [K, N]` as one `[B·M, K] @ [K, N]` product when the lhs batch and row dims
/// merge into one without a copy: in backward the rhs (a weight) then gets its gradient from
/// one product over all B·M rows, instead of B products and a sum over them.
#[track_caller]
fn fold_batch_into_rows(a: &Tensor, b: &Tensor) -> Option<Tensor> {
    if a.rank() <= 2 || b.rank() != 2 {
        return None;
    }
    let k = a.shape()[a.rank() - 1];
    let rows = a.shape()[..a.rank() - 1].iter().product::<usize>();
    a.layout().reshape_view(&[rows, k])?;
    let mut shape = a.shape()[..a.rank() - 1].to_vec();
    shape.push(b.shape()[1]);
    Some(dispatch(Op::Matmul, &[&a.reshape([rows, k]), b]).reshape(shape))
}

impl Tensor {
    /// Matrix product with `torch.matmul` semantics: 1-D operands are promoted and the added
    /// dim removed; batch dims broadcast.
    #[track_caller]
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
        let out = match fold_batch_into_rows(&a, &b) {
            Some(out) => out,
            None => dispatch(Op::Matmul, &[&a, &b]),
        };
        match (a1, b1) {
            (true, true) => out.reshape([0usize; 0]),
            (true, false) => out.squeeze(-2),
            (false, true) => out.squeeze(-1),
            (false, false) => out,
        }
    }

    /// im2col: `[N, C, H, W]` → `[N, C·kh·kw, L]`; positions outside the input read `pad_value`.
    #[track_caller]
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
    #[track_caller]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;

    fn close(a: &Tensor, b: &Tensor) {
        assert_eq!(a.shape(), b.shape());
        for (x, y) in a.to_vec::<f64>().iter().zip(b.to_vec::<f64>()) {
            assert!((x - y).abs() < 1e-12, "{x} vs {y}");
        }
    }

    #[test]
    fn batched_lhs_times_matrix_folds_into_rows_with_the_same_values_and_gradients() {
        let w = Tensor::randn([5, 3], DType::F64);
        // Mergeable (dense) lhs: folded; a transposed batch: not a view, left batched.
        let dense = Tensor::randn([2, 4, 6, 5], DType::F64);
        let strided = Tensor::randn([6, 4, 2, 5], DType::F64).permute([2, 1, 0, 3]);
        for x in [dense, strided] {
            assert_eq!(
                fold_batch_into_rows(&x, &w).is_some(),
                x.layout().reshape_view(&[48, 5]).is_some()
            );
            let x = x.detach().requires_grad_(true);
            let wg = w.detach().requires_grad_(true);
            let y = x.matmul(&wg);
            assert_eq!(y.shape(), &[2, 4, 6, 3]);
            let plain = dispatch(Op::Matmul, &[&x.detach(), &w]);
            close(&y.detach(), &plain);
            let g = Tensor::randn([2, 4, 6, 3], DType::F64);
            (&y * &g).sum_all().backward();
            // d/dW Σ g·(x W) = Σ_batch xᵀ g; d/dx = g Wᵀ.
            let gw = x.detach().reshape([48, 5]).t().matmul(&g.reshape([48, 3]));
            close(&wg.grad().unwrap(), &gw);
            close(&x.grad().unwrap(), &g.matmul(&w.t()));
        }
    }
}
