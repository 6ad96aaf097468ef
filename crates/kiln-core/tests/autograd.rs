//! Autograd engine semantics: accumulation, no_grad, detach, retain_graph, the version counter,
//! diamonds, non-differentiable paths and double backward. Expected values are by hand.

use kiln_core::autograd::{is_grad_enabled, BackwardOptions};
use kiln_core::{f16, no_grad, DType, NoGradGuard, Tensor};

fn leaf(v: &[f64]) -> Tensor {
    Tensor::from_vec(v.to_vec(), [v.len()]).requires_grad_(true)
}

fn grad(t: &Tensor) -> Vec<f64> {
    t.grad().expect("leaf has no grad").to_vec::<f64>()
}

#[track_caller]
fn assert_close(got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= 1e-12 + 1e-10 * w.abs(),
            "{got:?} vs {want:?}"
        );
    }
}

const RETAIN: BackwardOptions = BackwardOptions {
    retain_graph: true,
    create_graph: false,
};
const CREATE: BackwardOptions = BackwardOptions {
    retain_graph: false,
    create_graph: true,
};

#[test]
fn gradients_accumulate_across_backward_calls() {
    let x = leaf(&[1.0, -2.0, 3.0]);
    (&x * &x).sum_all().backward();
    assert_eq!(grad(&x), vec![2.0, -4.0, 6.0]);
    (&x * &x).sum_all().backward();
    assert_eq!(grad(&x), vec![4.0, -8.0, 12.0]);
    x.mul_scalar(10.0).sum_all().backward();
    assert_eq!(grad(&x), vec![14.0, 2.0, 22.0]);
}

#[test]
fn zero_grad_clears() {
    let x = leaf(&[1.0, 2.0]);
    x.square().sum_all().backward();
    x.zero_grad();
    assert!(x.grad().is_none());
    x.mul_scalar(3.0).sum_all().backward();
    assert_eq!(grad(&x), vec![3.0, 3.0]);
}

#[test]
fn only_leaves_store_grad_and_grad_has_leaf_dtype() {
    let x = Tensor::from_vec(vec![1.0f32, 2.0], [2]).requires_grad_(true);
    let y = x.mul_scalar(2.0);
    assert!(y.requires_grad());
    assert!(!y.is_leaf());
    assert!(x.is_leaf());
    y.to_dtype(DType::F64).square().sum_all().backward();
    assert!(y.grad().is_none());
    let g = x.grad().unwrap();
    assert_eq!(g.dtype(), DType::F32);
    assert_eq!(g.to_vec::<f32>(), vec![8.0, 16.0]); // d/dx (2x)^2 = 8x
    assert!(!g.requires_grad());
}

#[test]
#[should_panic(expected = "grad can be implicitly created only for one-element outputs")]
fn backward_on_non_scalar_panics() {
    leaf(&[1.0, 2.0]).mul_scalar(2.0).backward();
}

#[test]
fn backward_with_explicit_gradient() {
    let x = leaf(&[1.0, 2.0, 3.0]);
    let y = &x * &x;
    y.backward_with(&Tensor::from_vec(vec![1.0, 0.5, -1.0], [3]));
    assert_eq!(grad(&x), vec![2.0, 2.0, -6.0]);
}

#[test]
#[should_panic(expected = "gradient shape [2] does not match output shape [3]")]
fn backward_with_wrong_shape_panics() {
    leaf(&[1.0, 2.0, 3.0])
        .exp()
        .backward_with(&Tensor::ones([2], DType::F64));
}

#[test]
#[should_panic(expected = "does not require grad and has no grad_fn")]
fn backward_without_grad_panics() {
    Tensor::ones([1], DType::F64).exp().backward();
}

#[test]
fn backward_on_a_leaf_itself() {
    let x = leaf(&[5.0]);
    x.backward();
    assert_eq!(grad(&x), vec![1.0]);
}

#[test]
fn detach_stops_gradients_and_shares_storage() {
    let x = leaf(&[2.0, 3.0]);
    let d = x.detach();
    assert!(!d.requires_grad());
    assert!(d.grad_fn().is_none());
    assert!(d.shares_storage(&x));
    // d/dx (stop(x) · x) = x, not 2x
    (&d * &x).sum_all().backward();
    assert_eq!(grad(&x), vec![2.0, 3.0]);
    // detach of a non-leaf cuts the graph there
    let y = x.exp();
    assert!(!y.detach().requires_grad());
}

