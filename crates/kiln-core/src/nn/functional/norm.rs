//! Normalization: layer, RMS, group and batch norm (with running statistics updated in place).

use crate::autograd::no_grad;
use crate::tensor::Tensor;

/// `(x − mean) / sqrt(var + eps)` over the last `k` dims (biased variance), then `· weight +
/// bias` when both are given (shaped like those dims), as one fused
/// [`crate::ops::Op::LayerNorm`] over the dims merged into one.
#[track_caller]
fn standardize_trailing(
    x: &Tensor,
    k: usize,
    eps: f64,
    affine: Option<(&Tensor, &Tensor)>,
) -> Tensor {
    let op = crate::ops::Op::LayerNorm { eps };
    let d: usize = x.shape()[x.rank() - k..].iter().product();
    let params = affine.map(|(w, b)| (w.reshape([d]), b.reshape([d])));
    let run = |x: &Tensor| match &params {
        Some((w, b)) => crate::ops::dispatch(op.clone(), &[x, w, b]),
        None => crate::ops::dispatch(op.clone(), &[x]),
    };
    if k == 1 {
        return run(x);
    }
    let mut merged: Vec<usize> = x.shape()[..x.rank() - k].to_vec();
    merged.push(d);
    run(&x.reshape(merged)).reshape(x.shape())
}

/// The last `k` dims of `x`, checked to equal `normalized_shape`.
#[track_caller]
fn trailing_dims(x: &Tensor, normalized_shape: &[usize], op: &str) -> Vec<usize> {
    let k = normalized_shape.len();
    if k == 0 || k > x.rank() || &x.shape()[x.rank() - k..] != normalized_shape {
        panic!(
            "{op}: normalized_shape {normalized_shape:?} must be a non-empty suffix of the input shape {:?}",
            x.shape()
        );
    }
    (x.rank() - k..x.rank()).collect()
}

#[track_caller]
fn check_param(p: Option<&Tensor>, shape: &[usize], what: &str, op: &str) {
    if let Some(t) = p {
        if t.shape() != shape {
            panic!(
                "{op}: {what} must have shape {shape:?}, got {:?}",
                t.shape()
            );
        }
    }
}

#[track_caller]
fn affine(x: Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>) -> Tensor {
    let x = match weight {
        Some(w) => &x * w,
        None => x,
    };
    match bias {
        Some(b) => &x + b,
        None => x,
    }
}

