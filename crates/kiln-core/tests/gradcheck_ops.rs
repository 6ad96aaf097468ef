//! Finite-difference gradient checks (f64) of every differentiable primitive op and Tensor
//! method, including broadcast operands, 0-d scalars and non-contiguous views as inputs.

use kiln_core::autograd::gradcheck;
use kiln_core::{DType, Generator, Tensor};

const EPS: f64 = 1e-6;
const ATOL: f64 = 1e-6;
const RTOL: f64 = 1e-5;

/// Standard normal f64 leaf that requires grad.
fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn_with(shape, DType::F64, &mut Generator::new(seed)).requires_grad_(true)
}

/// Values in [lo, hi) that require grad.
fn uniform(shape: &[usize], seed: u64, lo: f64, hi: f64) -> Tensor {
    let v: Vec<f64> = Tensor::rand_with(shape, DType::F64, &mut Generator::new(seed))
        .to_vec::<f64>()
        .into_iter()
        .map(|u| lo + (hi - lo) * u)
        .collect();
    Tensor::from_vec(v, shape).requires_grad_(true)
}

/// Normal values pushed at least 0.2 away from zero (no kinks for abs/relu/sign).
fn away_from_zero(shape: &[usize], seed: u64) -> Tensor {
    let v: Vec<f64> = Tensor::randn_with(shape, DType::F64, &mut Generator::new(seed))
        .to_vec::<f64>()
        .into_iter()
        .map(|x| if x >= 0.0 { x + 0.2 } else { x - 0.2 })
        .collect();
    Tensor::from_vec(v, shape).requires_grad_(true)
}

/// Values with magnitude in [0.5, 1.5) and random signs (for prod: no zeros).
fn nonzero(shape: &[usize], seed: u64) -> Tensor {
    let mut g = Generator::new(seed);
    let m = Tensor::rand_with(shape, DType::F64, &mut g).to_vec::<f64>();
    let s = Tensor::rand_with(shape, DType::F64, &mut g).to_vec::<f64>();
    let v: Vec<f64> = m
        .iter()
        .zip(&s)
        .map(|(m, s)| (0.5 + m) * if *s < 0.5 { -1.0 } else { 1.0 })
        .collect();
    Tensor::from_vec(v, shape).requires_grad_(true)
}

fn idx(v: &[i64]) -> Tensor {
    Tensor::from_vec(v.to_vec(), [v.len()])
}

#[track_caller]
fn check(name: &str, f: impl Fn(&[Tensor]) -> Tensor, inputs: &[Tensor]) {
    if let Err(e) = gradcheck(f, inputs, EPS, ATOL, RTOL) {
        panic!("{name}: {e}");
    }
}

#[track_caller]
fn check1(name: &str, x: &Tensor, f: impl Fn(&Tensor) -> Tensor) {
    check(name, |xs| f(&xs[0]), std::slice::from_ref(x));
}

#[test]
fn unary_transcendental() {
    let x = randn(&[3, 4], 1);
    check1("exp", &x, |x| x.exp());
    check1("sin", &x, |x| x.sin());
    check1("cos", &x, |x| x.cos());
    check1("tanh", &x, |x| x.tanh());
    check1("sigmoid", &x, |x| x.sigmoid());
    check1("erf", &x, |x| x.erf());
    check1("gelu", &x, |x| x.gelu());
    check1("gelu_tanh", &x, |x| x.gelu_tanh());
    check1("silu", &x, |x| x.silu());
    let p = uniform(&[3, 4], 2, 0.2, 3.0);
    check1("log", &p, |x| x.log());
}

#[test]
fn unary_with_kinks_away_from_zero() {
    let x = away_from_zero(&[4, 5], 3);
    check1("relu", &x, |x| x.relu());
    check1("abs", &x, |x| x.abs());
    check1("softplus", &x, |x| x.softplus());
    check1("sign", &x, |x| x.sign());
    // sign has a zero gradient everywhere away from 0 (checked against the finite differences
    // above); also make sure backward gives an explicit zero, not no gradient.
    let x2 = x.detach().requires_grad_(true);
    (x2.sign() * 3.0).sum_all().backward();
    assert!(x2.grad().unwrap().to_vec::<f64>().iter().all(|&g| g == 0.0));
}