#[test]
fn no_grad_guard_and_closure() {
    let x = leaf(&[1.0, 2.0]);
    assert!(is_grad_enabled());
    {
        let _g = NoGradGuard::new();
        assert!(!is_grad_enabled());
        let y = &x * &x;
        assert!(!y.requires_grad());
        assert!(y.grad_fn().is_none());
        {
            let _inner = NoGradGuard::new();
        }
        assert!(
            !is_grad_enabled(),
            "inner guard must restore no-grad, not grad"
        );
    }
    assert!(is_grad_enabled());
    let y = no_grad(|| x.exp().sum_all());
    assert!(!y.requires_grad());
    assert!(y.grad_fn().is_none());
    let z = x.exp().sum_all();
    assert!(z.requires_grad());
    assert!(z.grad_fn().is_some());
    // Grad mode is per thread.
    no_grad(|| {
        let other = std::thread::spawn(is_grad_enabled).join().unwrap();
        assert!(other);
    });
}

#[test]
fn backward_inside_no_grad_still_works() {
    let x = leaf(&[1.0, 2.0]);
    let y = x.square().sum_all();
    no_grad(|| y.backward());
    assert_eq!(grad(&x), vec![2.0, 4.0]);
    assert!(is_grad_enabled());
}

#[test]
fn retain_graph_allows_a_second_backward() {
    let x = leaf(&[0.0, 1.0]);
    let y = x.exp().sum_all();
    let one = Tensor::ones([0usize; 0], DType::F64);
    y.backward_opts(&one, RETAIN);
    y.backward_opts(&one, RETAIN);
    let e = std::f64::consts::E;
    assert_close(&grad(&x), &[2.0, 2.0 * e]);
    y.backward();
    assert_close(&grad(&x), &[3.0, 3.0 * e]);
}

#[test]
#[should_panic(expected = "backward through the graph a second time")]
fn second_backward_without_retain_graph_panics() {
    let x = leaf(&[0.0, 1.0]);
    let y = x.exp().sum_all();
    y.backward();
    y.backward();
}

#[test]
#[should_panic(expected = "modified by an in-place operation")]
fn modifying_a_saved_output_in_place_panics() {
    let x = leaf(&[0.5, 1.0]);
    let y = x.exp(); // exp saves its output for backward
    no_grad(|| {
        y.add_scalar_(1.0);
    });
    y.sum_all().backward();
}

#[test]
#[should_panic(expected = "in-place")]
fn modifying_a_saved_input_in_place_panics() {
    let x = leaf(&[0.5, 1.0]);
    let h = x.mul_scalar(2.0);
    let y = h.sin(); // sin saves its input
    no_grad(|| {
        h.mul_scalar_(3.0);
    });
    y.sum_all().backward();
}

#[test]
#[should_panic(expected = "in-place")]
fn modifying_a_saved_leaf_through_a_view_panics() {
    let x = leaf(&[0.5, 1.0, 2.0]);
    let y = (&x * &x).sum_all();
    // An optimizer-style update of x under no_grad before backward.
    no_grad(|| {
        x.narrow(0, 1, 1).fill_(0.0);
    });
    y.backward();
}

#[test]
fn in_place_on_unsaved_tensor_is_fine() {
    // add does not save values needed for its gradient beyond the inputs; modifying an
    // unrelated copy is fine and so is modifying under no_grad after backward.
    let x = leaf(&[1.0, 2.0]);
    let y = x.add_scalar(1.0).sum_all();
    y.backward();
    no_grad(|| {
        x.add_scalar_(1.0);
    });
    assert_eq!(x.to_vec::<f64>(), vec![2.0, 3.0]);
    assert_eq!(grad(&x), vec![1.0, 1.0]);
}

#[test]
#[should_panic(expected = "in-place update of a tensor that requires grad")]
fn in_place_on_leaf_requiring_grad_panics() {
    let x = leaf(&[1.0, 2.0]);
    x.add_scalar_(1.0);
}

#[test]
#[should_panic(expected = "in-place update of a tensor that requires grad")]
fn copy_into_leaf_requiring_grad_panics() {
    let x = leaf(&[1.0, 2.0]);
    x.copy_(&Tensor::zeros([2], DType::F64));
}

