//! In-place execution: a compiled SGD step writes each parameter's new value straight into
//! the parameter (no update copy), dying intermediates are reused, and results still equal
//! eager ones.

mod common;

use common::{copy_params, train_step};
use kiln_core::{DType, Tensor};
use kiln_graph::compile;
use kiln_graph::executor::Executable;
use kiln_graph::inplace::InPlace;
use kiln_nn::layers::{Linear, ReLU, Sequential};
use kiln_nn::optim::Sgd;
use kiln_nn::ModuleBase;

fn mlp() -> Sequential {
    Sequential::new()
        .append(Linear::new(6, 8))
        .append(ReLU::new())
        .append(Linear::new(8, 3))
}

#[test]
fn sgd_updates_run_in_place_and_match_eager() {
    let model = mlp();
    let eager = mlp();
    copy_params(&model, &eager);
    let xs = Tensor::randn([5, 6], DType::F32);
    let ys = Tensor::randint(0, 3, [5]);
    let mut opt = Sgd::new(model.parameters(), 0.1);
    let mut step = compile(|b: &[Tensor]| {
        let loss = train_step(&model, &mut opt, &b[0], &b[1]);
        vec![loss]
    });
    let batch = [xs.clone(), ys.clone()];
    let exe = Executable::new(step.graph(&batch));
    let states = exe
        .in_place()
        .iter()
        .filter(|p| matches!(p, Some(InPlace::State(_))))
        .count();
    assert_eq!(states, 4, "every parameter update is written in place");
    let storages: Vec<usize> = model
        .parameters()
        .iter()
        .map(|p| std::sync::Arc::as_ptr(p.storage()) as usize)
        .collect();
    let mut eager_opt = Sgd::new(eager.parameters(), 0.1);
    for _ in 0..3 {
        step.call(&batch);
        train_step(&eager, &mut eager_opt, &xs, &ys);
    }
    for ((p, q), s) in model
        .parameters()
        .iter()
        .zip(eager.parameters())
        .zip(storages)
    {
        // Same buffers as before (written in place), same values as eager.
        assert_eq!(std::sync::Arc::as_ptr(p.storage()) as usize, s);
        for (a, b) in p.to_vec::<f32>().iter().zip(q.to_vec::<f32>()) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
}