#[test]
fn affine_and_scalar_ops() {
    let x = randn(&[3, 4], 4);
    check1("affine", &x, |x| x.affine(2.5, -1.0));
    check1("add_scalar", &x, |x| x.add_scalar(0.7));
    check1("sub_scalar", &x, |x| x.sub_scalar(0.7));
    check1("mul_scalar", &x, |x| x.mul_scalar(-1.3));
    check1("div_scalar", &x, |x| x.div_scalar(4.0));
    check1("neg", &x, |x| x.neg());
    check1("x * 2.0", &x, |x| x * 2.0);
    check1("x + 2.0", &x, |x| x + 2.0);
    check1("x - 2.0", &x, |x| x - 2.0);
    check1("x / 2.0", &x, |x| x / 2.0);
    check1("2.0 - x", &x, |x| 2.0 - x);
    check1("-x", &x, |x| -x);
    let p = uniform(&[3, 4], 5, 0.5, 2.0);
    check1("2.0 / x", &p, |x| 2.0 / x);
}

#[test]
fn pow_scalar_family() {
    let x = randn(&[3, 4], 6);
    check1("square", &x, |x| x.square());
    check1("pow_scalar(3)", &x, |x| x.pow_scalar(3.0));
    check1("pow_scalar(1)", &x, |x| x.pow_scalar(1.0));
    let p = uniform(&[3, 4], 7, 0.3, 2.5);
    check1("sqrt", &p, |x| x.sqrt());
    check1("rsqrt", &p, |x| x.rsqrt());
    check1("recip", &p, |x| x.recip());
    check1("pow_scalar(-1.7)", &p, |x| x.pow_scalar(-1.7));
    check1("pow_scalar(2.3)", &p, |x| x.pow_scalar(2.3));
}

#[test]
fn clamp_family() {
    // Values on a grid that avoids the clamp bounds ±0.5 by at least 0.05.
    let v: Vec<f64> = (0..20).map(|i| -1.425 + 0.15 * i as f64).collect();
    let x = Tensor::from_vec(v, [4, 5]).requires_grad_(true);
    check1("clamp", &x, |x| x.clamp(-0.5, 0.5));
    check1("clamp_min", &x, |x| x.clamp_min(-0.5));
    check1("clamp_max", &x, |x| x.clamp_max(0.5));
    // Gradient is 1 inside and 0 outside, by hand.
    let y = x.detach().requires_grad_(true);
    y.clamp(-0.5, 0.5).sum_all().backward();
    let want: Vec<f64> = y
        .to_vec::<f64>()
        .iter()
        .map(|&v| if (-0.5..=0.5).contains(&v) { 1.0 } else { 0.0 })
        .collect();
    assert_eq!(y.grad().unwrap().to_vec::<f64>(), want);
}

type Binary = fn(&Tensor, &Tensor) -> Tensor;

fn binary_ops() -> Vec<(&'static str, Binary)> {
    vec![
        ("add", |a, b| a.add(b)),
        ("sub", |a, b| a.sub(b)),
        ("mul", |a, b| a.mul(b)),
        ("div", |a, b| a.div(b)),
        ("maximum", |a, b| a.maximum(b)),
        ("minimum", |a, b| a.minimum(b)),
        ("&a + &b", |a, b| a + b),
        ("&a - &b", |a, b| a - b),
        ("&a * &b", |a, b| a * b),
        ("&a / &b", |a, b| a / b),
    ]
}

/// A divisor-safe second operand: |b| ≥ 0.5.
fn b_operand(shape: &[usize], seed: u64) -> Tensor {
    nonzero(shape, seed)
}