#[test]
#[should_panic(expected = "only float tensors can require gradients, got i64")]
fn requires_grad_on_int_panics() {
    Tensor::from_vec(vec![1i64, 2], [2]).requires_grad_(true);
}

#[test]
#[should_panic(expected = "cannot turn off gradients of a non-leaf tensor")]
fn requires_grad_off_on_non_leaf_panics() {
    leaf(&[1.0]).exp().requires_grad_(false);
}

#[test]
fn diamond_graphs_sum_gradients() {
    // z = (2x)(3x) = 6x², dz/dx = 12x
    let x = leaf(&[1.0, -0.5]);
    let z = &x.mul_scalar(2.0) * &x.mul_scalar(3.0);
    z.sum_all().backward();
    assert_eq!(grad(&x), vec![12.0, -6.0]);

    // y = e^x used twice: d/dx (y + y·y) = e^x + 2e^{2x}
    let x = leaf(&[0.0, 1.0]);
    let y = x.exp();
    (&y + &(&y * &y)).sum_all().backward();
    let e = std::f64::consts::E;
    assert_close(&grad(&x), &[3.0, e + 2.0 * e * e]);

    // x + x + x through add with itself
    let x = leaf(&[4.0]);
    (&(&x + &x) + &x).sum_all().backward();
    assert_eq!(grad(&x), vec![3.0]);

    // A deeper diamond: a = x², b = a·x, c = a + b → dc/dx = 2x + 3x²
    let x = leaf(&[2.0]);
    let a = x.square();
    let b = &a * &x;
    (&a + &b).backward();
    assert_eq!(grad(&x), vec![16.0]);
}

#[test]
fn only_inputs_that_require_grad_get_one() {
    let x = leaf(&[1.0, 2.0]);
    let c = Tensor::from_vec(vec![3.0, 4.0], [2]);
    (&x * &c).sum_all().backward();
    assert_eq!(grad(&x), vec![3.0, 4.0]);
    assert!(c.grad().is_none());
}

#[test]
#[should_panic(expected = "does not require grad")]
fn gradient_through_argmax_panics() {
    let x = leaf(&[1.0, 3.0, 2.0]);
    // argmax gives integer indices: no gradient can flow, so backward must refuse loudly
    // instead of silently producing zeros.
    let i = x.argmax(0, false);
    assert!(!i.requires_grad());
    i.to_dtype(DType::F64).backward();
}

#[test]
fn comparisons_and_int_results_are_not_tracked() {
    let x = leaf(&[1.0, 3.0]);
    assert!(!x.gt_scalar(2.0).requires_grad());
    assert!(!x.to_dtype(DType::I64).requires_grad());
    assert!(!x.argmin(0, false).requires_grad());
    // A float path mixed with a non-differentiable one still differentiates the float part.
    let loss = &x.sum_all() + &x.argmax(0, false).to_dtype(DType::F64);
    loss.backward();
    assert_eq!(grad(&x), vec![1.0, 1.0]);
}

#[test]
fn double_backward_of_cube() {
    // d/dx x³ = 3x², d²/dx² = 6x
    let x = leaf(&[1.0, -2.0, 0.5]);
    let y = x.pow_scalar(3.0).sum_all();
    y.backward_opts(&Tensor::ones([0usize; 0], DType::F64), CREATE);
    let g = x.grad().unwrap();
    assert!(
        g.requires_grad(),
        "create_graph must record the backward pass"
    );
    assert_close(&g.to_vec::<f64>(), &[3.0, 12.0, 0.75]);
    x.zero_grad();
    g.sum_all().backward();
    assert_close(&grad(&x), &[6.0, -12.0, 3.0]);
}

#[test]
fn double_backward_of_product_chain() {
    // x·x·x through mul: the leaf receives three gradient contributions that must be summed
    // differentiably.
    let x = leaf(&[1.0, -2.0, 0.5]);
    let y = (&(&x * &x) * &x).sum_all();
    y.backward_opts(&Tensor::ones([0usize; 0], DType::F64), CREATE);
    let g = x.grad().unwrap();
    assert_close(&g.to_vec::<f64>(), &[3.0, 12.0, 0.75]);
    assert!(g.requires_grad());
    x.zero_grad();
    g.sum_all().backward();
    assert_close(&grad(&x), &[6.0, -12.0, 3.0]);
}

