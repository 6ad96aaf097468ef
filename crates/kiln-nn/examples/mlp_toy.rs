//! A two-layer MLP, defined with `#[derive(Module)]`, learning the two-moons toy problem with
//! SGD (momentum 0.9) on the full batch; prints the loss going down and the final accuracy.
//!
//! ```text
//! cargo run -p kiln-nn --example mlp_toy
//! ```

use kiln_core::nn::functional as F;
use kiln_core::{manual_seed, no_grad, DType, Tensor};
use kiln_nn::optim::{Optimizer, Sgd, SgdConfig};
use kiln_nn::{CrossEntropyLoss, Linear, Module, ModuleBase};

/// `2 → hidden → 2` with a ReLU in between.
#[derive(Module)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    fn new(hidden: usize) -> Mlp {
        Mlp {
            fc1: Linear::new(2, hidden),
            fc2: Linear::new(hidden, 2),
        }
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.fc2.forward(&F::relu(&self.fc1.forward(x)))
    }
}

/// Two interleaving half circles with Gaussian noise: points `[2n, 2]` and labels `[2n]`.
fn two_moons(n: usize, noise: f64) -> (Tensor, Tensor) {
    let t = Tensor::rand([n], DType::F32).mul_scalar(std::f64::consts::PI);
    let (c, s) = (t.cos(), t.sin());
    let upper = Tensor::stack(&[c.clone(), s.clone()], 1);
    let lower = Tensor::stack(&[c.affine(-1.0, 1.0), s.affine(-1.0, 0.5)], 1);
    let points =
        &Tensor::cat(&[upper, lower], 0) + &Tensor::randn([2 * n, 2], DType::F32).mul_scalar(noise);
    let labels = Tensor::cat(
        &[
            Tensor::zeros([n], DType::I64),
            Tensor::ones([n], DType::I64),
        ],
        0,
    );
    (points, labels)
}

fn accuracy(model: &Mlp, x: &Tensor, y: &Tensor) -> f64 {
    let pred = no_grad(|| model.forward(x)).argmax(1, false);
    pred.eq(y).to_dtype(DType::F64).mean_all().item::<f64>()
}

fn main() {
    manual_seed(0);
    let (x, y) = two_moons(200, 0.1);
    let (x_test, y_test) = two_moons(200, 0.1);
    let model = Mlp::new(32);
    println!(
        "two moons: {} training points, MLP with {} parameters",
        x.shape()[0],
        model.num_parameters()
    );
    let loss_fn = CrossEntropyLoss::new();
    let mut opt = Sgd::with_config(
        model.parameters(),
        SgdConfig {
            lr: 0.1,
            momentum: 0.9,
            ..SgdConfig::default()
        },
    );
    let steps = 500;
    for step in 0..=steps {
        let loss = loss_fn.forward(&model.forward(&x), &y);
        if step % 50 == 0 {
            println!(
                "step {step:4}  loss {:.4}  train accuracy {:5.1}%",
                loss.item::<f32>(),
                100.0 * accuracy(&model, &x, &y)
            );
        }
        if step == steps {
            break;
        }
        opt.zero_grad();
        loss.backward();
        opt.step();
    }
    println!(
        "final accuracy: train {:.1}%, test {:.1}%",
        100.0 * accuracy(&model, &x, &y),
        100.0 * accuracy(&model, &x_test, &y_test)
    );
}