#[test]
fn binary_same_shape() {
    for (name, op) in binary_ops() {
        let a = randn(&[3, 4], 10);
        let b = b_operand(&[3, 4], 11);
        check(name, |xs| op(&xs[0], &xs[1]), &[a, b]);
    }
}

#[test]
fn binary_broadcast() {
    for (name, op) in binary_ops() {
        // [3, 1] with [4] → [3, 4]
        let a = randn(&[3, 1], 12);
        let b = b_operand(&[4], 13);
        check(name, |xs| op(&xs[0], &xs[1]), &[a.clone(), b.clone()]);
        check(name, |xs| op(&xs[1], &xs[0]), &[a, b]);
        // 0-d scalar with a matrix, on both sides
        let s = b_operand(&[], 14);
        let m = b_operand(&[2, 3], 15);
        check(name, |xs| op(&xs[0], &xs[1]), &[s.clone(), m.clone()]);
        check(name, |xs| op(&xs[1], &xs[0]), &[s, m]);
        // [2, 1, 4] with [3, 1]
        let a = randn(&[2, 1, 4], 16);
        let b = b_operand(&[3, 1], 17);
        check(name, |xs| op(&xs[0], &xs[1]), &[a, b]);
    }
}

#[test]
fn binary_non_contiguous_views() {
    for (name, op) in binary_ops() {
        let a = randn(&[4, 3], 18);
        let b = b_operand(&[3, 8], 19);
        // transpose [4,3]→[3,4] and every other column of [3,8] → [3,4]
        check(
            name,
            |xs| op(&xs[0].t(), &xs[1].slice(1, 0, 8, 2)),
            &[a, b.clone()],
        );
        // narrow and expand
        let c = randn(&[5, 4], 20);
        let d = b_operand(&[1, 4], 21);
        check(
            name,
            |xs| op(&xs[0].narrow(0, 1, 3), &xs[1].expand([3, 4])),
            &[c, d],
        );
        // permuted 3-D against a strided slice
        let e = randn(&[4, 2, 3], 22);
        check(
            name,
            |xs| {
                op(
                    &xs[0].permute([1, 2, 0]),
                    &xs[1].narrow(1, 2, 4).unsqueeze(0),
                )
            },
            &[e, b],
        );
    }
}

#[test]
fn pow_tensor() {
    let base = uniform(&[3, 4], 23, 0.5, 2.0);
    let expo = randn(&[3, 4], 24);
    check("pow", |xs| xs[0].pow(&xs[1]), &[base.clone(), expo]);
    let e_row = randn(&[4], 25);
    check("pow bcast", |xs| xs[0].pow(&xs[1]), &[base.clone(), e_row]);
    let e0 = randn(&[], 26);
    check("pow 0-d", |xs| xs[0].pow(&xs[1]), &[base.clone(), e0]);
    let b2 = uniform(&[4, 3], 27, 0.5, 2.0);
    let e2 = randn(&[3, 1], 28);
    check("pow view", |xs| xs[0].t().pow(&xs[1]), &[b2, e2]);
}

#[test]
fn where_and_masked_fill() {
    let cond = Tensor::from_vec(vec![true, false, true], [3, 1]);
    let a = randn(&[3, 4], 30);
    let b = randn(&[4], 31);
    check(
        "where",
        |xs| Tensor::where_(&xs[0], &xs[1], &xs[2]),
        &[cond.clone(), a.clone(), b.clone()],
    );
    let c2 = Tensor::from_vec(vec![true, false, false, true], [4]);
    let s = randn(&[], 32);
    check(
        "where 0-d",
        |xs| Tensor::where_(&xs[0], &xs[1], &xs[2].t()),
        &[c2.clone(), s, randn(&[4, 3], 33)],
    );
    let mask = Tensor::from_vec(
        vec![
            true, false, false, true, false, true, false, false, true, true, false, false,
        ],
        [3, 4],
    );
    check(
        "masked_fill",
        |xs| xs[0].masked_fill(&xs[1], -2.5),
        &[a.clone(), mask.clone()],
    );
    // Dense condition and branches, and a dense branch against a 0-d one (the fast paths).
    check(
        "where dense",
        |xs| Tensor::where_(&xs[0], &xs[1], &xs[2]),
        &[mask.clone(), a.clone(), randn(&[3, 4], 34)],
    );
    check(
        "where dense-scalar",
        |xs| Tensor::where_(&xs[0], &xs[1], &xs[2]),
        &[mask, a, randn(&[], 35)],
    );
}

