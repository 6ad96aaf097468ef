//! Parameter initializers with PyTorch's semantics (`torch.nn.init`): fans, gains and
//! distributions match, and each fills a tensor in place from the global generator.

use kiln_core::{no_grad, DType, Tensor};

/// Which fan a variance-scaling initializer preserves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanMode {
    /// Preserve the variance of activations in the forward pass.
    FanIn,
    /// Preserve the variance of gradients in the backward pass.
    FanOut,
}

/// The non-linearity whose gain `calculate_gain` returns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Nonlinearity {
    /// Linear / identity / conv / sigmoid: gain 1.
    Linear,
    /// Sigmoid: gain 1.
    Sigmoid,
    /// Tanh: gain 5/3.
    Tanh,
    /// ReLU: gain √2.
    Relu,
    /// Leaky ReLU with the given negative slope: gain √(2 / (1 + slope²)).
    LeakyRelu(f64),
    /// SELU: gain 3/4.
    Selu,
}

/// The recommended gain for a non-linearity (PyTorch's `calculate_gain`).
pub fn calculate_gain(nl: Nonlinearity) -> f64 {
    match nl {
        Nonlinearity::Linear | Nonlinearity::Sigmoid => 1.0,
        Nonlinearity::Tanh => 5.0 / 3.0,
        Nonlinearity::Relu => 2f64.sqrt(),
        Nonlinearity::LeakyRelu(s) => (2.0 / (1.0 + s * s)).sqrt(),
        Nonlinearity::Selu => 0.75,
    }
}

/// (fan_in, fan_out) of a weight: dims 1 and 0 times the receptive field (dims 2..).
pub fn fans(t: &Tensor) -> (usize, usize) {
    let s = t.shape();
    if s.len() < 2 {
        panic!("init: fan in and fan out need a tensor with at least 2 dims, got shape {s:?}");
    }
    let receptive: usize = s[2..].iter().product();
    (s[1] * receptive, s[0] * receptive)
}

fn fan(t: &Tensor, mode: FanMode) -> usize {
    let (i, o) = fans(t);
    match mode {
        FanMode::FanIn => i,
        FanMode::FanOut => o,
    }
}

fn fill_from(t: &Tensor, sample: Tensor) -> &Tensor {
    no_grad(|| t.copy_(&sample));
    t
}

