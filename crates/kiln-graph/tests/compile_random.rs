//! Random ops in compiled functions draw from the global generator at each call, in the same
//! order as eager code: with the same seed, compiled dropout training equals eager dropout
//! training, and two calls draw different masks.

mod common;

use common::{copy_params, train_step};
use kiln_core::{manual_seed, DType, Tensor};
use kiln_graph::compile;
use kiln_nn::layers::{Dropout, Linear, ReLU, Sequential};
use kiln_nn::optim::Sgd;
use kiln_nn::ModuleBase;

fn model() -> Sequential {
    Sequential::new()
        .append(Linear::new(10, 32))
        .append(ReLU::new())
        .append(Dropout::new(0.5))
        .append(Linear::new(32, 4))
}

#[test]
fn dropout_training_matches_eager_with_the_same_seed() {
    manual_seed(7);
    let eager = model();
    let compiled_model = model();
    copy_params(&eager, &compiled_model);
    let xs = Tensor::randn([16, 10], DType::F32);
    let ys = Tensor::randint(0, 4, [16]);

    manual_seed(123);
    let mut opt = Sgd::new(eager.parameters(), 0.05);
    let mut eager_losses = Vec::new();
    for _ in 0..5 {
        let loss = train_step(&eager, &mut opt, &xs, &ys);
        eager_losses.push(loss.item::<f32>());
    }

    manual_seed(123);
    let mut opt2 = Sgd::new(compiled_model.parameters(), 0.05);
    let mut step = compile(|b: &[Tensor]| {
        let loss = train_step(&compiled_model, &mut opt2, &b[0], &b[1]);
        vec![loss]
    });
    let losses: Vec<f32> = (0..5)
        .map(|_| step.call(&[xs.clone(), ys.clone()])[0].item::<f32>())
        .collect();
    for (a, b) in losses.iter().zip(&eager_losses) {
        assert!(
            (a - b).abs() <= 1e-5 * b.abs().max(1.0),
            "{losses:?} vs {eager_losses:?}"
        );
    }
    // Different masks per call: the losses are not all the same.
    assert!(losses.windows(2).any(|w| w[0] != w[1]));
    for (a, b) in compiled_model.parameters().iter().zip(eager.parameters()) {
        let (a, b) = (a.to_vec::<f32>(), b.to_vec::<f32>());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1e-5 * y.abs().max(1e-3), "{x} vs {y}");
        }
    }
}