#[test]
fn gelu_backward_primitive() {
    use kiln_core::ops::{dispatch, Op};
    // The VJP of GELU is a primitive; its own VJP (the second derivative) is checked here, with
    // a transposed x and an expanded g.
    let x = randn(&[4, 3], 40);
    let g = randn(&[4], 41);
    check(
        "gelu_backward",
        |xs| dispatch(Op::GeluBackward, &[&xs[0].t(), &xs[1].expand([3, 4])]),
        &[x, g],
    );
}

#[test]
fn softmax_primitive() {
    use kiln_core::nn::functional as F;
    // Broadcast (stride-0) and permuted inputs, every dim, and a 0-d tensor.
    let x = randn(&[3, 1, 4], 36);
    for dim in 0..3 {
        check1("softmax of expanded", &x, |t| {
            F::softmax(&t.expand([3, 2, 4]), dim)
        });
        check1("log_softmax of expanded", &x, |t| {
            F::log_softmax(&t.expand([3, 2, 4]).permute([2, 0, 1]), dim)
        });
    }
    check1("softmax 0-d", &randn(&[], 37), |t| F::softmax(t, 0));
    check1("log_softmax 0-d", &randn(&[], 38), |t| F::log_softmax(t, 0));
    // Masked (−∞) entries, as causal attention produces: no gradient leaks through them.
    let keep = Tensor::ones([4, 4], DType::Bool).tril(0);
    let neg_inf = Tensor::scalar(f64::NEG_INFINITY, DType::F64);
    let s = randn(&[2, 4, 4], 39);
    check1("causal softmax", &s, |t| {
        F::softmax(&Tensor::where_(&keep, t, &neg_inf), -1)
    });
    check1("causal log_softmax then mask", &s, |t| {
        let l = F::log_softmax(&Tensor::where_(&keep, t, &neg_inf), -1);
        Tensor::where_(&keep, &l, &Tensor::scalar(0.0, DType::F64))
    });
}

/// A [2, 3, 4] leaf with distinct entries (for max/min) and no zeros (for prod).
fn cube(seed: u64) -> Tensor {
    nonzero(&[2, 3, 4], seed)
}

type Reduce = fn(&Tensor, &[i64], bool) -> Tensor;

fn reductions() -> Vec<(&'static str, Reduce)> {
    vec![
        ("sum", |x, d, k| x.sum(d, k)),
        ("mean", |x, d, k| x.mean(d, k)),
        ("var unbiased", |x, d, k| x.var(d, true, k)),
        ("var biased", |x, d, k| x.var(d, false, k)),
        ("std unbiased", |x, d, k| x.std(d, true, k)),
        ("std biased", |x, d, k| x.std(d, false, k)),
        ("amax", |x, d, k| x.amax(d, k)),
        ("amin", |x, d, k| x.amin(d, k)),
        ("prod", |x, d, k| x.prod(d, k)),
        ("logsumexp", |x, d, k| x.logsumexp(d, k)),
    ]
}

