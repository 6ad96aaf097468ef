//! Traced optimizer steps record one `adam_step` op per parameter (running the eager fused
//! kernel), and compiled steps equal eager ones for every Adam/AdamW variant; passes keep
//! reads of the moments on the right side of the op that writes them.

mod common;

use common::{copy_params, max_rel_diff, train_step};
use kiln_core::ops::optim::{trace_adam, AdamHyper};
use kiln_core::{DType, Tensor};
use kiln_graph::compile;
use kiln_nn::layers::{Linear, ReLU, Sequential};
use kiln_nn::optim::{Adam, AdamConfig, AdamW, AdamWConfig, Optimizer};
use kiln_nn::ModuleBase;
use std::sync::Mutex;

/// Tests that draw from the global generator run one at a time.
static RNG: Mutex<()> = Mutex::new(());

fn mlp() -> Sequential {
    Sequential::new()
        .append(Linear::new(12, 16))
        .append(ReLU::new())
        .append(Linear::new(16, 3))
}

/// Five compiled steps against five eager ones from equal weights; the graph must update
/// every parameter with one `adam_step`.
fn compiled_matches_eager(make_opt: impl Fn(Vec<Tensor>) -> Box<dyn Optimizer>) {
    let (model, eager_model) = (mlp(), mlp());
    copy_params(&model, &eager_model);
    let mut opt = make_opt(model.parameters());
    let mut eager_opt = make_opt(eager_model.parameters());
    let xs = Tensor::randn([8, 12], DType::F32);
    let ys = Tensor::randint(0, 3, [8]);
    let mut step = compile(|b: &[Tensor]| vec![train_step(&model, opt.as_mut(), &b[0], &b[1])]);
    let batch = [xs.clone(), ys.clone()];
    for _ in 0..5 {
        let got = step.call(&batch);
        let want = train_step(&eager_model, eager_opt.as_mut(), &xs, &ys);
        assert!(max_rel_diff(&got[0], &want) < 1e-5);
    }
    for (a, b) in model.parameters().iter().zip(eager_model.parameters()) {
        assert!(
            max_rel_diff(a, &b) < 1e-5,
            "parameters differ after 5 steps"
        );
    }
    let counts = step.graph(&batch).op_counts().get("adam_step").copied();
    assert_eq!(counts, Some(4), "one adam_step per parameter");
}

#[test]
fn every_adam_variant_compiles_to_adam_step_ops_that_match_eager() {
    let _g = RNG.lock().unwrap_or_else(|e| e.into_inner());
    for (wd, amsgrad, maximize) in [(0.0, false, false), (0.1, true, false), (0.05, false, true)] {
        compiled_matches_eager(|p| {
            let c = AdamConfig {
                lr: 1e-2,
                weight_decay: wd,
                amsgrad,
                maximize,
                ..AdamConfig::default()
            };
            Box::new(Adam::with_config(p, c))
        });
        compiled_matches_eager(|p| {
            let c = AdamWConfig {
                lr: 1e-2,
                weight_decay: wd.max(0.01),
                amsgrad,
                maximize,
                ..AdamWConfig::default()
            };
            Box::new(AdamW::with_config(p, c))
        });
    }
}

/// The op writes a moment in place: reads of it recorded after the op see the new value; a
/// read recorded before it makes the trace fall back to tensor ops (graph passes could move
/// such a read past the write).
#[test]
fn moment_reads_around_the_op_see_the_values_eager_code_sees() {
    let p = Tensor::randn([64, 32], DType::F32);
    let m = Tensor::randn([64, 32], DType::F32);
    let v = Tensor::randn([64, 32], DType::F32).abs();
    let step = Tensor::scalar(3.0, DType::F64);
    let lr = Tensor::scalar(0.1, DType::F64);
    let m0 = m.copy();
    let h = AdamHyper::default();
    let mut f = compile(|xs: &[Tensor]| {
        assert!(trace_adam(&p, &xs[0], &m, &v, None, &step, &lr, &h));
        vec![&m * 3.0]
    });
    let g = Tensor::randn([64, 32], DType::F32);
    let out = f.call(std::slice::from_ref(&g));
    assert!(
        max_rel_diff(&out[0], &(&m * 3.0)) < 1e-6,
        "3·m after the update"
    );
    assert!(
        max_rel_diff(&m, &m0) > 1e-3,
        "the moment was updated in place"
    );
    assert_eq!(step.item::<f64>(), 4.0, "the step count advanced");
    let mut refused = compile(|xs: &[Tensor]| {
        let before = &m * 2.0;
        assert!(!trace_adam(&p, &xs[0], &m, &v, None, &step, &lr, &h));
        vec![before]
    });
    refused.call(std::slice::from_ref(&g));
    // Outside a trace the op is not recorded.
    assert!(!trace_adam(&p, &g, &m, &v, None, &step, &lr, &h));
}

/// Dispatched eagerly, the op returns the updated parameter (leaving the parameter itself
/// alone) and updates the moments in place, like the fused kernel on copies.
#[test]
fn eager_dispatch_of_the_op_matches_the_fused_kernel() {
    use kiln_core::ops::fused_optim::{adam_step, AdamStep};
    use kiln_core::ops::{dispatch, Op};
    let p = Tensor::randn([300], DType::F32);
    let g = Tensor::randn([300], DType::F32);
    let (m, v) = (
        Tensor::randn([300], DType::F32),
        Tensor::randn([300], DType::F32).abs(),
    );
    let (step, lr) = (
        Tensor::scalar(2.0, DType::F64),
        Tensor::scalar(0.01, DType::F64),
    );
    let h = AdamHyper {
        weight_decay: 0.1,
        decoupled: true,
        ..AdamHyper::default()
    };
    let (p2, m2, v2) = (p.copy(), m.copy(), v.copy());
    let settings = AdamStep {
        hyper: h,
        lr: 0.01,
        step: 2.0,
    };
    assert!(adam_step(&p2, &g, &m2, &v2, None, &settings));
    let p0 = p.copy();
    let out = dispatch(Op::AdamStep(h), &[&p, &g, &m, &v, &step, &lr]);
    assert_eq!(out.to_vec::<f32>(), p2.to_vec::<f32>());
    assert_eq!(m.to_vec::<f32>(), m2.to_vec::<f32>());
    assert_eq!(v.to_vec::<f32>(), v2.to_vec::<f32>());
    assert_eq!(
        p.to_vec::<f32>(),
        p0.to_vec::<f32>(),
        "the parameter is not written"
    );
}
