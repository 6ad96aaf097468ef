//! Misuse panics with a message that names the op, the shapes and (where relevant) dtypes.

#[macro_use]
mod common;

use kiln_core::{DType, Generator, Tensor};

fn f32s(shape: &[usize]) -> Tensor {
    Tensor::zeros(shape, DType::F32)
}

fn idx(v: &[i64]) -> Tensor {
    Tensor::from_vec(v.to_vec(), [v.len()])
}

// ---- matmul
panics!(
    matmul_inner_dims,
    "matmul: [2, 3] @ [4, 5]: inner dimensions 3 and 4 differ",
    f32s(&[2, 3]).matmul(&f32s(&[4, 5]))
);
panics!(
    matmul_vector_inner_dims,
    "matmul: [3] @ [4]: inner dimensions 3 and 4 differ",
    f32s(&[3]).matmul(&f32s(&[4]))
);
panics!(
    matmul_dtypes,
    "matmul: [2, 3] (f32) @ [3, 2] (f64): dtypes differ",
    f32s(&[2, 3]).matmul(&Tensor::zeros([3, 2], DType::F64))
);
panics!(
    matmul_scalar,
    "matmul: both arguments need at least 1 dim, got [] @ [3]",
    Tensor::scalar(1.0, DType::F32).matmul(&f32s(&[3]))
);
panics!(
    matmul_batch,
    "matmul: batch dims of [2, 3, 4] and [3, 4, 5] cannot be broadcast",
    f32s(&[2, 3, 4]).matmul(&f32s(&[3, 4, 5]))
);
panics!(
    matmul_bool,
    "matmul: bool operands are not supported",
    Tensor::zeros([2, 2], DType::Bool).matmul(&Tensor::zeros([2, 2], DType::Bool))
);

// ---- broadcasting and elementwise
panics!(
    add_broadcast,
    "add: shapes [2, 3] and [4, 3] cannot be broadcast together (f32, f32)",
    &f32s(&[2, 3]) + &f32s(&[4, 3])
);
panics!(
    mul_broadcast_names_dtypes,
    "mul: shapes [2] and [3] cannot be broadcast together (i64, f64)",
    &Tensor::zeros([2], DType::I64) * &Tensor::zeros([3], DType::F64)
);
panics!(
    compare_broadcast,
    "compare: shapes [2, 3] and [2] cannot be broadcast together",
    f32s(&[2, 3]).lt(&f32s(&[2]))
);
panics!(
    sub_bool,
    "sub: subtraction of bool tensors is not supported",
    &Tensor::zeros([2], DType::Bool) - &Tensor::zeros([2], DType::Bool)
);
panics!(
    relu_bool,
    "relu: not supported for bool tensors (shape [2])",
    Tensor::zeros([2], DType::Bool).relu()
);
panics!(
    clamp_bounds,
    "clamp: min 2 is greater than max 1",
    f32s(&[2]).clamp(2.0, 1.0)
);
panics!(
    where_non_bool_condition,
    "where: condition must be bool, got f32 ([2], [2], [2])",
    Tensor::where_(&f32s(&[2]), &f32s(&[2]), &f32s(&[2]))
);
panics!(
    where_broadcast,
    "where: shapes [2], [3], [2] cannot be broadcast together",
    Tensor::where_(&Tensor::zeros([2], DType::Bool), &f32s(&[3]), &f32s(&[2]))
);
panics!(
    masked_fill_non_bool_mask,
    "where: condition must be bool, got i64",
    f32s(&[2]).masked_fill(&Tensor::zeros([2], DType::I64), 1.0)
);
panics!(
    copy_broadcast,
    "copy_: source shape [3] cannot be broadcast to [2, 2]",
    f32s(&[2, 2]).copy_(&f32s(&[3]))
);
panics!(
    in_place_broadcast,
    "add_: result shape [2, 2] does not match the tensor's shape [2]",
    f32s(&[2]).add_(&f32s(&[2, 2]))
);

