//! Gradient checking: analytic gradients from backward against central finite differences,
//! in f64.

use crate::autograd::no_grad;
use crate::dtype::DType;
use crate::random::Generator;
use crate::tensor::Tensor;
use std::fmt;

/// A gradient that disagrees with finite differences.
#[derive(Debug, Clone)]
pub struct GradcheckError {
    /// Which input.
    pub input: usize,
    /// Flat element index in that input.
    pub element: usize,
    /// Gradient from backward.
    pub analytic: f64,
    /// Central-difference estimate.
    pub numeric: f64,
}

impl fmt::Display for GradcheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gradcheck: input {} element {}: analytic {:.8e} vs numeric {:.8e}",
            self.input, self.element, self.analytic, self.numeric
        )
    }
}

impl std::error::Error for GradcheckError {}

/// Checks `f`'s gradients at `inputs` (f64 tensors; those with `requires_grad` are checked).
///
/// The output is contracted with a fixed random vector `v`, so the check covers the whole
/// vector-Jacobian product: analytic `vᵀJ` from `backward_with(v)` against
/// `(⟨v, f(x + εeᵢ)⟩ − ⟨v, f(x − εeᵢ)⟩) / 2ε` for every input element `i`.
pub fn gradcheck(
    f: impl Fn(&[Tensor]) -> Tensor,
    inputs: &[Tensor],
    eps: f64,
    atol: f64,
    rtol: f64,
) -> Result<(), GradcheckError> {
    for (i, t) in inputs.iter().enumerate() {
        if t.requires_grad() && t.dtype() != DType::F64 {
            panic!("gradcheck: input {i} must be f64, got {}", t.dtype());
        }
    }
    let leaves: Vec<Tensor> = inputs
        .iter()
        .map(|t| {
            let c = no_grad(|| t.copy()).detach();
            if t.requires_grad() {
                c.requires_grad_(true);
            }
            c
        })
        .collect();
    let out = f(&leaves);
    let mut gen = Generator::new(1234);
    let v = Tensor::randn_with(out.shape(), DType::F64, &mut gen);
    if out.requires_grad() {
        out.backward_with(&v.to_dtype(out.dtype()));
    }
    let contract = |xs: &[Tensor]| -> f64 {
        no_grad(|| {
            let o = f(xs).to_dtype(DType::F64);
            (&o * &v).sum_all().item::<f64>()
        })
    };
    for (i, leaf) in leaves.iter().enumerate() {
        if !leaf.requires_grad() {
            continue;
        }
        let analytic = leaf
            .grad()
            .map(|g| g.to_f64_vec())
            .unwrap_or_else(|| vec![0.0; leaf.numel()]);
        let base = leaf.to_f64_vec();
        for e in 0..base.len() {
            let probe = |delta: f64| {
                let mut vals = base.clone();
                vals[e] += delta;
                let mut xs = leaves.clone();
                xs[i] = Tensor::from_vec(vals, leaf.shape());
                contract(&xs)
            };
            let numeric = (probe(eps) - probe(-eps)) / (2.0 * eps);
            let a = analytic[e];
            if (a - numeric).abs() > atol + rtol * numeric.abs() {
                return Err(GradcheckError {
                    input: i,
                    element: e,
                    analytic: a,
                    numeric,
                });
            }
        }
    }
    Ok(())
}