#[test]
fn double_backward_of_transcendentals() {
    let v = [0.3, -1.2];
    // sin'' = −sin
    let x = leaf(&v);
    x.sin()
        .sum_all()
        .backward_opts(&Tensor::ones([0usize; 0], DType::F64), CREATE);
    let g = x.grad().unwrap();
    x.zero_grad();
    g.sum_all().backward();
    assert_close(&grad(&x), &v.map(|a: f64| -a.sin()));
    // tanh'' = −2 tanh (1 − tanh²)
    let x = leaf(&v);
    x.tanh()
        .sum_all()
        .backward_opts(&Tensor::ones([0usize; 0], DType::F64), CREATE);
    let g = x.grad().unwrap();
    x.zero_grad();
    g.sum_all().backward();
    assert_close(
        &grad(&x),
        &v.map(|a: f64| -2.0 * a.tanh() * (1.0 - a.tanh() * a.tanh())),
    );
    // (x·e^x)'' = (x + 2)e^x
    let x = leaf(&v);
    (&x * &x.exp())
        .sum_all()
        .backward_opts(&Tensor::ones([0usize; 0], DType::F64), CREATE);
    let g = x.grad().unwrap();
    x.zero_grad();
    g.sum_all().backward();
    assert_close(&grad(&x), &v.map(|a: f64| (a + 2.0) * a.exp()));
}

/// Second derivative (summed over elements) of `f` at `v`, through create_graph.
fn second_derivative(v: &[f64], f: impl Fn(&Tensor) -> Tensor) -> Vec<f64> {
    weighted_second_derivative(v, &vec![1.0; v.len()], f)
}

/// `∂/∂x Σⱼ uⱼ·(∂f/∂xⱼ)` at `v`, through create_graph (sums of softmax gradients are 0, so the
/// first gradient is weighted).
fn weighted_second_derivative(v: &[f64], u: &[f64], f: impl Fn(&Tensor) -> Tensor) -> Vec<f64> {
    let x = leaf(v);
    f(&x)
        .sum_all()
        .backward_opts(&Tensor::ones([0usize; 0], DType::F64), CREATE);
    let g = x.grad().unwrap();
    x.zero_grad();
    (&g * &Tensor::from_vec(u.to_vec(), [u.len()]))
        .sum_all()
        .backward();
    grad(&x)
}

#[test]
fn double_backward_of_softmax_and_log_softmax() {
    use kiln_core::nn::functional as F;
    let (v, w, u) = ([0.7, -1.3, 2.0], [0.5, -2.0, 1.5], [1.0, 3.0, -0.5]);
    let softmax = |x: &[f64]| {
        let e: Vec<f64> = x.iter().map(|a| a.exp()).collect();
        let s: f64 = e.iter().sum();
        e.iter().map(|a| a / s).collect::<Vec<_>>()
    };
    // Closed-form first gradients of Σ wᵢ·softmax(x)ᵢ and Σ wᵢ·log_softmax(x)ᵢ, weighted by u;
    // their derivatives by central differences.
    let h_soft = |x: &[f64]| {
        let s = softmax(x);
        let ws: f64 = w.iter().zip(&s).map(|(a, b)| a * b).sum();
        (0..3).map(|j| u[j] * s[j] * (w[j] - ws)).sum::<f64>()
    };
    let h_log = |x: &[f64]| {
        let s = softmax(x);
        let sw: f64 = w.iter().sum();
        (0..3).map(|j| u[j] * (w[j] - s[j] * sw)).sum::<f64>()
    };
    let numeric = |h: &dyn Fn(&[f64]) -> f64| {
        (0..3)
            .map(|k| {
                let (mut a, mut b) = (v, v);
                a[k] += 1e-5;
                b[k] -= 1e-5;
                (h(&a) - h(&b)) / 2e-5
            })
            .collect::<Vec<f64>>()
    };
    let wt = Tensor::from_vec(w.to_vec(), [3]);
    let close = |got: Vec<f64>, want: Vec<f64>| {
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-8, "{got:?} vs {want:?}");
        }
    };
    close(
        weighted_second_derivative(&v, &u, |x| &F::softmax(x, 0) * &wt),
        numeric(&h_soft),
    );
    close(
        weighted_second_derivative(&v, &u, |x| &F::log_softmax(x, 0) * &wt),
        numeric(&h_log),
    );
}