// ---- shapes and dims
panics!(
    reshape_numel,
    "reshape: shape [4, 4] is invalid for input of shape [2, 3] (6 elements)",
    f32s(&[2, 3]).reshape([4, 4])
);
panics!(
    reshape_infer_numel,
    "reshape: shape [4, -1] is invalid for input of shape [2, 3] (6 elements)",
    f32s(&[2, 3]).reshape([4, -1])
);
panics!(
    reshape_two_minus_one,
    "only one dimension can be -1",
    f32s(&[2, 3]).reshape([-1, -1])
);
panics!(
    sum_bad_dim,
    "sum: dim 2 is out of range for a tensor of rank 2",
    f32s(&[2, 3]).sum([2], false)
);
panics!(
    mean_bad_negative_dim,
    "mean: dim -3 is out of range for a tensor of rank 2",
    f32s(&[2, 3]).mean([-3], false)
);
panics!(
    transpose_bad_dim,
    "transpose: dim 3 is out of range for a tensor of rank 3",
    f32s(&[2, 3, 4]).transpose(0, 3)
);
panics!(
    argmax_bad_dim,
    "argmax: dim 1 is out of range for a tensor of rank 1",
    f32s(&[3]).argmax(1, false)
);
panics!(
    unsqueeze_bad_dim,
    "unsqueeze: dim 3 is out of range for a tensor of rank 2",
    f32s(&[2]).unsqueeze(3)
);
panics!(
    size_bad_dim,
    "size: dim 2 is out of range for a tensor of rank 2",
    f32s(&[2, 3]).size(2)
);
panics!(
    narrow_out_of_range,
    "slice: start 2, len 3, step 1 out of range for dim 0 of shape [4]",
    f32s(&[4]).narrow(0, 2, 3)
);
panics!(
    permute_not_a_permutation,
    "permute: [0, 0] is not a permutation of the dims of a tensor of shape [2, 3]",
    f32s(&[2, 3]).permute([0, 0])
);
panics!(
    expand_incompatible,
    "expand: cannot broadcast shape [2, 3] to [4, 3]",
    f32s(&[2, 3]).expand([4, 3])
);
panics!(
    expand_too_few_dims,
    "expand: cannot expand shape [2, 3] to [3]: too few dims",
    f32s(&[2, 3]).expand([3])
);
panics!(
    expand_minus_one_in_new_leading_dim,
    "expand: size -1 at dim 0 is not allowed (-1 only keeps an existing dim): [3] to [-1, 3]",
    f32s(&[3]).expand([-1, 3])
);
panics!(
    t_of_rank_3,
    "t: expects a tensor of rank ≤ 2, got rank 3 with shape [2, 3, 4]",
    f32s(&[2, 3, 4]).t()
);
panics!(
    flatten_reversed,
    "flatten: start dim 1 is after end dim 0",
    f32s(&[2, 3]).flatten(1, 0)
);
panics!(
    view_incompatible,
    "view: size [6] is not compatible with the strides [1, 3] of a tensor of shape [3, 2]",
    f32s(&[2, 3]).t().view([6])
);

// ---- joining and splitting
panics!(
    cat_shapes,
    "cat: shapes [2, 3], [3, 3] differ outside dim 1",
    Tensor::cat(&[f32s(&[2, 3]), f32s(&[3, 3])], 1)
);
panics!(
    cat_ranks,
    "cat: shapes [2, 3], [6] differ outside dim 0",
    Tensor::cat(&[f32s(&[2, 3]), f32s(&[6])], 0)
);
panics!(
    cat_dtypes,
    "cat: dtypes differ (f32, f64)",
    Tensor::cat(&[f32s(&[2]), Tensor::zeros([2], DType::F64)], 0)
);
panics!(
    cat_empty,
    "cat: expected a non-empty list of tensors",
    Tensor::cat(&[] as &[Tensor], 0)
);
panics!(
    stack_shapes,
    "stack: shapes differ: [2] and [3]",
    Tensor::stack(&[f32s(&[2]), f32s(&[3])], 0)
);
panics!(
    split_zero,
    "split: size must be positive",
    f32s(&[4]).split(0, 0)
);
panics!(
    split_sizes_sum,
    "split: sizes [1, 2] do not add up to dim 0 of shape [4]",
    f32s(&[4]).split_sizes(&[1, 2], 0)
);
panics!(
    chunk_zero,
    "chunk: number of chunks must be positive",
    f32s(&[4]).chunk(0, 0)
);

