//! Element counts never wrap: every shape that reaches storage or a kernel is checked once
//! (`shape::checked_numel`), so sizes past memory are a panic that names the op, never a
//! tensor with a wrapped element count (which a later kernel would read out of bounds).

#[macro_use]
mod common;

use kiln_core::nn::functional as F;
use kiln_core::ops::infer::{try_infer, TypeRef};
use kiln_core::ops::{Conv2dParams, Op};
use kiln_core::shape::{checked_numel, MAX_TENSOR_BYTES};
use kiln_core::{DType, Tensor};

/// 2^62 + 3: times 4 it wraps to 12 in 64-bit arithmetic.
const WRAPS_TO_12: usize = (1 << 62) + 3;

#[test]
fn checked_numel_refuses_counts_past_memory_and_strides_that_would_wrap() {
    assert_eq!(checked_numel(&[2, 3, 4], 4), Ok(24));
    assert_eq!(checked_numel(&[], 8), Ok(1));
    assert_eq!(checked_numel(&[3, 0, 5], 4), Ok(0));
    assert!(checked_numel(&[4, WRAPS_TO_12], 1).is_err());
    assert!(checked_numel(&[1 << 32, 1 << 32], 1).is_err());
    // Empty, but the row-major stride of dim 0 would be 2^64.
    assert!(checked_numel(&[0, 1 << 32, 1 << 32], 1).is_err());
    // The byte limit depends on the element size.
    let most_f32 = MAX_TENSOR_BYTES / 4;
    assert_eq!(checked_numel(&[most_f32], 4), Ok(most_f32));
    assert!(checked_numel(&[most_f32 + 1], 4).is_err());
}

panics!(
    from_vec_with_a_wrapping_shape,
    "from_vec: shape [4, 4611686018427387907] is too large",
    Tensor::from_vec(vec![0f32; 12], [4, WRAPS_TO_12])
);
panics!(
    zeros_past_memory,
    "full: shape [4294967296, 4294967296] is too large",
    Tensor::zeros([1usize << 32, 1 << 32], DType::F32)
);
panics!(
    randn_past_memory,
    "random: shape",
    Tensor::randn([1usize << 62], DType::F32)
);
panics!(
    reshape_into_a_wrapping_shape,
    "reshape: shape [4, 4611686018427387907] is invalid for input of shape [12]",
    Tensor::zeros([12], DType::F32).reshape([4, WRAPS_TO_12])
);
panics!(
    expand_past_memory,
    "expand: output shape [4611686018427387907, 4] is too large",
    Tensor::zeros([1, 4], DType::F32).expand([WRAPS_TO_12, 4])
);
panics!(
    eye_past_memory,
    "eye: shape",
    Tensor::eye(1 << 32, DType::F32)
);
panics!(
    arange_past_memory,
    "arange: shape",
    Tensor::arange(0.0, 1e300, 1.0, DType::F32)
);
panics!(
    conv_padding_that_would_wrap,
    "conv2d: kernel [3, 3] (dilation [1, 1]) does not fit",
    F::conv2d(
        &Tensor::zeros([1, 1, 4, 4], DType::F32),
        &Tensor::zeros([1, 1, 3, 3], DType::F32),
        None,
        1,
        1usize << 63,
        1,
        1
    )
);
panics!(
    conv_padding_of_the_issue,
    "conv2d: output shape [1, 1, 4611686018427387908, 4611686018427387908] is too large",
    F::conv2d(
        &Tensor::zeros([1, 1, 4, 4], DType::F32),
        &Tensor::zeros([1, 1, 3, 3], DType::F32),
        None,
        1,
        (1usize << 61) + 1,
        1,
        1
    )
);
panics!(
    conv_padding_past_memory,
    "conv2d: output shape",
    F::conv2d(
        &Tensor::zeros([1, 1, 4, 4], DType::F32),
        &Tensor::zeros([1, 1, 3, 3], DType::F32),
        None,
        1,
        1usize << 40,
        1,
        1
    )
);
panics!(
    unfold_padding_past_memory,
    "unfold: sizes [18014398509481987, 18014398509481987] overflow",
    Tensor::unfold_raw(
        &Tensor::zeros([1, 1, 4, 4], DType::F32),
        [2, 2],
        [1, 1],
        [1 << 53, 1 << 53],
        [1, 1],
        0.0
    )
);
panics!(
    conv_transpose_stride_that_would_wrap,
    "conv_transpose2d: kernel [1, 1], stride [4611686018427387904, 1]",
    F::conv_transpose2d(
        &Tensor::zeros([1, 1, 8, 1], DType::F32),
        &Tensor::zeros([1, 1, 1, 1], DType::F32),
        None,
        (1usize << 62, 1),
        0,
        0,
        1,
        1
    )
);

