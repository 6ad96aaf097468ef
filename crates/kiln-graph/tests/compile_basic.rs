//! compile on plain functions and an SGD train step: compiled results equal eager ones, the
//! cache retraces only for new signatures, and value reads during tracing fail clearly.

mod common;

use common::{copy_params, max_rel_diff, train_step};
use kiln_core::{DType, Tensor};
use kiln_graph::compile;
use kiln_nn::layers::{Linear, ReLU, Sequential};
use kiln_nn::optim::{Optimizer, Sgd};
use kiln_nn::{Module, ModuleBase};
use std::sync::Mutex;

/// Tests that draw from the global generator run one at a time.
static RNG: Mutex<()> = Mutex::new(());

fn function(x: &Tensor, y: &Tensor) -> Tensor {
    let h = &(x * y) + &x.exp();
    (&h.sum([1], true) * 2.0).tanh()
}

#[test]
fn pure_function_matches_eager_and_caches_per_signature() {
    let _g = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let mut f = compile(|xs: &[Tensor]| vec![function(&xs[0], &xs[1])]);
    let x = Tensor::randn([4, 5], DType::F32);
    let y = Tensor::randn([4, 5], DType::F32);
    let got = f.call(&[x.clone(), y.clone()]);
    assert!(max_rel_diff(&got[0], &function(&x, &y)) < 1e-6);
    let x2 = Tensor::randn([4, 5], DType::F32);
    let got2 = f.call(&[x2.clone(), y.clone()]);
    assert!(max_rel_diff(&got2[0], &function(&x2, &y)) < 1e-6);
    assert_eq!(f.trace_count(), 1, "same signature must not retrace");
    let x3 = Tensor::randn([3, 5], DType::F32);
    let y3 = Tensor::randn([3, 5], DType::F32);
    let got3 = f.call(&[x3.clone(), y3.clone()]);
    assert!(max_rel_diff(&got3[0], &function(&x3, &y3)) < 1e-6);
    assert_eq!(f.trace_count(), 2, "a new shape traces again");
    // The graph prints as text with its ops.
    let text = f.graph(&[x, y]).to_string();
    assert!(text.contains("exp("), "{text}");
    assert!(text.contains("tanh("), "{text}");
}

#[test]
fn reading_a_value_while_tracing_is_a_clear_error() {
    let mut f = compile(|xs: &[Tensor]| {
        let s = xs[0].sum_all().item::<f32>();
        vec![&xs[0] * s as f64]
    });
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        f.call(&[Tensor::ones([2], DType::F32)])
    }))
    .unwrap_err();
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("item: cannot read the value of a traced tensor"),
        "{msg}"
    );
    assert!(msg.contains("where_"), "{msg}");
    // The failed trace left no tracing state behind: eager code works.
    let t = Tensor::ones([2], DType::F32);
    assert_eq!((&t + &t).to_vec::<f32>(), vec![2.0, 2.0]);
}

fn mlp() -> Sequential {
    Sequential::new()
        .append(Linear::new(12, 16))
        .append(ReLU::new())
        .append(Linear::new(16, 3))
}

#[test]
fn sgd_train_step_matches_eager_after_five_steps() {
    let _g = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let eager_model = mlp();
    let model = mlp();
    copy_params(&eager_model, &model);
    let xs = Tensor::randn([8, 12], DType::F32);
    let ys = Tensor::randint(0, 3, [8]);

    let mut eager_opt = Sgd::new(eager_model.parameters(), 0.1);
    let mut eager_losses = Vec::new();
    for _ in 0..5 {
        let loss = train_step(&eager_model, &mut eager_opt, &xs, &ys);
        eager_losses.push(loss.item::<f32>());
    }

    let mut opt = Sgd::new(model.parameters(), 0.1);
    let mut step = compile(|b: &[Tensor]| {
        let loss = train_step(&model, &mut opt, &b[0], &b[1]);
        vec![loss]
    });
    let mut losses = Vec::new();
    for _ in 0..5 {
        losses.push(step.call(&[xs.clone(), ys.clone()])[0].item::<f32>());
    }
    assert_eq!(step.trace_count(), 1);
    for (a, b) in losses.iter().zip(&eager_losses) {
        assert!(
            (a - b).abs() <= 1e-5 * b.abs().max(1.0),
            "{losses:?} vs {eager_losses:?}"
        );
    }
    for (a, b) in model.parameters().iter().zip(eager_model.parameters()) {
        assert!(max_rel_diff(a, &b) < 1e-5);
        // Gradients are set after each call, like eager backward.
        assert!(max_rel_diff(&a.grad().unwrap(), &b.grad().unwrap()) < 1e-5);
    }
}