// ---- indexing
panics!(
    index_select_out_of_range,
    "index_select: index 5 is out of range for dim 0 of size 3",
    f32s(&[3, 2]).index_select(0, &idx(&[0, 5]))
);
panics!(
    index_select_negative,
    "index_select: index -1 is out of range for dim 1 of size 2",
    f32s(&[3, 2]).index_select(1, &idx(&[-1]))
);
panics!(
    index_select_float_index,
    "index_select: index must be an i64 tensor, got f32 with shape [2]",
    f32s(&[3]).index_select(0, &f32s(&[2]))
);
panics!(
    index_select_2d_index,
    "index_select: index must be 1-D, got shape [1, 2]",
    f32s(&[3]).index_select(0, &Tensor::zeros([1, 2], DType::I64))
);
panics!(
    index_add_out_of_range,
    "index_add: index 3 is out of range for dim 0 of size 3",
    f32s(&[3]).index_add(0, &idx(&[3]), &f32s(&[1]))
);
panics!(
    index_add_source_shape,
    "index_add: base [3, 2] (f32), index [2], source [3, 2] (f32): source must have shape [2, 2]",
    f32s(&[3, 2]).index_add(0, &idx(&[0, 1]), &f32s(&[3, 2]))
);
panics!(
    gather_out_of_range,
    "gather: index 3 is out of range for dim 1 of size 3",
    f32s(&[2, 3]).gather(1, &Tensor::from_vec(vec![0i64, 3], [2, 1]))
);
panics!(
    gather_rank,
    "gather: index shape [2] does not fit input shape [2, 3] at dim 0",
    f32s(&[2, 3]).gather(0, &idx(&[0, 1]))
);
panics!(
    scatter_add_out_of_range,
    "scatter_add: index 4 is out of range for dim 0 of size 2",
    f32s(&[2]).scatter_add(0, &idx(&[4]), &f32s(&[1]))
);
panics!(
    scatter_add_dtypes,
    "scatter_add: base [2] (f32), index [1], source [1] (f64) do not fit at dim 0",
    f32s(&[2]).scatter_add(0, &idx(&[1]), &Tensor::zeros([1], DType::F64))
);
panics!(
    basic_index_out_of_range,
    "index: index 3 is out of range for dim 0 of shape [3, 2]",
    f32s(&[3, 2]).i(3)
);
panics!(
    basic_index_too_many,
    "index: too many indices for a tensor of shape [2]",
    f32s(&[2]).i((0, 0))
);
panics!(
    one_hot_float,
    "one_hot: needs an integer tensor of class indices, got f32",
    f32s(&[2]).one_hot(3)
);

// ---- reductions
panics!(
    mean_of_ints,
    "mean: needs a float tensor, got i64 with shape [3]",
    Tensor::zeros([3], DType::I64).mean([0], false)
);
panics!(
    max_of_empty,
    "max: cannot reduce over an empty dim 0 of shape [0, 3]",
    f32s(&[0, 3]).amax([0], false)
);
panics!(
    argmax_of_empty,
    "argmax: cannot reduce over an empty dim 1 of shape [2, 0]",
    f32s(&[2, 0]).argmax(1, false)
);

// ---- creation and reading
panics!(
    from_vec_len,
    "from_vec: 5 values do not fill shape [2, 3] (6 elements)",
    Tensor::from_vec(vec![0.0f32; 5], [2, 3])
);
panics!(
    arange_zero_step,
    "arange: invalid range 0..5 with step 0",
    Tensor::arange(0.0, 5.0, 0.0, DType::F32)
);
panics!(
    randint_empty,
    "randint: empty range 3..3",
    Tensor::randint_with(3, 3, [2], &mut Generator::new(0))
);
panics!(
    rand_int_dtype,
    "random: Uniform samples need a float dtype, got i64",
    Tensor::rand_with([2], DType::I64, &mut Generator::new(0))
);
panics!(
    item_of_many,
    "item: only one-element tensors can be converted to a scalar, got shape [2]",
    f32s(&[2]).item::<f32>()
);
panics!(
    to_vec2_of_1d,
    "to_vec2: expected a 2-D tensor, got shape [4]",
    f32s(&[4]).to_vec2::<f32>()
);

