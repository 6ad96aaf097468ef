//! Loading a state runs the constructors' hyper-parameter checks and returns an error
//! instead of panicking; nothing changes when it fails.

use super::{Adagrad, Adam, AdamW, OptimError, Optimizer, OptimizerState, RmsProp, Sgd, SgdConfig};
use kiln_core::{DType, Tensor};
use serde_json::{json, Value};

fn param() -> Tensor {
    Tensor::ones([3], DType::F32).requires_grad_(true)
}

/// `opt`'s state after one step, with `edit` applied to its first parameter group.
fn edited(opt: &mut dyn Optimizer, edit: impl FnOnce(&mut Value)) -> OptimizerState {
    let p = opt.params()[0].clone();
    (&p * &p).sum_all().backward();
    opt.step();
    let mut st = opt.state_dict();
    edit(&mut st.meta["param_groups"][0]);
    st
}

fn assert_rejected(opt: &mut dyn Optimizer, edit: impl FnOnce(&mut Value), message: &str) {
    let st = edited(opt, edit);
    let before = opt.state_dict().meta;
    match opt.load_state_dict(&st) {
        Err(OptimError::InvalidHyperParameter(m)) => assert_eq!(m, message),
        other => panic!("expected InvalidHyperParameter({message:?}), got {other:?}"),
    }
    assert_eq!(
        opt.state_dict().meta,
        before,
        "a refused load changed the optimizer"
    );
}

#[test]
fn loading_invalid_hyper_parameters_is_an_error_with_the_constructors_message() {
    let lr = |v: f64| move |g: &mut Value| g["lr"] = json!(v);
    assert_rejected(
        &mut Adam::new(vec![param()], 1e-3),
        lr(-1.0),
        "Invalid learning rate value: -1",
    );
    assert_rejected(
        &mut Adam::new(vec![param()], 1e-3),
        |g| g["betas"] = json!([2.0, 0.999]),
        "Invalid beta parameter at index 0 value: 2",
    );
    assert_rejected(
        &mut AdamW::new(vec![param()], 1e-3),
        |g| g["lr"] = json!("nan"),
        "Invalid learning rate value: NaN",
    );
    assert_rejected(
        &mut Sgd::with_config(
            vec![param()],
            SgdConfig {
                lr: 0.1,
                momentum: 0.9,
                nesterov: true,
                ..Default::default()
            },
        ),
        |g| g["dampening"] = json!(0.5),
        "Nesterov momentum requires a momentum and zero dampening",
    );
    assert_rejected(
        &mut RmsProp::new(vec![param()], 1e-2),
        |g| g["alpha"] = json!(-0.5),
        "Invalid alpha value: -0.5",
    );
    assert_rejected(
        &mut Adagrad::new(vec![param()], 1e-2),
        |g| g["eps"] = json!(-1e-10),
        "Invalid epsilon value: -0.0000000001",
    );
    assert_rejected(
        &mut Adam::new(vec![param()], 1e-3),
        |g| g["initial_lr"] = json!(-3.0),
        "Invalid initial_lr value: -3",
    );
}

#[test]
fn loading_a_bad_step_count_is_an_error() {
    for bad in [json!(-1.0), json!(2.5), json!("nan"), json!("inf")] {
        let mut opt = Adam::new(vec![param()], 1e-3);
        let mut st = edited(&mut opt, |_| {});
        st.meta["state"]["0"]["step"] = bad.clone();
        let err = opt.load_state_dict(&st).unwrap_err();
        assert!(
            matches!(&err, OptimError::Malformed(m) if m.contains("step count")),
            "{bad}: {err:?}"
        );
    }
}

#[test]
fn the_constructor_still_panics_with_the_same_message() {
    let r = std::panic::catch_unwind(|| Adam::new(vec![param()], -1.0));
    let msg = *r.err().unwrap().downcast::<String>().unwrap();
    assert_eq!(msg, "Invalid learning rate value: -1");
}
