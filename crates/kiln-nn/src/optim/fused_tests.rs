//! The fused single-pass updates against the composite tensor-op path (the one a traced step
//! records): same parameters, states and gradients, several steps, every option combination,
//! f32 and f64, small parameters (inline loop) and large ones (chunks on the thread pool).

use super::core::composite_only;
use super::*;
use kiln_core::{manual_seed, no_grad, DType, Tensor};

/// Shapes: tiny, odd-sized, and above two grains (split across the pool).
const SHAPES: &[&[usize]] = &[&[3], &[7, 13], &[300, 251]];
const STEPS: usize = 4;

fn tol(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => 1e-6,
        _ => 1e-12,
    }
}

/// Largest elementwise relative difference (an absolute floor keeps exact zeros comparable).
fn max_rel(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a.to_f64_vec(), b.to_f64_vec());
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| {
            if x == y {
                0.0
            } else {
                (x - y).abs() / y.abs().max(1e-30)
            }
        })
        .fold(0.0, f64::max)
}

fn params(dtype: DType) -> Vec<Tensor> {
    SHAPES
        .iter()
        .map(|s| Tensor::randn(*s, dtype).requires_grad_(true))
        .collect()
}

fn copies(ps: &[Tensor]) -> Vec<Tensor> {
    no_grad(|| ps.iter().map(|p| p.copy().requires_grad_(true)).collect())
}

/// Runs `STEPS` steps of a fused and a composite optimizer built by `make` from the same
/// starting parameters and gradients, comparing parameters and state after every step.
fn agree(what: &str, make: &dyn Fn(Vec<Tensor>) -> Box<dyn Optimizer>) {
    for dtype in [DType::F32, DType::F64] {
        manual_seed(7);
        let fused_ps = params(dtype);
        let comp_ps = copies(&fused_ps);
        let mut fused = make(fused_ps.clone());
        let mut comp = make(comp_ps.clone());
        for step in 0..STEPS {
            for (f, c) in fused_ps.iter().zip(&comp_ps) {
                let g = Tensor::randn(f.shape(), dtype);
                f.set_grad(Some(g.clone()));
                c.set_grad(Some(no_grad(|| g.copy())));
            }
            fused.step();
            composite_only(|| comp.step());
            let ctx = format!("{what} {dtype} step {step}");
            for (i, (f, c)) in fused_ps.iter().zip(&comp_ps).enumerate() {
                let e = max_rel(f, c);
                assert!(e <= tol(dtype), "{ctx}: param {i} differs by {e:e}");
            }
            let (sf, sc) = (fused.state_dict(), comp.state_dict());
            assert_eq!(sf.meta, sc.meta, "{ctx}: state metadata");
            let names: Vec<String> = sc.tensors.keys().map(String::from).collect();
            assert_eq!(
                sf.tensors.keys().map(String::from).collect::<Vec<_>>(),
                names,
                "{ctx}: state names"
            );
            for name in &names {
                let e = max_rel(sf.tensors.get(name).unwrap(), sc.tensors.get(name).unwrap());
                assert!(e <= tol(dtype), "{ctx}: {name} differs by {e:e}");
            }
        }
    }
}

#[test]
fn adam_fused_matches_composite() {
    for amsgrad in [false, true] {
        for maximize in [false, true] {
            for weight_decay in [0.0, 0.1, 1.0] {
                let config = AdamConfig {
                    lr: 1e-2,
                    weight_decay,
                    amsgrad,
                    maximize,
                    ..AdamConfig::default()
                };
                agree(&format!("adam {config:?}"), &|ps| {
                    Box::new(Adam::with_config(ps, config))
                });
            }
        }
    }
    // β₁ ≥ 0.5 takes lerp's other branch.
    let config = AdamConfig {
        betas: (0.3, 0.5),
        ..AdamConfig::default()
    };
    agree("adam small beta1", &|ps| {
        Box::new(Adam::with_config(ps, config))
    });
}

#[test]
fn adamw_fused_matches_composite() {
    for amsgrad in [false, true] {
        for maximize in [false, true] {
            for weight_decay in [0.0, 0.01, 0.5] {
                let config = AdamWConfig {
                    lr: 1e-2,
                    weight_decay,
                    amsgrad,
                    maximize,
                    ..AdamWConfig::default()
                };
                agree(&format!("adamw {config:?}"), &|ps| {
                    Box::new(AdamW::with_config(ps, config))
                });
            }
        }
    }
}

#[test]
fn sgd_fused_matches_composite() {
    for momentum in [0.0, 0.9, 1.0] {
        for dampening in [0.0, 0.25] {
            for nesterov in [false, true] {
                if nesterov && (momentum == 0.0 || dampening != 0.0) {
                    continue;
                }
                for weight_decay in [0.0, 0.1, 1.0] {
                    for maximize in [false, true] {
                        let config = SgdConfig {
                            lr: 0.05,
                            momentum,
                            dampening,
                            weight_decay,
                            nesterov,
                            maximize,
                        };
                        agree(&format!("sgd {config:?}"), &|ps| {
                            Box::new(Sgd::with_config(ps, config))
                        });
                    }
                }
            }
        }
    }
}

#[test]
fn rmsprop_fused_matches_composite() {
    for momentum in [0.0, 0.9] {
        for centered in [false, true] {
            for weight_decay in [0.0, 0.1] {
                for maximize in [false, true] {
                    let config = RmsPropConfig {
                        momentum,
                        centered,
                        weight_decay,
                        maximize,
                        ..RmsPropConfig::default()
                    };
                    agree(&format!("rmsprop {config:?}"), &|ps| {
                        Box::new(RmsProp::with_config(ps, config))
                    });
                }
            }
        }
    }
    // α ≤ 0.5: the centered average takes lerp's other branch.
    let config = RmsPropConfig {
        alpha: 0.3,
        centered: true,
        ..RmsPropConfig::default()
    };
    agree("rmsprop small alpha", &|ps| {
        Box::new(RmsProp::with_config(ps, config))
    });
}

#[test]
fn adagrad_fused_matches_composite() {
    for lr_decay in [0.0, 0.1] {
        for weight_decay in [0.0, 0.1] {
            for maximize in [false, true] {
                let config = AdagradConfig {
                    lr_decay,
                    weight_decay,
                    maximize,
                    initial_accumulator_value: 0.1,
                    ..AdagradConfig::default()
                };
                agree(&format!("adagrad {config:?}"), &|ps| {
                    Box::new(Adagrad::with_config(ps, config))
                });
            }
        }
    }
}

#[test]
fn composite_only_really_switches_paths() {
    // If the switch did nothing, the agreement tests would compare the fused path with itself.
    assert!(super::core::use_fused());
    composite_only(|| assert!(!super::core::use_fused()));
    assert!(super::core::use_fused());
}
