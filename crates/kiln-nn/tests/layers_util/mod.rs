//! Helpers shared by the `layers_*` integration tests.
#![allow(dead_code)]

use kiln_core::autograd::gradcheck;
use kiln_core::{no_grad, DType, Generator, Tensor};
use kiln_nn::{checkpoint, ModuleBase, StateDict};
use std::path::PathBuf;

/// `tests/fixtures/layers`, written by `make_layer_fixtures.py`.
pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/layers")
}

/// The PyTorch state dict and the inputs/outputs of fixture `name`.
pub fn load_case(name: &str) -> (StateDict, StateDict) {
    let dir = fixture_dir();
    let sd = checkpoint::load(dir.join(format!("{name}.safetensors")))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let io = checkpoint::load(dir.join(format!("{name}_io.safetensors")))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    (sd, io)
}

/// Only the inputs/outputs of fixture `name` (parameter-free cases).
pub fn load_io(name: &str) -> StateDict {
    checkpoint::load(fixture_dir().join(format!("{name}_io.safetensors")))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Loads fixture `name`'s state dict strictly into `model`; returns the io tensors.
pub fn load_into(model: &dyn ModuleBase, name: &str) -> StateDict {
    let (sd, io) = load_case(name);
    model
        .load_state_dict(&sd, true)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    io
}

/// The io tensor `key`.
pub fn get(io: &StateDict, key: &str) -> Tensor {
    io.get(key)
        .unwrap_or_else(|| panic!("fixture has no `{key}`"))
        .clone()
}

/// Largest |a − b|.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.shape(), b.shape(), "shapes differ");
    a.to_f64_vec()
        .iter()
        .zip(b.to_f64_vec())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Asserts same shape and |a − b| ≤ tol elementwise.
pub fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: f64) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let d = max_abs_diff(got, want);
    eprintln!("{what}: max abs diff {d:.3e}");
    assert!(d <= tol, "{what}: max abs diff {d:e} > {tol:e}");
}

/// An f64 tensor of N(0, 1) samples from a fixed generator.
pub fn randn64(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn_with(shape, DType::F64, &mut Generator::new(seed))
}

/// Gradcheck of `f` with respect to its input `x` (f64).
pub fn check_input_grad(what: &str, x: &Tensor, f: impl Fn(&Tensor) -> Tensor) {
    let x = x.detach().requires_grad_(true);
    gradcheck(|xs| f(&xs[0]), &[x], 1e-6, 1e-5, 1e-4).unwrap_or_else(|e| panic!("{what}: {e}"));
}

/// Finite-difference check of the gradients of every parameter of `module` (f64) for the
/// scalar `⟨v, f()⟩` with a fixed random `v`: backward gives the analytic gradients, then each
/// parameter element is nudged in place by ±eps.
pub fn check_param_grads(what: &str, module: &dyn ModuleBase, f: impl Fn() -> Tensor) {
    let out = f();
    let v = Tensor::randn_with(out.shape(), DType::F64, &mut Generator::new(99));
    module.zero_grad();
    (&out * &v).sum_all().backward();
    let eps = 1e-6;
    let value = || no_grad(|| (&f() * &v).sum_all().item::<f64>());
    for (name, p) in module.named_parameters() {
        assert_eq!(p.dtype(), DType::F64, "{what}: {name} is not f64");
        let analytic = p
            .grad()
            .map(|g| g.to_f64_vec())
            .unwrap_or_else(|| vec![0.0; p.numel()]);
        let flat = p.detach().reshape([p.numel()]);
        for (i, &a) in analytic.iter().enumerate() {
            let e = flat.narrow(0, i, 1);
            let orig = e.item::<f64>();
            no_grad(|| e.fill_(orig + eps));
            let up = value();
            no_grad(|| e.fill_(orig - eps));
            let down = value();
            no_grad(|| e.fill_(orig));
            let numeric = (up - down) / (2.0 * eps);
            assert!(
                (a - numeric).abs() <= 1e-5 + 1e-4 * numeric.abs(),
                "{what}: parameter {name}[{i}]: analytic {a:e} vs numeric {numeric:e}"
            );
        }
    }
    module.zero_grad();
}