/// Layer normalization over the trailing `normalized_shape` dims with optional elementwise
/// `weight` and `bias` of that shape, like `F.layer_norm` (PyTorch's default `eps` is 1e−5).
#[track_caller]
pub fn layer_norm(
    input: &Tensor,
    normalized_shape: &[usize],
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Tensor {
    let dims = trailing_dims(input, normalized_shape, "layer_norm");
    check_param(weight, normalized_shape, "weight", "layer_norm");
    check_param(bias, normalized_shape, "bias", "layer_norm");
    match (weight, bias) {
        (Some(w), Some(b)) => standardize_trailing(input, dims.len(), eps, Some((w, b))),
        _ => affine(
            standardize_trailing(input, dims.len(), eps, None),
            weight,
            bias,
        ),
    }
}

/// RMS normalization `x / sqrt(mean(x²) + eps) · weight` over the trailing `normalized_shape`
/// dims, like `F.rms_norm`.
#[track_caller]
pub fn rms_norm(
    input: &Tensor,
    normalized_shape: &[usize],
    weight: Option<&Tensor>,
    eps: f64,
) -> Tensor {
    let dims = trailing_dims(input, normalized_shape, "rms_norm");
    check_param(weight, normalized_shape, "weight", "rms_norm");
    let ms = input.square().mean(dims.as_slice(), true);
    affine(input * &ms.add_scalar(eps).rsqrt(), weight, None)
}

/// Shape `[1, C, 1, …]` that broadcasts a per-channel `[C]` tensor against `x` (`[N, C, …]`).
fn channel_shape(x: &Tensor) -> Vec<usize> {
    let mut s = vec![1usize; x.rank()];
    s[1] = x.shape()[1];
    s
}

#[track_caller]
fn channel_affine(
    x: Tensor,
    like: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
) -> Tensor {
    let shape = channel_shape(like);
    affine(
        x,
        weight.map(|w| w.reshape(shape.as_slice())).as_ref(),
        bias.map(|b| b.reshape(shape.as_slice())).as_ref(),
    )
}

#[track_caller]
fn check_channels(input: &Tensor, op: &str) -> usize {
    if input.rank() < 2 {
        panic!(
            "{op}: expected an input of shape [N, C, …], got {:?}",
            input.shape()
        );
    }
    input.shape()[1]
}

/// Group normalization of `[N, C, …]` over `num_groups` groups of channels (statistics per
/// sample and group), with optional per-channel `weight` and `bias`, like `F.group_norm`.
#[track_caller]
pub fn group_norm(
    input: &Tensor,
    num_groups: usize,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Tensor {
    let c = check_channels(input, "group_norm");
    if num_groups == 0 || !c.is_multiple_of(num_groups) {
        panic!("group_norm: {c} channels cannot be split into {num_groups} groups");
    }
    check_param(weight, &[c], "weight", "group_norm");
    check_param(bias, &[c], "bias", "group_norm");
    let n = input.shape()[0];
    let grouped = input.reshape([n, num_groups, input.numel() / (n * num_groups).max(1)]);
    let normed = standardize_trailing(&grouped, 1, eps, None).reshape(input.shape());
    channel_affine(normed, input, weight, bias)
}

/// Batch normalization of `[N, C]`, `[N, C, L]` or `[N, C, H, W]` with per-channel statistics,
/// like `F.batch_norm`.
///
/// In training the batch statistics normalize (biased variance) and, when given, the running
/// statistics are updated in place: `running = (1 − momentum)·running + momentum·batch`, with
/// the unbiased batch variance for `running_var`, as PyTorch does. In evaluation the running
/// statistics normalize.
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn batch_norm(
    input: &Tensor,
    running_mean: Option<&Tensor>,
    running_var: Option<&Tensor>,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    training: bool,
    momentum: f64,
    eps: f64,
) -> Tensor {
    let c = check_channels(input, "batch_norm");
    check_param(running_mean, &[c], "running_mean", "batch_norm");
    check_param(running_var, &[c], "running_var", "batch_norm");
    check_param(weight, &[c], "weight", "batch_norm");
    check_param(bias, &[c], "bias", "batch_norm");
    let shape = channel_shape(input);
    let normed = if training {
        let dims: Vec<usize> = (0..input.rank()).filter(|&d| d != 1).collect();
        let count = input.numel() / c.max(1);
        if count <= 1 {
            panic!(
                "batch_norm: expected more than 1 value per channel when training, got input {:?}",
                input.shape()
            );
        }
        let mean = input.mean(dims.as_slice(), true);
        let centered = input - &mean;
        let var = centered.square().mean(dims.as_slice(), true);
        no_grad(|| {
            if let Some(rm) = running_mean {
                rm.mul_scalar_(1.0 - momentum)
                    .add_scaled_(&mean.detach().reshape([c]), momentum);
            }
            if let Some(rv) = running_var {
                let unbiased = count as f64 / (count - 1) as f64;
                rv.mul_scalar_(1.0 - momentum)
                    .add_scaled_(&var.detach().reshape([c]), momentum * unbiased);
            }
        });
        &centered * &var.add_scalar(eps).rsqrt()
    } else {
        let (Some(rm), Some(rv)) = (running_mean, running_var) else {
            panic!("batch_norm: running_mean and running_var must be given in evaluation mode");
        };
        let mean = rm.reshape(shape.as_slice());
        let inv_std = rv.reshape(shape.as_slice()).add_scalar(eps).rsqrt();
        &(input - &mean) * &inv_std
    };
    channel_affine(normed, input, weight, bias)
}