/// Shape inference of ops read from a file: attributes no eager call would make are errors,
/// not panics or wrapped sizes.
#[test]
fn try_infer_refuses_hostile_attributes_without_panicking() {
    let x = TypeRef {
        shape: &[2, 3],
        dtype: DType::F32,
    };
    let idx = TypeRef {
        shape: &[2, 3],
        dtype: DType::I64,
    };
    let img = TypeRef {
        shape: &[1, 1, 4, 4],
        dtype: DType::F32,
    };
    let w = TypeRef {
        shape: &[1, 1, 3, 3],
        dtype: DType::F32,
    };
    let huge = (1usize << 61) + 1;
    let cases: Vec<(Op, Vec<&TypeRef>, &str)> =
        vec![
        (Op::Gather(2), vec![&x, &idx], "gather: dim 2 is out of range"),
        (Op::IndexSelect(5), vec![&x, &idx], "index_select: dim 5"),
        (
            Op::Sum {
                dims: [1, 0].into_iter().collect(),
                keepdim: false,
            },
            vec![&x],
            "must be sorted",
        ),
        (
            Op::Max {
                dims: [7].into_iter().collect(),
                keepdim: false,
            },
            vec![&x],
            "below the rank",
        ),
        (
            Op::ArgMax {
                dim: 9,
                keepdim: false,
            },
            vec![&x],
            "argmax: dim 9",
        ),
        (
            Op::Slice {
                dim: 1,
                start: 1,
                len: 3,
                step: usize::MAX / 2,
            },
            vec![&x],
            "slice: start 1, len 3",
        ),
        (
            Op::Slice {
                dim: 4,
                start: 0,
                len: 1,
                step: 1,
            },
            vec![&x],
            "slice: dim 4",
        ),
        (
            Op::Reshape([4, WRAPS_TO_12].into_iter().collect()),
            vec![&x],
            "reshape: cannot reshape",
        ),
        (
            Op::Expand([usize::MAX, 2, 3].into_iter().collect()),
            vec![&x],
            "is too large",
        ),
        (Op::Reshape([6].into_iter().collect()), vec![], "expected 1 inputs"),
        (Op::Matmul, vec![&x], "matmul: expected 2 inputs"),
        (
            Op::Random {
                dist: kiln_core::ops::Distribution::Normal,
                shape: [1usize << 62, 4].into_iter().collect(),
                dtype: DType::F32,
                seed: 0,
                offset: 0,
            },
            vec![],
            "random: output shape",
        ),
        (
            Op::Conv2d(Conv2dParams {
                stride: [1, 1],
                padding: [huge, huge],
                dilation: [1, 1],
                groups: 1,
            }),
            vec![&img, &w],
            "conv2d: output shape [1, 1, 4611686018427387908, 4611686018427387908] is too large",
        ),
        (
            Op::Conv2d(Conv2dParams {
                stride: [1, 1],
                padding: [0, 0],
                dilation: [usize::MAX, 1],
                groups: 1,
            }),
            vec![&img, &w],
            "conv2d: kernel [3, 3]",
        ),
        (
            Op::Conv2d(Conv2dParams {
                stride: [1, 1],
                padding: [0, 0],
                dilation: [1, 1],
                groups: usize::MAX,
            }),
            vec![&img, &w],
            "groups",
        ),
        (
            Op::Unfold {
                kernel: [0, 2],
                stride: [1, 1],
                padding: [0, 0],
                dilation: [1, 1],
                pad_value: 0.0,
            },
            vec![&img],
            "unfold: kernel 0",
        ),
        (
            Op::Fold {
                output: [4, 4],
                kernel: [usize::MAX, 2],
                stride: [1, 1],
                padding: [usize::MAX / 2, 0],
                dilation: [1, 1],
            },
            vec![&x],
            "fold: kernel",
        ),
    ];
    for (op, inputs, expected) in cases {
        let err = try_infer(&op, &inputs).expect_err(&format!("{op:?} must be refused"));
        assert!(
            err.0.contains(expected),
            "{op:?}: message {:?} should contain {expected:?}",
            err.0
        );
    }
}