// ---- convolution support
panics!(
    unfold_kernel_too_big,
    "unfold: kernel 5 (stride 1, dilation 1) does not fit input size 3 with padding 0",
    Tensor::unfold_raw(&f32s(&[1, 1, 3, 3]), [5, 5], [1, 1], [0, 0], [1, 1], 0.0)
);
panics!(
    unfold_rank,
    "unfold: expected a 4-D [N, C, H, W] input, got [3, 3]",
    Tensor::unfold_raw(&f32s(&[3, 3]), [2, 2], [1, 1], [0, 0], [1, 1], 0.0)
);
panics!(
    fold_shape,
    "fold: input [1, 4, 5] does not match kernel [2, 2] and output size [3, 3]",
    Tensor::fold_raw(&f32s(&[1, 4, 5]), [3, 3], [2, 2], [1, 1], [0, 0], [1, 1])
);

#[test]
fn int_inputs_to_float_ops_are_promoted_not_errors() {
    let i = Tensor::from_vec(vec![0i64, 1], [2]);
    assert_eq!(i.exp().dtype(), DType::F32);
    assert_eq!(i.exp().to_vec::<f32>(), vec![1.0, std::f32::consts::E]);
    assert_eq!(
        i.sigmoid().to_vec::<f32>(),
        vec![0.5, 1.0 / (1.0 + (-1.0f32).exp())]
    );
    let b = Tensor::from_vec(vec![true, false], [2]);
    assert_eq!(b.sqrt().to_vec::<f32>(), vec![1.0, 0.0]);
}

// ---- mistakes a new user makes: the message says what the fix is
panics!(
    mse_target_that_would_broadcast_past_the_input,
    "mse_loss: input [4, 1] (f32) and target [4] (f32) must have the same shape (or the target one that broadcasts to it); broadcasting them would compare every input with every target; use `target.unsqueeze(1)`",
    kiln_core::nn::functional::mse_loss(
        &f32s(&[4, 1]),
        &f32s(&[4]),
        kiln_core::nn::functional::Reduction::Mean
    )
);
panics!(
    cross_entropy_with_float_class_labels,
    "cross_entropy: class-index targets must be an integer tensor (i64), got f32 with shape [2]; convert them with `target.to_dtype(DType::I64)`",
    kiln_core::nn::functional::cross_entropy(&f32s(&[2, 3]), &f32s(&[2]))
);
panics!(
    cross_entropy_with_a_label_out_of_range,
    "cross_entropy: target 3 at position 1 is not a class index: labels must be integers in [0, 3) for an input with 3 classes (or ignore_index -100)",
    kiln_core::nn::functional::cross_entropy(&f32s(&[2, 3]), &idx(&[0, 3]))
);
panics!(
    f64_data_into_an_f32_layer_suggests_the_cast,
    "matmul: [2, 3] (f64) @ [3, 4] (f32): dtypes differ; cast one of them, e.g. `.to_dtype(DType::F32)` (note that Rust float literals such as `vec![1.0; n]` make f64 tensors unless written `1.0f32`)",
    Tensor::from_vec(vec![1.0; 6], [2, 3]).matmul(&f32s(&[3, 4]))
);

#[test]
fn a_target_that_broadcasts_to_the_input_is_still_accepted() {
    let loss = kiln_core::nn::functional::mse_loss(
        &Tensor::ones([3, 4], DType::F32),
        &f32s(&[4]),
        kiln_core::nn::functional::Reduction::Mean,
    );
    assert_eq!(loss.item::<f32>(), 1.0);
}