#[test]
fn double_backward_through_ops_that_save_their_output() {
    let v = [0.7, -1.3, 2.0];
    // (2/x)'' = 4/x³ (div saves its output)
    let two = Tensor::scalar(2.0, DType::F64);
    assert_close(
        &second_derivative(&v, |x| &two / x),
        &v.map(|a: f64| 4.0 / a.powi(3)),
    );
    // σ'' = σ(1−σ)(1−2σ)
    let sig = |a: f64| 1.0 / (1.0 + (-a).exp());
    assert_close(
        &second_derivative(&v, |x| x.sigmoid()),
        &v.map(|a| sig(a) * (1.0 - sig(a)) * (1.0 - 2.0 * sig(a))),
    );
    // (x^3)'' with a tensor exponent = 6x
    let three = Tensor::scalar(3.0, DType::F64);
    assert_close(
        &second_derivative(&v, |x| x.pow(&three)),
        &v.map(|a| 6.0 * a),
    );
    // gelu'' = φ(x)·(2 − x²) (through the gelu_backward primitive)
    let phi = |a: f64| (-0.5 * a * a).exp() / (2.0 * std::f64::consts::PI).sqrt();
    assert_close(
        &second_derivative(&v, |x| x.gelu()),
        &v.map(|a| phi(a) * (2.0 - a * a)),
    );
    // (e^{2x})'' = 4e^{2x}
    assert_close(
        &second_derivative(&v, |x| x.mul_scalar(2.0).exp()),
        &v.map(|a: f64| 4.0 * (2.0 * a).exp()),
    );
    // prod(a, b, c): Σ ∂/∂xᵢ = bc + ac + ab, whose gradient is (b + c, a + c, a + b)
    let (a, b, c) = (v[0], v[1], v[2]);
    assert_close(
        &second_derivative(&v, |x| x.prod([0], false)),
        &[b + c, a + c, a + b],
    );
}

#[test]
fn without_create_graph_grad_is_detached() {
    let x = leaf(&[1.0]);
    x.pow_scalar(3.0).backward();
    assert!(!x.grad().unwrap().requires_grad());
}

#[test]
fn long_chains_backward_and_drop() {
    // The engine must not recurse per node (neither in backward nor when the graph is freed).
    let x = leaf(&[1.0]);
    let mut y = x.clone();
    for _ in 0..20_000 {
        y = y.add_scalar(1e-3);
    }
    y.backward();
    assert_eq!(grad(&x), vec![1.0]);
    let mut z = x.clone();
    for _ in 0..20_000 {
        z = z.mul_scalar(1.0);
    }
    drop(z); // never backpropagated: the whole graph with saved tensors is dropped here
}

#[test]
fn tensors_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Tensor>();
    let x = leaf(&[1.0, 2.0]);
    let y = std::thread::spawn({
        let x = x.clone();
        move || x.square().sum_all()
    })
    .join()
    .unwrap();
    y.backward();
    assert_eq!(grad(&x), vec![2.0, 4.0]);
}

#[test]
fn gradients_keep_each_input_dtype_under_promotion() {
    // f32 leaf times an f64 constant: the product is f64, the leaf's gradient must be f32.
    let x = Tensor::from_vec(vec![1.0f32, 2.0], [2]).requires_grad_(true);
    let c = Tensor::from_vec(vec![3.0f64, 4.0], [2]);
    let y = &x * &c;
    assert_eq!(y.dtype(), DType::F64);
    y.sum_all().backward();
    let g = x.grad().unwrap();
    assert_eq!(g.dtype(), DType::F32);
    assert_eq!(g.to_vec::<f32>(), vec![3.0, 4.0]);
    // through an intermediate node: exp(x) (f32) · c (f64)
    let x = Tensor::from_vec(vec![0.0f32], [1]).requires_grad_(true);
    (&x.exp() * &Tensor::from_vec(vec![2.0f64], [1]))
        .sum_all()
        .backward();
    assert_eq!(x.grad().unwrap().dtype(), DType::F32);
    assert_eq!(x.grad().unwrap().to_vec::<f32>(), vec![2.0]);
    // half + f32, and where with branches of different dtypes
    let h = Tensor::from_vec(vec![f16::ONE, f16::ONE], [2]).requires_grad_(true);
    let w = Tensor::from_vec(vec![1.0f64, 1.0], [2]).requires_grad_(true);
    let cond = Tensor::from_vec(vec![true, false], [2]);
    (&Tensor::where_(&cond, &h, &w) + &Tensor::ones([2], DType::F32))
        .sum_all()
        .backward();
    assert_eq!(h.grad().unwrap().dtype(), DType::F16);
    assert_eq!(h.grad().unwrap().to_vec::<f64>(), vec![1.0, 0.0]);
    assert_eq!(w.grad().unwrap().dtype(), DType::F64);
    assert_eq!(w.grad().unwrap().to_vec::<f64>(), vec![0.0, 1.0]);
}