#[test]
fn reductions_over_dims() {
    let dim_sets: [&[i64]; 5] = [&[1], &[-1], &[0, 2], &[0, 1, 2], &[]];
    for (name, op) in reductions() {
        for (i, dims) in dim_sets.iter().enumerate() {
            for keepdim in [false, true] {
                let x = cube(40 + i as u64);
                let label = format!("{name} dims {dims:?} keepdim {keepdim}");
                check(&label, |xs| op(&xs[0], dims, keepdim), &[x]);
            }
        }
        // on a non-contiguous view
        let x = cube(50);
        check(
            name,
            |xs| op(&xs[0].permute([2, 0, 1]), &[0, 2], false),
            &[x],
        );
    }
}

#[test]
fn max_dim_min_dim_and_all_reductions() {
    let x = cube(51);
    for keepdim in [false, true] {
        check(
            "max_dim",
            |xs| xs[0].max_dim(1, keepdim).0,
            std::slice::from_ref(&x),
        );
        check(
            "min_dim",
            |xs| xs[0].min_dim(-1, keepdim).0,
            std::slice::from_ref(&x),
        );
    }
    check("sum_all", |xs| xs[0].sum_all(), std::slice::from_ref(&x));
    check("mean_all", |xs| xs[0].mean_all(), std::slice::from_ref(&x));
    check(
        "var_all",
        |xs| xs[0].var_all(true),
        std::slice::from_ref(&x),
    );
    check(
        "std_all",
        |xs| xs[0].std_all(false),
        std::slice::from_ref(&x),
    );
    check("max_all", |xs| xs[0].max_all(), std::slice::from_ref(&x));
    check("min_all", |xs| xs[0].min_all(), &[x]);
}

#[test]
fn max_ties_split_the_gradient() {
    // Hand-computed: with a tie for the max, each tied entry gets half the gradient.
    let x = Tensor::from_vec(vec![1.0, 3.0, 3.0, 2.0], [4]).requires_grad_(true);
    x.amax([0], false).backward();
    assert_eq!(x.grad().unwrap().to_vec::<f64>(), vec![0.0, 0.5, 0.5, 0.0]);
    let a = Tensor::from_vec(vec![1.0, 2.0], [2]).requires_grad_(true);
    let b = Tensor::from_vec(vec![1.0, 3.0], [2]).requires_grad_(true);
    a.maximum(&b).sum_all().backward();
    assert_eq!(a.grad().unwrap().to_vec::<f64>(), vec![0.5, 0.0]);
    assert_eq!(b.grad().unwrap().to_vec::<f64>(), vec![0.5, 1.0]);
}

#[test]
fn views_and_reshapes() {
    let x = randn(&[2, 3, 4], 60);
    let w = randn(&[4, 6], 61); // makes each output depend differently on inputs
    check1("reshape", &x, |x| x.reshape([6, 4]).matmul(&w.detach()));
    check1("reshape -1", &x, |x| x.reshape([4, -1]));
    check1("view", &x, |x| x.view([3, 8]));
    check1("permute", &x, |x| x.permute([2, 0, 1]));
    check1("transpose", &x, |x| x.transpose(0, 2));
    check1("transpose neg", &x, |x| x.transpose(-1, -2));
    check1("narrow", &x, |x| x.narrow(2, 1, 2));
    check1("slice step", &x, |x| x.slice(2, 0, 4, 2));
    check1("slice step 3", &x, |x| x.slice(2, 1, 4, 3));
    check1("slice_step", &x, |x| x.slice_step(1, 0, 2, 2));
    check1("i", &x, |x| x.i((1, .., 1..3)));
    check1("i int", &x, |x| x.i((.., 2)));
    check1("i incl", &x, |x| x.i((.., 0..=1, 2..)));
    check1("unsqueeze", &x, |x| x.unsqueeze(1));
    check1("squeeze", &x, |x| x.narrow(1, 1, 1).squeeze(1));
    check1("squeeze_all", &x, |x| x.narrow(0, 1, 1).squeeze_all());
    check1("flatten", &x, |x| x.flatten(0, 1));
    check1("flatten_all", &x, |x| x.flatten_all());
    check1("contiguous", &x, |x| x.transpose(0, 1).contiguous());
    check1("copy", &x, |x| x.copy());
    check1("to_dtype same", &x, |x| x.to_dtype(DType::F64));
    check1("reshape of view", &x, |x| {
        x.transpose(1, 2).reshape([2, 12])
    });
    let m = randn(&[3, 4], 62);
    check1("t", &m, |x| x.t());
    check1("t contiguous", &m, |x| x.t().contiguous());
    let v = randn(&[1, 4], 63);
    check1("expand", &v, |x| x.expand([3, 4]));
    check1("expand -1", &v, |x| x.expand([2, 3, -1]));
    check1("expand_as", &v, |x| x.expand_as(&m.detach()));
    check1("broadcast_to", &v, |x| x.broadcast_to([2, 4]));
    let r = randn(&[3, 1], 64);
    check1("expand col", &r, |x| x.expand([3, 5]));
}

