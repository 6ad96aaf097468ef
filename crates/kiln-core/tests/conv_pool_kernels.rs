//! The direct convolution and max-pooling primitives: finite-difference gradient checks (f64)
//! of each primitive, its VJP primitives (double backward) and odd geometries, and the kernels
//! against the composite im2col paths (`conv2d_composite`, `max_pool2d_composite`) on random
//! inputs, forward and backward, in f32 and f64.

use kiln_core::autograd::gradcheck;
use kiln_core::nn::functional as F;
use kiln_core::ops::{dispatch, Conv2dParams, Op, Pool2dParams};
use kiln_core::{DType, Generator, Tensor};

const EPS: f64 = 1e-6;
const ATOL: f64 = 1e-6;
const RTOL: f64 = 1e-5;

fn randn(shape: &[usize], seed: u64, dtype: DType) -> Tensor {
    Tensor::randn_with(shape, dtype, &mut Generator::new(seed))
}

/// f64 leaf that requires grad.
fn leaf(shape: &[usize], seed: u64) -> Tensor {
    randn(shape, seed, DType::F64).requires_grad_(true)
}

#[track_caller]
fn check(name: &str, f: impl Fn(&[Tensor]) -> Tensor, inputs: &[Tensor]) {
    if let Err(e) = gradcheck(f, inputs, EPS, ATOL, RTOL) {
        panic!("{name}: {e}");
    }
}

fn conv(
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
) -> Conv2dParams {
    Conv2dParams {
        stride,
        padding,
        dilation,
        groups,
    }
}

/// Convolution geometries: (name, input shape, weight shape, params).
fn conv_cases() -> Vec<(&'static str, [usize; 4], [usize; 4], Conv2dParams)> {
    vec![
        (
            "3x3_pad1",
            [2, 3, 6, 5],
            [4, 3, 3, 3],
            conv([1, 1], [1, 1], [1, 1], 1),
        ),
        (
            "stride2_nonsquare",
            [2, 2, 7, 6],
            [3, 2, 3, 2],
            conv([2, 1], [1, 0], [1, 1], 1),
        ),
        (
            "dilated_padded",
            [1, 2, 7, 7],
            [2, 2, 2, 3],
            conv([1, 2], [2, 1], [2, 2], 1),
        ),
        (
            "groups",
            [2, 4, 5, 5],
            [6, 2, 3, 3],
            conv([1, 1], [1, 1], [1, 1], 2),
        ),
        (
            "depthwise_stride2",
            [1, 3, 6, 6],
            [3, 1, 3, 3],
            conv([2, 2], [1, 1], [1, 1], 3),
        ),
        (
            "depthwise_dilated_nonsquare",
            [2, 4, 7, 6],
            [4, 1, 3, 2],
            conv([1, 1], [2, 1], [2, 1], 4),
        ),
        (
            "depthwise_kernel_wider_than_input",
            [1, 2, 2, 3],
            [2, 1, 3, 3],
            conv([1, 2], [1, 1], [1, 1], 2),
        ),
        (
            "depthwise_taps_in_padding_only",
            [1, 2, 1, 1],
            [2, 1, 3, 3],
            conv([2, 2], [1, 1], [1, 1], 2),
        ),
        (
            "pointwise",
            [2, 4, 3, 5],
            [3, 4, 1, 1],
            conv([1, 1], [0, 0], [1, 1], 1),
        ),
        (
            "pointwise_groups",
            [2, 4, 3, 3],
            [4, 2, 1, 1],
            conv([1, 1], [0, 0], [1, 1], 2),
        ),
        (
            "1x1_stride2",
            [1, 2, 5, 5],
            [3, 2, 1, 1],
            conv([2, 2], [0, 0], [1, 1], 1),
        ),
        (
            "kernel_wider_than_input",
            [1, 1, 2, 2],
            [2, 1, 3, 3],
            conv([1, 1], [1, 1], [1, 1], 1),
        ),
    ]
}

fn spatial(s: [usize; 4]) -> [usize; 2] {
    [s[2], s[3]]
}