#[test]
#[should_panic(expected = "backward: gradient dtype f64 does not match output dtype f32")]
fn backward_with_wrong_dtype_panics() {
    Tensor::from_vec(vec![1.0f32], [1])
        .requires_grad_(true)
        .exp()
        .backward_with(&Tensor::ones([1], DType::F64));
}

#[test]
#[should_panic(
    expected = "copy_: in-place ops are not differentiable, but the operand (shape [2]) requires grad"
)]
fn in_place_with_an_operand_requiring_grad_panics() {
    // Copying a tracked tensor into a buffer would silently drop its gradient.
    let x = leaf(&[1.0, 2.0]);
    let buf = Tensor::zeros([2], DType::F64);
    buf.copy_(&x.exp());
}

#[test]
#[should_panic(expected = "add_: in-place ops are not differentiable")]
fn in_place_add_of_tracked_operand_panics() {
    let x = leaf(&[1.0, 2.0]);
    Tensor::zeros([2], DType::F64).add_(&x);
}

#[test]
fn in_place_with_tracked_operand_is_fine_under_no_grad_or_detached() {
    let x = leaf(&[1.0, 2.0]);
    let buf = Tensor::zeros([2], DType::F64);
    no_grad(|| {
        buf.add_(&x);
    });
    buf.add_scaled_(&x.detach(), 2.0);
    assert_eq!(buf.to_vec::<f64>(), vec![3.0, 6.0]);
}

#[test]
fn leaf_gradients_never_share_a_buffer() {
    // `a + b` hands the same upstream gradient to both leaves; scaling one `.grad` in place
    // (as gradient clipping does) must not change the other.
    let a = Tensor::ones([3], DType::F32).requires_grad_(true);
    let b = Tensor::ones([3], DType::F32).requires_grad_(true);
    (&a + &b).sum_all().backward();
    let (ga, gb) = (a.grad().unwrap(), b.grad().unwrap());
    assert!(!ga.shares_storage(&gb));
    ga.mul_scalar_(0.5);
    assert_eq!(gb.to_vec::<f32>(), vec![1.0, 1.0, 1.0]);
    // An expanded (stride-0) gradient is materialized densely.
    let c = Tensor::ones([1], DType::F32).requires_grad_(true);
    c.expand([4]).sum_all().backward();
    assert!(c.grad().unwrap().is_contiguous());
}

/// Several slices of one intermediate (a q/k/v split, overlapping too): the second and later
/// slice gradients are added into the accumulated buffer in place; values by hand.
#[test]
fn slice_gradients_accumulate_into_one_buffer() {
    let x = leaf(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let y = &x * &Tensor::from_vec(vec![2.0f64; 6], [6]);
    let w = |v: f64, n: usize| Tensor::from_vec(vec![v; n], [n]);
    // dL/dy = [1, 1, 10+1, 10+100, 100, 100] from the three (overlapping) slices.
    let loss = (&y.narrow(0, 0, 3) * &w(1.0, 3)).sum_all()
        + (&y.narrow(0, 2, 2) * &w(10.0, 2)).sum_all()
        + (&y.narrow(0, 3, 3) * &w(100.0, 3)).sum_all();
    loss.backward();
    assert_close(&grad(&x), &[2.0, 2.0, 22.0, 220.0, 200.0, 200.0]);

    // The same with a strided slice, and with the accumulated gradient also flowing to a
    // direct use of y (so the buffer is shared and the in-place path must not be taken).
    let x = leaf(&[1.0, 2.0, 3.0, 4.0]);
    let y = &x * &Tensor::from_vec(vec![3.0f64; 4], [4]);
    let loss = y.sum_all()
        + (&y.slice_step(0, 0, 2, 2) * &w(5.0, 2)).sum_all()
        + (&y.narrow(0, 1, 2) * &w(7.0, 2)).sum_all();
    loss.backward();
    assert_close(&grad(&x), &[18.0, 24.0, 39.0, 3.0]);
}
