//! A model's class probabilities for one input, and the most probable class: what `kiln
//! predict` prints for a single input and for each row of a CSV file.

use kiln_core::nn::functional::softmax;
use kiln_core::{no_grad, Tensor};
use kiln_nn::{Module, Sequential};

/// The class probabilities of a batch `x`, row after row; an error if one is not finite.
pub fn probabilities(model: &Sequential, x: &Tensor) -> Result<Vec<f32>, String> {
    let probs = no_grad(|| softmax(&model.forward(x), -1)).to_vec::<f32>();
    if let Some(bad) = probs.iter().find(|p| !p.is_finite()) {
        return Err(format!(
            "the model's output is not finite ({bad}); are the checkpoint's weights finite?"
        ));
    }
    Ok(probs)
}

/// The most probable class of one row of probabilities, and its probability.
pub fn best(probs: &[f32]) -> (usize, f32) {
    probs
        .iter()
        .enumerate()
        .fold((0, f32::MIN), |b, (i, &p)| if p > b.1 { (i, p) } else { b })
}