#[test]
fn conv2d_gradcheck_with_bias_and_permuted_input() {
    for (name, xs, ws, p) in conv_cases() {
        let bias = leaf(&[ws[0]], 3);
        // A dense input, and the same values as a permuted (non-contiguous) view.
        check(
            name,
            |t| dispatch(Op::Conv2d(p), &[&t[0], &t[1], &t[2]]),
            &[leaf(&xs, 1), leaf(&ws, 2), bias.clone()],
        );
        let permuted = [xs[0], xs[2], xs[3], xs[1]];
        check(
            &format!("{name}_permuted_input_transposed_weight"),
            |t| {
                let x = t[0].permute([0, 3, 1, 2]);
                let w = t[1].transpose(0, 1).transpose(0, 1);
                dispatch(Op::Conv2d(p), &[&x, &w])
            },
            &[leaf(&permuted, 4), leaf(&ws, 5)],
        );
    }
}

#[test]
fn conv2d_gradient_primitives_gradcheck_double_backward() {
    for (name, xs, ws, p) in conv_cases() {
        let y = no_grad_conv(&xs, &ws, p);
        let gy_shape = [y[0], y[1], y[2], y[3]];
        check(
            &format!("{name}_input_grad"),
            |t| {
                dispatch(
                    Op::Conv2dInputGrad {
                        conv: p,
                        input: spatial(xs),
                    },
                    &[&t[0], &t[1]],
                )
            },
            &[leaf(&gy_shape, 6), leaf(&ws, 7)],
        );
        check(
            &format!("{name}_weight_grad"),
            |t| {
                dispatch(
                    Op::Conv2dWeightGrad {
                        conv: p,
                        kernel: spatial(ws),
                    },
                    &[&t[0].transpose(2, 3).transpose(2, 3), &t[1]],
                )
            },
            &[leaf(&xs, 8), leaf(&gy_shape, 9)],
        );
    }
}

fn no_grad_conv(xs: &[usize; 4], ws: &[usize; 4], p: Conv2dParams) -> Vec<usize> {
    let x = randn(xs, 0, DType::F64);
    let w = randn(ws, 0, DType::F64);
    dispatch(Op::Conv2d(p), &[&x, &w]).shape().to_vec()
}

#[track_caller]
fn assert_close(what: &str, a: &Tensor, b: &Tensor, tol: f64) {
    assert_eq!(a.shape(), b.shape(), "{what}: shapes");
    let (a, b) = (a.to_vec::<f64>(), b.to_vec::<f64>());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{what}: element {i}: {x} vs {y}"
        );
    }
}

/// Runs `f` on fresh leaves of `inputs`, backpropagates a fixed random gradient and returns
/// the output and the inputs' gradients.
fn value_and_grads(f: impl Fn(&[Tensor]) -> Tensor, inputs: &[Tensor]) -> (Tensor, Vec<Tensor>) {
    let leaves: Vec<Tensor> = inputs
        .iter()
        .map(|t| t.copy().detach().requires_grad_(true))
        .collect();
    let out = f(&leaves);
    out.backward_with(&randn(out.shape(), 77, out.dtype()));
    let grads = leaves.iter().map(|t| t.grad().expect("grad")).collect();
    (out.detach(), grads)
}

