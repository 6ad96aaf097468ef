//! A symbolic batch dim: one trace serves every batch size (a counter proves there is no
//! re-trace), in memory and through a graph file, for inference and for whole train steps;
//! code whose shapes cannot follow the batch is refused at trace time, naming the op.

mod common;

use common::{copy_params, max_rel_diff, train_step, TinyGpt};
use kiln_core::nn::functional as F;
use kiln_core::{no_grad, DType, Tensor};
use kiln_graph::artifact::{self, Dim};
use kiln_graph::compile;
use kiln_nn::layers::{
    BatchNorm2d, Conv2d, Conv2dConfig, Dropout, Flatten, Linear, MaxPool2d, ReLU, Sequential,
};
use kiln_nn::optim::{Adam, Optimizer};
use kiln_nn::{Module, ModuleBase};
use std::sync::Mutex;

/// Tests that draw from the global generator (parameter init, data) run one at a time.
static RNG: Mutex<()> = Mutex::new(());

const SIZES: [usize; 4] = [1, 7, 32, 256];

fn mlp() -> Sequential {
    Sequential::new()
        .append(Linear::new(20, 32))
        .append(ReLU::new())
        .append(Linear::new(32, 5))
}

fn cnn() -> Sequential {
    let conv = |i, o| Conv2d::with_config(i, o, 3, Conv2dConfig::default().padding(1));
    Sequential::new()
        .append(conv(1, 4))
        .append(BatchNorm2d::new(4))
        .append(ReLU::new())
        .append(MaxPool2d::new(2))
        .append(conv(4, 8))
        .append(ReLU::new())
        .append(MaxPool2d::new(2))
        .append(Flatten::new())
        .append(Linear::new(8 * 2 * 2, 10))
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.to_f64_vec()
        .iter()
        .zip(b.to_f64_vec())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Runs `model` compiled with a dynamic batch at every size of [`SIZES`] and checks it
/// against eager, with one trace and one plan per size.
fn serves_every_size(model: &dyn Module, input: impl Fn(usize) -> Tensor) {
    model.eval();
    let mut f = compile(|xs: &[Tensor]| vec![model.forward(&xs[0])]).dynamic_batch();
    no_grad(|| {
        for (k, &b) in SIZES.iter().enumerate() {
            let x = input(b);
            let expected = model.forward(&x);
            let got = f.call(std::slice::from_ref(&x));
            assert_eq!(got[0].shape(), expected.shape());
            let d = max_abs_diff(&got[0], &expected);
            assert!(d <= 1e-6, "batch {b}: outputs differ from eager by {d}");
            assert_eq!(f.trace_count(), 1, "batch {b} re-traced");
            assert_eq!(f.plan_count(), k + 1, "one plan per new batch size");
        }
        // A size seen before runs its cached plan.
        f.call(&[input(7)]);
        assert_eq!((f.trace_count(), f.plan_count()), (1, SIZES.len()));
    });
}

#[test]
fn mlp_forward_serves_every_batch_size_from_one_trace() {
    let _g = RNG.lock().unwrap_or_else(|e| e.into_inner());
    serves_every_size(&mlp(), |b| Tensor::randn([b, 20], DType::F32));
}

#[test]
fn cnn_forward_serves_every_batch_size_from_one_trace() {
    let _g = RNG.lock().unwrap_or_else(|e| e.into_inner());
    serves_every_size(&cnn(), |b| Tensor::randn([b, 1, 8, 8], DType::F32));
}

#[test]
fn gpt_forward_serves_every_batch_size_from_one_trace() {
    let _g = RNG.lock().unwrap_or_else(|e| e.into_inner());
    serves_every_size(&TinyGpt::new(), |b| Tensor::randint(0, 32, [b, 8]));
}

#[test]
fn a_graph_file_with_a_symbolic_batch_runs_at_every_size() {
    let _g = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let net = cnn();
    net.eval();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cnn.kgraph");
    let graph = no_grad(|| {
        let mut f =
            compile(|xs: &[Tensor]| vec![F::softmax(&net.forward(&xs[0]), -1)]).dynamic_batch();
        f.dynamic_graph(&[Tensor::zeros([3, 1, 8, 8], DType::F32)])
            .expect("a dynamic graph")
    });
    artifact::save_dynamic(&graph, &path).unwrap();
    let loaded = artifact::load(&path).unwrap();
    let batch = Dim::batch();
    let fixed = Dim::fixed;
    assert_eq!(
        loaded.arg_dims(),
        &[(vec![batch, fixed(1), fixed(8), fixed(8)], DType::F32)]
    );
    assert_eq!(
        loaded.output_dims(),
        vec![(vec![batch, fixed(10)], DType::F32)]
    );
    let made_at_load = loaded.plans_made();
    for &b in &SIZES {
        let x = Tensor::randn([b, 1, 8, 8], DType::F32);
        let expected = no_grad(|| F::softmax(&net.forward(&x), -1));
        let got = loaded.run(&[x]).unwrap();
        let d = max_abs_diff(&got[0], &expected);
        assert!(
            d <= 1e-6,
            "batch {b}: the loaded graph differs from eager by {d}"
        );
    }
    assert_eq!(loaded.plans_made(), made_at_load + SIZES.len());
    // A shape that is wrong beyond the batch is still refused.
    let err = loaded
        .run(&[Tensor::zeros([4, 1, 8, 9], DType::F32)])
        .unwrap_err();
    assert!(err.to_string().contains("f32[B, 1, 8, 8]"), "{err}");
}

#[test]
fn a_train_step_with_a_smaller_last_batch_is_not_retraced() {
    let _g = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let make = || {
        Sequential::new()
            .append(Linear::new(10, 16))
            .append(ReLU::new())
            .append(Dropout::new(0.0))
            .append(Linear::new(16, 4))
    };
    let (eager, traced) = (make(), make());
    copy_params(&eager, &traced);
    let mut opt_e = Adam::new(eager.parameters(), 1e-2);
    let mut opt_t = Adam::new(traced.parameters(), 1e-2);
    let mut step = compile(|xs: &[Tensor]| {
        vec![train_step(
            &traced,
            &mut opt_t as &mut dyn Optimizer,
            &xs[0],
            &xs[1],
        )]
    })
    .dynamic_batch();
    // Two full batches and a last one of 5: the mean over the batch must divide by 5.
    for b in [16, 16, 5, 16, 5] {
        let x = Tensor::randn([b, 10], DType::F32);
        let y = Tensor::randint(0, 4, [b]);
        let want = train_step(&eager, &mut opt_e, &x, &y);
        let got = step.call(&[x, y]);
        let d = max_rel_diff(&got[0], &want);
        assert!(d < 1e-5, "batch {b}: loss differs by {d}");
        for (p, q) in eager.parameters().iter().zip(traced.parameters()) {
            let d = max_rel_diff(p, &q);
            assert!(d < 1e-4, "batch {b}: a parameter differs by {d}");
        }
    }
    assert_eq!((step.trace_count(), step.plan_count()), (1, 2));
}

#[test]
#[should_panic(expected = "cannot follow the batch size")]
fn a_tensor_made_with_the_batch_size_is_refused_at_trace_time() {
    let mut f = compile(|xs: &[Tensor]| {
        let x = &xs[0];
        // Values made from a plain number taken from the shape: they cannot follow the
        // batch (a random draw or a fill of that shape can).
        let n = x.shape()[0];
        let ramp = Tensor::arange(0.0, (n * 3) as f64, 1.0, DType::F32).reshape([n as i64, 3]);
        vec![x + &ramp]
    })
    .dynamic_batch();
    no_grad(|| f.call(&[Tensor::zeros([4, 3], DType::F32)]));
}

#[test]
fn a_filled_tensor_made_from_the_batch_size_ships_in_a_graph_file() {
    // A recurrent-style initial state: a fill of shape [batch, 3] made inside the function.
    let w = Tensor::randn([3, 3], DType::F32);
    let f = |xs: &[Tensor]| {
        let x = &xs[0];
        let state = Tensor::full([x.shape()[0], 3], 0.5, DType::F32);
        vec![(x + &state.matmul(&w)).tanh()]
    };
    let mut compiled = compile(f).dynamic_batch();
    let graph = no_grad(|| compiled.dynamic_graph(&[Tensor::zeros([2, 3], DType::F32)]))
        .expect("a dynamic graph");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.kgraph");
    artifact::save_dynamic(&graph, &path).unwrap();
    let loaded = artifact::load(&path).unwrap();
    for b in [1, 5, 40] {
        let x = Tensor::randn([b, 3], DType::F32);
        let expected = no_grad(|| f(std::slice::from_ref(&x)));
        let got = loaded.run(&[x]).unwrap();
        let d = max_abs_diff(&got[0], &expected[0]);
        assert!(
            d <= 1e-6,
            "batch {b}: the loaded graph differs from eager by {d}"
        );
    }
}
