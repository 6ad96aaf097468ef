//! The acceptance check of graph mode: compiled train steps (forward + backward + optimizer
//! update in one graph) equal eager ones within 1e-5 relative — losses, gradients and
//! parameters after 5 steps — for the benchmark workloads' architectures (MLP with Adam, CNN
//! with SGD momentum, a causal transformer with AdamW), at test-sized shapes.

mod common;

use common::{copy_params, TinyGpt};
use kiln_core::nn::functional as F;
use kiln_core::{DType, Tensor};
use kiln_graph::compile;
use kiln_nn::layers::{Conv2d, Conv2dConfig, Flatten, Linear, MaxPool2d, ReLU, Sequential};
use kiln_nn::optim::{Adam, AdamW, Optimizer, Sgd, SgdConfig};
use kiln_nn::Module;
use std::sync::Mutex;

static RNG: Mutex<()> = Mutex::new(());

fn rel_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * y.abs().max(scale * 1e-2),
            "{what}[{i}]: compiled {x} vs eager {y}"
        );
    }
}

/// Trains two copies of a model 5 steps each, eagerly and compiled, and compares.
fn check<M: Module>(
    make: impl Fn() -> M,
    make_opt: impl Fn(Vec<Tensor>) -> Box<dyn Optimizer>,
    xs: Tensor,
    ys: Tensor,
    reshape_logits: Option<i64>,
) {
    let eager = make();
    let compiled = make();
    copy_params(&eager, &compiled);
    let logits = |m: &M, x: &Tensor| {
        let out = m.forward(x);
        match reshape_logits {
            Some(v) => out.reshape([-1, v]),
            None => out,
        }
    };
    let mut opt = make_opt(eager.parameters());
    let mut eager_losses = Vec::new();
    for _ in 0..5 {
        opt.zero_grad();
        let loss = F::cross_entropy(&logits(&eager, &xs), &ys);
        loss.backward();
        opt.step();
        eager_losses.push(loss.item::<f32>());
    }
    let mut opt2 = make_opt(compiled.parameters());
    let mut step = compile(|b: &[Tensor]| {
        opt2.zero_grad();
        let loss = F::cross_entropy(&logits(&compiled, &b[0]), &b[1]);
        loss.backward();
        opt2.step();
        vec![loss]
    });
    let losses: Vec<f32> = (0..5)
        .map(|_| step.call(&[xs.clone(), ys.clone()])[0].item::<f32>())
        .collect();
    assert_eq!(step.trace_count(), 1);
    rel_close(&losses, &eager_losses, 1e-5, "loss");
    for (i, (a, b)) in compiled
        .parameters()
        .iter()
        .zip(eager.parameters())
        .enumerate()
    {
        rel_close(&a.to_vec(), &b.to_vec(), 1e-5, &format!("param {i}"));
        rel_close(
            &a.grad().unwrap().to_vec(),
            &b.grad().unwrap().to_vec(),
            1e-5,
            &format!("grad {i}"),
        );
    }
}

#[test]
fn mlp_with_adam() {
    let _g = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let make = || {
        Sequential::new()
            .append(Flatten::new())
            .append(Linear::new(64, 32))
            .append(ReLU::new())
            .append(Linear::new(32, 32))
            .append(ReLU::new())
            .append(Linear::new(32, 10))
    };
    check(
        make,
        |p| Box::new(Adam::new(p, 1e-3)),
        Tensor::randn([16, 1, 8, 8], DType::F32),
        Tensor::randint(0, 10, [16]),
        None,
    );
}

#[test]
fn cnn_with_sgd_momentum() {
    let _g = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let conv = |i, o| Conv2d::with_config(i, o, 3, Conv2dConfig::default().padding(1));
    let make = || {
        Sequential::new()
            .append(conv(3, 4))
            .append(ReLU::new())
            .append(MaxPool2d::new(2))
            .append(conv(4, 8))
            .append(ReLU::new())
            .append(MaxPool2d::new(2))
            .append(Flatten::new())
            .append(Linear::new(8 * 2 * 2, 16))
            .append(ReLU::new())
            .append(Linear::new(16, 10))
    };
    check(
        make,
        |p| {
            Box::new(Sgd::with_config(
                p,
                SgdConfig {
                    lr: 0.01,
                    momentum: 0.9,
                    ..SgdConfig::default()
                },
            ))
        },
        Tensor::randn([4, 3, 8, 8], DType::F32),
        Tensor::randint(0, 10, [4]),
        None,
    );
}

#[test]
fn gpt_with_adamw() {
    let _g = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let make = TinyGpt::new;
    check(
        make,
        |p| Box::new(AdamW::new(p, 3e-3)),
        Tensor::randint(0, 32, [2, 8]),
        Tensor::randint(0, 32, [2, 8]).reshape([-1]),
        Some(32),
    );
}