#[test]
fn conv2d_kernels_match_the_composite_path() {
    for dtype in [DType::F32, DType::F64] {
        let tol = if dtype == DType::F32 { 1e-4 } else { 1e-10 };
        // The benchmark's shapes (parallel over the batch) and the small odd cases.
        let mut cases = conv_cases();
        cases.push((
            "cnn_conv2",
            [8, 32, 16, 16],
            [64, 32, 3, 3],
            conv([1, 1], [1, 1], [1, 1], 1),
        ));
        // One sample big enough that the pool splits it inside: the gemm's threads, and a
        // depthwise convolution's channels (stride 2 and padded).
        cases.push((
            "batch1_split_gemm",
            [1, 16, 32, 32],
            [32, 16, 3, 3],
            conv([1, 1], [1, 1], [1, 1], 1),
        ));
        cases.push((
            "batch1_split_depthwise",
            [1, 67, 128, 128],
            [67, 1, 3, 3],
            conv([2, 2], [1, 1], [1, 1], 67),
        ));
        // The implicit GEMM's blocking (AVX-512): depth past one 256-deep block, output
        // channels past 12-row tiles with a tail, positions past one 256-wide block; batch 1
        // split by output channels (a 7×7 grid, dot products over the depth) and by positions
        // (with groups and stride 2).
        cases.push((
            "deep_blocks_and_tails",
            [2, 40, 9, 9],
            [26, 40, 3, 3],
            conv([1, 1], [1, 1], [1, 1], 1),
        ));
        cases.push((
            "batch1_split_channels",
            [1, 300, 7, 7],
            [50, 300, 3, 3],
            conv([1, 1], [1, 1], [1, 1], 1),
        ));
        // Small grids deep enough for dot products: groups, batch 2, a 4×4 kernel, tails.
        cases.push((
            "small_grid_deep_groups",
            [2, 64, 6, 6],
            [26, 32, 4, 4],
            conv([1, 1], [1, 1], [1, 1], 2),
        ));
        cases.push((
            "batch1_split_positions_groups_stride2",
            [1, 32, 40, 40],
            [48, 16, 3, 3],
            conv([2, 2], [1, 1], [1, 1], 2),
        ));
        for (name, xs, ws, p) in cases {
            let inputs = [
                randn(&xs, 11, dtype),
                randn(&ws, 12, dtype),
                randn(&[ws[0]], 13, dtype),
            ];
            let fast = value_and_grads(
                |t| {
                    F::conv2d(
                        &t[0],
                        &t[1],
                        Some(&t[2]),
                        p.stride,
                        p.padding,
                        p.dilation,
                        p.groups,
                    )
                },
                &inputs,
            );
            let slow = value_and_grads(
                |t| {
                    F::conv2d_composite(
                        &t[0],
                        &t[1],
                        Some(&t[2]),
                        p.stride,
                        p.padding,
                        p.dilation,
                        p.groups,
                    )
                },
                &inputs,
            );
            let what = format!("{name} {dtype}");
            assert_close(&format!("{what} output"), &fast.0, &slow.0, tol);
            for (i, (a, b)) in fast.1.iter().zip(&slow.1).enumerate() {
                assert_close(&format!("{what} grad {i}"), a, b, tol);
            }
        }
    }
}

fn pool(
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    ceil_mode: bool,
) -> Pool2dParams {
    Pool2dParams {
        kernel,
        stride,
        padding,
        dilation,
        ceil_mode,
    }
}

/// Pooling geometries: (name, input shape, params).
fn pool_cases() -> Vec<(&'static str, [usize; 4], Pool2dParams)> {
    vec![
        (
            "k2",
            [2, 3, 6, 8],
            pool([2, 2], [2, 2], [0, 0], [1, 1], false),
        ),
        (
            "k2_odd_sizes",
            [1, 2, 7, 5],
            pool([2, 2], [2, 2], [0, 0], [1, 1], false),
        ),
        (
            "k2_odd_ceil",
            [1, 2, 7, 5],
            pool([2, 2], [2, 2], [0, 0], [1, 1], true),
        ),
        (
            "k3_s2_p1_ceil",
            [2, 2, 7, 6],
            pool([3, 3], [2, 2], [1, 1], [1, 1], true),
        ),
        (
            "nonsquare_overlapping",
            [1, 3, 6, 7],
            pool([2, 3], [1, 2], [1, 0], [1, 1], false),
        ),
        (
            "dilated_padded",
            [1, 2, 8, 7],
            pool([3, 2], [2, 1], [2, 1], [2, 3], false),
        ),
        (
            "k1",
            [1, 2, 3, 3],
            pool([1, 1], [1, 1], [0, 0], [1, 1], false),
        ),
        // A row stride past 2 goes window by window (the separable pass takes 1 and 2).
        (
            "row_stride3_padded",
            [1, 2, 8, 10],
            pool([3, 4], [2, 3], [1, 2], [1, 1], false),
        ),
    ]
}

#[test]
fn max_pool2d_gradcheck_including_transposed_input_and_its_backward() {
    for (name, xs, p) in pool_cases() {
        check(
            name,
            |t| dispatch(Op::MaxPool2d(p), &[&t[0]]),
            &[leaf(&xs, 21)],
        );
        let swapped = [xs[0], xs[1], xs[3], xs[2]];
        check(
            &format!("{name}_transposed_input"),
            |t| dispatch(Op::MaxPool2d(p), &[&t[0].transpose(2, 3)]),
            &[leaf(&swapped, 22)],
        );
        // The backward primitive: linear in the gradient (its own VJP), constant in x.
        let x = randn(&xs, 23, DType::F64);
        let y = dispatch(Op::MaxPool2d(p), &[&x]);
        check(
            &format!("{name}_backward"),
            |t| dispatch(Op::MaxPool2dBackward(p), &[&t[0], &t[1]]),
            &[x.requires_grad_(true), leaf(y.shape(), 24)],
        );
    }
}