#[test]
fn slice_scatter() {
    let x = randn(&[2, 3], 75);
    check1("slice_scatter_zeros", &x, |x| {
        Tensor::slice_scatter_zeros(x, 1, 1, 2, 7)
    });
    check1("slice_scatter_zeros of view", &x, |x| {
        Tensor::slice_scatter_zeros(&x.t(), 0, 0, 3, 8).square()
    });
}

#[test]
fn cat_stack_split_chunk() {
    let a = randn(&[2, 3], 70);
    let b = randn(&[2, 2], 71);
    let c = randn(&[2, 1], 72);
    check(
        "cat dim 1",
        |xs| Tensor::cat(&[&xs[0], &xs[1], &xs[2]], 1),
        &[a.clone(), b.clone(), c.clone()],
    );
    check(
        "cat dim 0",
        |xs| Tensor::cat(&[xs[0].t(), xs[1].t()], 0),
        &[a.clone(), b.clone()],
    );
    check(
        "cat neg dim",
        |xs| Tensor::cat(&[&xs[0], &xs[0]], -1),
        std::slice::from_ref(&a),
    );
    let d = randn(&[2, 3], 73);
    check(
        "stack 0",
        |xs| Tensor::stack(&[&xs[0], &xs[1]], 0),
        &[a.clone(), d.clone()],
    );
    check(
        "stack last",
        |xs| Tensor::stack(&[&xs[0], &xs[1]], 2),
        &[a.clone(), d],
    );
    let x = randn(&[5, 4], 74);
    // Each piece is weighted differently so a mix-up of pieces would be caught.
    check1("split", &x, |x| {
        let parts = x.split(2, 0);
        assert_eq!(parts.len(), 3);
        let w: Vec<Tensor> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| p.mul_scalar(i as f64 + 1.0).sum_all())
            .collect();
        Tensor::stack(&w, 0)
    });
    check1("split_sizes", &x, |x| {
        let parts = x.split_sizes(&[1, 3], 1);
        &parts[0].exp() * &parts[1].sum([1], true)
    });
    check1("chunk", &x, |x| {
        let parts = x.chunk(3, 0);
        Tensor::cat(&[parts[2].clone(), parts[0].square()], 0)
    });
}