#[test]
fn compiled_steps_follow_lr_changes_and_count_adam_steps() {
    let _g = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let model = mlp();
    let xs = Tensor::randn([8, 12], DType::F32);
    let ys = Tensor::randint(0, 3, [8]);
    let mut opt = kiln_nn::optim::Adam::new(model.parameters(), 1e-2);
    let mut calls = 0;
    {
        let mut step = compile(|b: &[Tensor]| {
            let loss = train_step(&model, &mut opt, &b[0], &b[1]);
            vec![loss]
        });
        for _ in 0..3 {
            step.call(&[xs.clone(), ys.clone()]);
            calls += 1;
        }
    }
    // The step count advanced at run time (state_dict reads it), not once at trace time.
    let sd = opt.state_dict();
    let steps: Vec<f64> = (0..4)
        .map(|i| sd.meta["state"][i.to_string()]["step"].as_f64().unwrap())
        .collect();
    assert_eq!(steps, vec![3.0; 4], "{}", sd.meta);
    // lr 0 through the scheduler interface: a compiled step reads the new value.
    opt.set_group_lr(0, 0.0);
    let before: Vec<Vec<f32>> = model.parameters().iter().map(|p| p.to_vec()).collect();
    let mut step = compile(|b: &[Tensor]| {
        let loss = train_step(&model, &mut opt, &b[0], &b[1]);
        vec![loss]
    });
    step.call(&[xs.clone(), ys.clone()]);
    calls += 1;
    let after: Vec<Vec<f32>> = model.parameters().iter().map(|p| p.to_vec()).collect();
    assert_eq!(before, after, "lr 0 must leave the parameters unchanged");
    assert_eq!(calls, 4);
}

#[test]
fn results_the_caller_keeps_do_not_change_at_the_next_call() {
    let model = Sequential::new()
        .append(Linear::new(6, 8))
        .append(ReLU::new())
        .append(Linear::new(8, 3));
    let mut opt = Sgd::new(model.parameters(), 0.5);
    let mut step = compile(|b: &[Tensor]| vec![train_step(&model, &mut opt, &b[0], &b[1])]);
    let batch = [
        Tensor::randn([5, 6], DType::F32),
        Tensor::randint(0, 3, [5]),
    ];
    let w = model.parameters()[0].clone();
    let loss1 = step.call(&batch).remove(0);
    let (l1, g1) = (loss1.item::<f32>(), w.grad().unwrap());
    let g1_values = g1.to_vec::<f32>();
    let loss2 = step.call(&batch).remove(0);
    // What the caller held is as it was; the new results differ (the weights moved).
    assert_eq!(loss1.item::<f32>(), l1);
    assert_eq!(g1.to_vec::<f32>(), g1_values);
    assert_ne!(loss2.item::<f32>(), l1);
    assert_ne!(w.grad().unwrap().to_vec::<f32>(), g1_values);
}

/// `backward` eagerly, the optimizer step compiled on its own: the compiled step reads the
/// gradients the parameters hold at each call (they change between calls) and matches the
/// eager optimizer.
#[test]
fn compiled_optimizer_step_reads_gradients_set_outside() {
    let _g = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let (model, eager_model) = (mlp(), mlp());
    copy_params(&model, &eager_model);
    let mut opt = kiln_nn::optim::Adam::new(model.parameters(), 1e-2);
    let mut eager_opt = kiln_nn::optim::Adam::new(eager_model.parameters(), 1e-2);
    let mut step = compile(|_: &[Tensor]| {
        opt.step();
        vec![]
    });
    for _ in 0..3 {
        let xs = Tensor::randn([8, 12], DType::F32);
        let ys = Tensor::randint(0, 3, [8]);
        for (m, o) in [
            (&model, None),
            (&eager_model, Some(&mut eager_opt as &mut dyn Optimizer)),
        ] {
            for p in m.parameters() {
                p.set_grad(None);
            }
            kiln_core::nn::functional::cross_entropy(&m.forward(&xs), &ys).backward();
            if let Some(o) = o {
                o.step();
            }
        }
        step.call(&[]);
        for (a, b) in model.parameters().iter().zip(eager_model.parameters()) {
            assert!(max_rel_diff(a, &b) < 1e-5);
        }
    }
}