#[test]
fn max_pool2d_kernels_match_the_composite_path() {
    for dtype in [DType::F32, DType::F64] {
        let mut cases = pool_cases();
        cases.push((
            "cnn_pool1",
            [8, 32, 32, 32],
            pool([2, 2], [2, 2], [0, 0], [1, 1], false),
        ));
        for (name, xs, p) in cases {
            // Random normal values: no ties, so the composite's even split of tied gradients
            // does not differ from the first-maximum rule.
            let inputs = [randn(&xs, 31, dtype)];
            let fast = value_and_grads(
                |t| {
                    F::max_pool2d(
                        &t[0],
                        p.kernel,
                        p.stride,
                        p.padding,
                        p.dilation,
                        p.ceil_mode,
                    )
                },
                &inputs,
            );
            let slow = value_and_grads(
                |t| {
                    F::max_pool2d_composite(
                        &t[0],
                        p.kernel,
                        p.stride,
                        p.padding,
                        p.dilation,
                        p.ceil_mode,
                    )
                },
                &inputs,
            );
            let what = format!("{name} {dtype}");
            // Outputs are exact; overlapping windows sum gradients in another order.
            let tol = if dtype == DType::F32 { 1e-6 } else { 1e-14 };
            assert_close(&format!("{what} output"), &fast.0, &slow.0, 0.0);
            assert_close(&format!("{what} grad"), &fast.1[0], &slow.1[0], tol);
        }
    }
}

#[test]
fn max_pool2d_ties_go_to_the_first_maximum_and_nan_wins() {
    // Like PyTorch: ties send the gradient to the first maximum in window order; a NaN is
    // the maximum (the last NaN of a window takes the gradient).
    for (k, s) in [(2, 2), (3, 1)] {
        let p = pool([k, k], [s, s], [0, 0], [1, 1], false);
        let x = Tensor::from_vec(vec![1.0f64; 9], [1, 1, 3, 3]).requires_grad_(true);
        let y = dispatch(Op::MaxPool2d(p), &[&x]);
        y.sum_all().backward();
        let mut want = vec![0.0; 9];
        want[0] = 1.0;
        assert_eq!(x.grad().unwrap().to_vec::<f64>(), want, "kernel {k}");
    }
    let nan = f64::NAN;
    let p = pool([2, 2], [2, 2], [0, 0], [1, 1], false);
    let x = Tensor::from_vec(vec![5.0f64, nan, nan, 1.0], [1, 1, 2, 2]).requires_grad_(true);
    let y = dispatch(Op::MaxPool2d(p), &[&x]);
    assert!(y.to_vec::<f64>()[0].is_nan());
    y.backward_with(&Tensor::from_vec(vec![2.0f64], [1, 1, 1, 1]));
    assert_eq!(x.grad().unwrap().to_vec::<f64>(), vec![0.0, 0.0, 2.0, 0.0]);
    // The generic (overlapping-window) path follows the same rule.
    let p = pool([2, 2], [1, 1], [0, 0], [1, 1], false);
    let x = Tensor::from_vec(vec![5.0f64, nan, nan, 1.0], [1, 1, 2, 2]).requires_grad_(true);
    dispatch(Op::MaxPool2d(p), &[&x]).sum_all().backward();
    assert_eq!(x.grad().unwrap().to_vec::<f64>(), vec![0.0, 0.0, 1.0, 0.0]);
}

#[test]
#[should_panic(
    expected = "conv2d: input, weight and bias [1, 3, 5, 5] f32, [4, 2, 3, 3] f32 do not match"
)]
fn conv2d_misuse_names_the_op_and_shapes() {
    let x = randn(&[1, 3, 5, 5], 1, DType::F32);
    let w = randn(&[4, 2, 3, 3], 2, DType::F32);
    dispatch(Op::Conv2d(conv([1, 1], [0, 0], [1, 1], 1)), &[&x, &w]);
}

#[test]
#[should_panic(
    expected = "max_pool2d: expected one input [N, C, H, W] of one dtype, f32 or f64; got [1, 3, 5, 5] i64"
)]
fn max_pool2d_primitive_rejects_integers() {
    let x = Tensor::zeros([1, 3, 5, 5], DType::I64);
    dispatch(
        Op::MaxPool2d(pool([2, 2], [2, 2], [0, 0], [1, 1], false)),
        &[&x],
    );
}