#[test]
fn index_ops() {
    let x = randn(&[4, 3], 80);
    let i = idx(&[2, 0, 2, 3]);
    check(
        "index_select 0",
        |xs| xs[0].index_select(0, &xs[1]),
        &[x.clone(), i.clone()],
    );
    let j = idx(&[1, 1, 0]);
    check(
        "index_select 1",
        |xs| xs[0].index_select(1, &xs[1]),
        &[x.clone(), j],
    );
    check(
        "index_select view",
        |xs| xs[0].t().index_select(1, &xs[1]),
        &[x.clone(), i.clone()],
    );

    let src = randn(&[4, 3], 81);
    let base = randn(&[5, 3], 82);
    check(
        "index_add",
        |xs| xs[0].index_add(0, &xs[1], &xs[2]),
        &[base.clone(), i.clone(), src.clone()],
    );

    let g = Tensor::from_vec(vec![0i64, 2, 2, 1, 1, 0, 0, 0], [4, 2]);
    check(
        "gather 1",
        |xs| xs[0].gather(1, &xs[1]),
        &[x.clone(), g.clone()],
    );
    let g0 = Tensor::from_vec(vec![3i64, 0, 1, 3, 3, 2], [2, 3]);
    check(
        "gather 0",
        |xs| xs[0].gather(0, &xs[1]),
        &[x.clone(), g0.clone()],
    );
    check(
        "gather view",
        |xs| xs[0].t().gather(0, &xs[1]),
        &[randn(&[3, 4], 83), g0.clone()],
    );

    let s = randn(&[4, 2], 84);
    check(
        "scatter_add 1",
        |xs| xs[0].scatter_add(1, &xs[1], &xs[2]),
        &[x.clone(), g, s],
    );
    let s0 = randn(&[2, 3], 85);
    check(
        "scatter_add 0",
        |xs| xs[0].scatter_add(0, &xs[1], &xs[2]),
        &[x.clone(), g0, s0],
    );
}

#[test]
fn tril_triu() {
    let x = randn(&[2, 4, 5], 90);
    for k in [-1, 0, 2] {
        check1("tril", &x, |x| x.tril(k));
        check1("triu", &x, |x| x.triu(k));
    }
}