fn sample_dtype(t: &Tensor) -> DType {
    if t.dtype() == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

/// Fills with U(a, b).
pub fn uniform_(t: &Tensor, a: f64, b: f64) -> &Tensor {
    fill_from(t, Tensor::rand(t.shape(), sample_dtype(t)).affine(b - a, a))
}

/// Fills with N(mean, std²).
pub fn normal_(t: &Tensor, mean: f64, std: f64) -> &Tensor {
    fill_from(
        t,
        Tensor::randn(t.shape(), sample_dtype(t)).affine(std, mean),
    )
}

/// Fills with a constant.
pub fn constant_(t: &Tensor, v: f64) -> &Tensor {
    no_grad(|| t.fill_(v));
    t
}

/// Fills with zeros.
pub fn zeros_(t: &Tensor) -> &Tensor {
    constant_(t, 0.0)
}

/// Fills with ones.
pub fn ones_(t: &Tensor) -> &Tensor {
    constant_(t, 1.0)
}

/// He/Kaiming uniform: U(−b, b) with b = gain·√(3 / fan), gain from `nonlinearity`
/// (PyTorch's default layer init uses `LeakyRelu(√5)` with fan-in).
pub fn kaiming_uniform_(t: &Tensor, mode: FanMode, nonlinearity: Nonlinearity) -> &Tensor {
    let std = calculate_gain(nonlinearity) / (fan(t, mode) as f64).sqrt();
    let bound = 3f64.sqrt() * std;
    uniform_(t, -bound, bound)
}

/// He/Kaiming normal: N(0, std²) with std = gain / √fan.
pub fn kaiming_normal_(t: &Tensor, mode: FanMode, nonlinearity: Nonlinearity) -> &Tensor {
    let std = calculate_gain(nonlinearity) / (fan(t, mode) as f64).sqrt();
    normal_(t, 0.0, std)
}

/// Glorot/Xavier uniform: U(−b, b) with b = gain·√(6 / (fan_in + fan_out)).
pub fn xavier_uniform_(t: &Tensor, gain: f64) -> &Tensor {
    let (i, o) = fans(t);
    let bound = gain * (6.0 / (i + o) as f64).sqrt();
    uniform_(t, -bound, bound)
}

/// Glorot/Xavier normal: N(0, std²) with std = gain·√(2 / (fan_in + fan_out)).
pub fn xavier_normal_(t: &Tensor, gain: f64) -> &Tensor {
    let (i, o) = fans(t);
    normal_(t, 0.0, gain * (2.0 / (i + o) as f64).sqrt())
}

/// A (semi-)orthogonal matrix scaled by `gain`, from the QR decomposition of a normal sample
/// (rows flattened from dims 1..), with the sign fix PyTorch applies.
pub fn orthogonal_(t: &Tensor, gain: f64) -> &Tensor {
    if t.rank() < 2 {
        panic!(
            "orthogonal_: needs at least 2 dims, got shape {:?}",
            t.shape()
        );
    }
    let rows = t.shape()[0];
    let cols = t.numel() / rows.max(1);
    let flat = Tensor::randn([rows, cols], DType::F64);
    // Work on the tall orientation so Gram–Schmidt produces orthonormal columns.
    let tall = rows >= cols;
    let m = if tall { flat } else { flat.t().contiguous() };
    let (r, c) = (m.shape()[0], m.shape()[1]);
    let a = m.to_vec::<f64>();
    let mut q = vec![0.0; r * c];
    for j in 0..c {
        let mut v: Vec<f64> = (0..r).map(|i| a[i * c + j]).collect();
        for k in 0..j {
            let dot: f64 = (0..r).map(|i| q[i * c + k] * v[i]).sum();
            for i in 0..r {
                v[i] -= dot * q[i * c + k];
            }
        }
        // Sign of R's diagonal entry (= the norm here, positive) keeps the distribution uniform.
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
        for i in 0..r {
            q[i * c + j] = v[i] / norm;
        }
    }
    let q = Tensor::from_vec(q, [r, c]);
    let q = if tall { q } else { q.t().contiguous() };
    fill_from(t, q.reshape(t.shape()).mul_scalar(gain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kaiming_uniform_respects_bound() {
        let w = Tensor::zeros([64, 100], DType::F32);
        kaiming_uniform_(&w, FanMode::FanIn, Nonlinearity::LeakyRelu(5f64.sqrt()));
        let bound = 1.0 / 10.0; // gain √(2/6) · √(3/100)
        let v = w.to_vec::<f32>();
        assert!(v.iter().all(|x| x.abs() <= bound as f32 + 1e-6));
        assert!(v.iter().any(|x| x.abs() > 0.9 * bound as f32));
    }

    #[test]
    fn orthogonal_rows_are_orthonormal() {
        for shape in [[3, 5], [5, 3]] {
            let w = Tensor::zeros(shape, DType::F64);
            orthogonal_(&w, 1.0);
            let g = if shape[0] <= shape[1] {
                w.matmul(&w.t())
            } else {
                w.t().matmul(&w)
            };
            let n = g.shape()[0];
            let eye = Tensor::eye(n, DType::F64);
            let err = (&g - &eye).abs().max_all().item::<f64>();
            assert!(err < 1e-10, "{shape:?}: {err}");
        }
    }

    #[test]
    fn fans_include_receptive_field() {
        assert_eq!(fans(&Tensor::zeros([8, 4, 3, 3], DType::F32)), (36, 72));
    }
}
