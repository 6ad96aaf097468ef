//! Values for the kernels' own unit tests: random operands and ops run through the CPU
//! backend, without the tensor layer above.

use super::execute;
use crate::dtype::DType;
use crate::layout::Layout;
use crate::operand::{Operand, OwnedOperand};
use crate::ops::{Distribution, Op};
use crate::storage::StorageElement;
use std::cell::Cell;

thread_local! {
    static SEED: Cell<u64> = const { Cell::new(1) };
}

/// A test value: an owned operand with the few ops the tests need.
#[derive(Clone, Debug)]
pub(crate) struct V(pub(crate) OwnedOperand);

impl V {
    /// Standard-normal values of `shape` (a new seed per call on this thread).
    pub(crate) fn randn<const N: usize>(shape: [usize; N], dtype: DType) -> V {
        let seed = SEED.with(|s| {
            s.set(s.get() + 1);
            s.get()
        });
        let n = shape.iter().product();
        let data = super::random::random(Distribution::Normal, n, DType::F64, seed, 0);
        let f64s = OwnedOperand::dense(data, &shape);
        V(OwnedOperand::dense(
            super::cast(f64s.operand(), dtype),
            &shape,
        ))
    }

    /// The operand.
    pub(crate) fn operand(&self) -> Operand<'_> {
        self.0.operand()
    }

    /// The last two dims swapped (a view).
    pub(crate) fn t(&self) -> V {
        let o = self.operand();
        let mut perm: Vec<usize> = (0..o.rank()).collect();
        perm.swap(o.rank() - 2, o.rank() - 1);
        dispatch(Op::Permute(perm.into_iter().collect()), &[self])
    }

    /// The last two dims swapped (the only transpose the tests use).
    pub(crate) fn transpose(&self, d0: isize, d1: isize) -> V {
        assert_eq!(
            (d0, d1),
            (-2, -1),
            "testing::V::transpose: last two dims only"
        );
        self.t()
    }

    /// Elements in row-major order as `T`.
    pub(crate) fn to_vec<T: StorageElement>(&self) -> Vec<T> {
        let cast = super::cast_if(self.operand(), T::DTYPE);
        super::to_contiguous_vec(cast.operand())
    }

    /// The matrix product.
    pub(crate) fn matmul(&self, b: &V) -> V {
        dispatch(Op::Matmul, &[self, b])
    }
}

impl std::ops::Add for &V {
    type Output = V;
    fn add(self, b: &V) -> V {
        dispatch(Op::Add, &[self, b])
    }
}

/// Runs `op` on the CPU backend after inferring its output, as `dispatch` does for tensors.
pub(crate) fn dispatch(op: Op, inputs: &[&V]) -> V {
    let (shape, dtype) = crate::ops::infer::infer(&op, inputs);
    let operands: Vec<Operand<'_>> = inputs.iter().map(|v| v.operand()).collect();
    let (storage, layout): (_, Layout) = execute(&op, &operands, &shape, dtype);
    V(OwnedOperand::new(storage, layout, dtype))
}

impl crate::ops::infer::ValueType for V {
    fn shape(&self) -> &[usize] {
        self.0.operand().shape()
    }
    fn dtype(&self) -> DType {
        self.0.operand().dtype()
    }
}