#[test]
fn matmul_shapes() {
    type Case = (&'static str, Vec<usize>, Vec<usize>);
    let cases: Vec<Case> = vec![
        ("1-D · 1-D", vec![4], vec![4]),
        ("1-D @ 2-D", vec![3], vec![3, 5]),
        ("2-D @ 1-D", vec![3, 4], vec![4]),
        ("2-D @ 2-D", vec![3, 4], vec![4, 5]),
        ("batched", vec![2, 3, 4], vec![2, 4, 5]),
        ("broadcast batch", vec![2, 1, 3, 4], vec![5, 4, 2]),
        ("2-D @ batched", vec![3, 4], vec![2, 4, 5]),
        ("batched @ 1-D", vec![2, 3, 4], vec![4]),
        ("1-D @ batched", vec![4], vec![2, 4, 3]),
    ];
    for (i, (name, sa, sb)) in cases.iter().enumerate() {
        let a = randn(sa, 100 + 2 * i as u64);
        let b = randn(sb, 101 + 2 * i as u64);
        check(name, |xs| xs[0].matmul(&xs[1]), &[a, b]);
    }
}

#[test]
fn matmul_transposed_views() {
    let a = randn(&[4, 3], 120);
    let b = randn(&[5, 4], 121);
    check(
        "a.t() @ b.t()",
        |xs| xs[0].t().matmul(&xs[1].t()),
        &[a.clone(), b.clone()],
    );
    check("b @ a", |xs| xs[1].matmul(&xs[0]), &[a.clone(), b.clone()]);
    let c = randn(&[2, 4, 3], 122);
    let d = randn(&[2, 5, 4], 123);
    check(
        "batched transposed",
        |xs| xs[0].transpose(-2, -1).matmul(&xs[1].transpose(1, 2)),
        &[c, d],
    );
    let e = randn(&[6, 4], 124);
    let f = randn(&[1, 3], 125);
    check(
        "sliced and expanded",
        |xs| xs[0].slice(0, 0, 6, 2).matmul(&xs[1].expand([4, 3])),
        &[e, f],
    );
}

#[test]
fn matmul_with_bias() {
    use kiln_core::ops::{dispatch, Op};
    let a = randn(&[4, 3], 126);
    let b = randn(&[5, 4], 127);
    let bias = randn(&[5], 128);
    check(
        "a.t() @ b.t() + bias",
        |xs| dispatch(Op::Matmul, &[&xs[0].t(), &xs[1].t(), &xs[2]]),
        &[a, b, bias.clone()],
    );
    let c = randn(&[2, 4, 3], 129);
    let w = randn(&[3, 5], 130);
    check(
        "batched @ matrix + strided bias",
        |xs| dispatch(Op::Matmul, &[&xs[0], &xs[1], &xs[2].slice(0, 0, 10, 2)]),
        &[c, w, randn(&[10], 131)],
    );
}

#[test]
fn matmul_with_activation_epilogue() {
    use kiln_core::ops::{dispatch, Activation, Op};
    for act in [
        Activation::Relu,
        Activation::Gelu { tanh: false },
        Activation::Gelu { tanh: true },
    ] {
        let op = Op::MatmulAct(act);
        let (a, b, bias) = (randn(&[4, 3], 132), randn(&[5, 4], 133), randn(&[5], 134));
        let fused = dispatch(op.clone(), &[&a.t(), &b.t(), &bias]);
        let composite = dispatch(act.op(), &[&dispatch(Op::Matmul, &[&a.t(), &b.t(), &bias])]);
        assert_eq!(fused.to_vec::<f64>(), composite.to_vec::<f64>(), "{act:?}");
        check(
            &format!("{act:?}(a.t() @ b.t() + bias)"),
            |xs| dispatch(op.clone(), &[&xs[0].t(), &xs[1].t(), &xs[2]]),
            &[a, b, bias],
        );
        check(
            &format!("{act:?}(batched @ broadcast matrix)"),
            |xs| dispatch(op.clone(), &[&xs[0], &xs[1].expand([2, 3, 5])]),
            &[randn(&[2, 4, 3], 135), randn(&[3, 5], 136)],
        );
    }
}

#[test]
fn unfold_fold_raw() {
    let x = randn(&[2, 2, 5, 4], 130);
    for (k, s, p, d) in [
        ([2, 2], [1, 1], [0, 0], [1, 1]),
        ([3, 2], [2, 1], [1, 0], [1, 1]),
        ([2, 2], [1, 2], [1, 1], [2, 1]),
    ] {
        check1("unfold_raw", &x, |x| Tensor::unfold_raw(x, k, s, p, d, 0.0));
        let cols = Tensor::unfold_raw(&x.detach(), k, s, p, d, 0.0);
        let c = randn(cols.shape(), 131);
        check1("fold_raw", &c, |c| Tensor::fold_raw(c, [5, 4], k, s, p, d));
    }
    // a non-zero pad value is a constant: it gets no gradient
    check1("unfold_raw pad", &x, |x| {
        Tensor::unfold_raw(x, [3, 3], [2, 2], [1, 1], [1, 1], 0.5)
    });
    // unfold of a non-contiguous input
    let y = randn(&[2, 5, 4, 2], 132);
    check1("unfold_raw view", &y, |y| {
        Tensor::unfold_raw(
            &y.permute([0, 3, 1, 2]),
            [2, 2],
            [1, 1],
            [1, 1],
            [1, 1],
            0.0,
        )
    });
}

#[test]
fn composite_chain() {
    // A small MLP-like chain mixing many ops, to exercise gradient accumulation through
    // shared subexpressions.
    let x = randn(&[4, 3], 140);
    let w = randn(&[3, 5], 141);
    let b = randn(&[5], 142);
    check(
        "mlp",
        |xs| {
            let h = (&xs[0].matmul(&xs[1]) + &xs[2]).tanh();
            let z = &h * &h.sigmoid() + h.logsumexp([1], true);
            z.mean([0], false).square()
        },
        &[x, w, b],
    );
}

#[test]
fn gradcheck_detects_a_wrong_gradient() {
    // detach() hides one factor from backward: analytic x vs numeric 2x must be reported.
    let x = randn(&[3], 150);
    let err = gradcheck(|xs| &xs[0].detach() * &xs[0], &[x], EPS, ATOL, RTOL).unwrap_err();
    assert_eq!(err.input, 0);
    assert!((err.numeric - 2.0 * err.analytic).abs() < 1e-6, "{err}");
}
