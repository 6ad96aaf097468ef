//! `kiln predict`: the predicted class and probabilities for one CSV row or image.

use super::load_model;
use crate::models::ModelSpec;
use kiln_core::nn::functional::softmax;
use kiln_core::{no_grad, Tensor};
use kiln_nn::Module;
use std::path::Path;

fn parse_row(input: &str, spec: &ModelSpec) -> Result<Tensor, String> {
    let vals: Vec<f32> = input
        .split(',')
        .enumerate()
        .map(|(i, v)| match v.trim().parse::<f32>() {
            Ok(x) if x.is_finite() => Ok(x),
            Ok(_) => Err(format!(
                "input value {} (`{}`) is not a finite number",
                i + 1,
                v.trim()
            )),
            Err(_) => Err(format!("`{}` is not a number", v.trim())),
        })
        .collect::<Result<_, _>>()?;
    let want: usize = spec.input.iter().product();
    if vals.len() != want {
        return Err(format!(
            "the model takes {want} values per input, the row has {}",
            vals.len()
        ));
    }
    let scaled: Vec<f32> = vals.iter().map(|v| v / spec.scale as f32).collect();
    let mut shape = vec![1];
    shape.extend(&spec.input);
    Ok(Tensor::from_vec(scaled, shape))
}

fn load_image(path: &Path, spec: &ModelSpec) -> Result<Tensor, String> {
    let [c, h, w] = spec.input[..] else {
        return Err(format!(
            "this model takes {:?} inputs, not images",
            spec.input
        ));
    };
    let img = image::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let img = img.resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle);
    let data: Vec<f32> = match c {
        1 => img
            .to_luma8()
            .into_raw()
            .iter()
            .map(|&p| p as f32 / 255.0)
            .collect(),
        3 => {
            let rgb = img.to_rgb8();
            // HWC → CHW
            (0..3)
                .flat_map(|ch| {
                    rgb.pixels()
                        .map(move |p| p.0[ch] as f32 / 255.0)
                        .collect::<Vec<_>>()
                })
                .collect()
        }
        _ => return Err(format!("images with {c} channels are not supported")),
    };
    Ok(Tensor::from_vec(data, [1, c, h, w]))
}

/// Runs `kiln predict`.
pub fn run(checkpoint: &Path, input: &str) -> Result<(), String> {
    let (model, spec, _) = load_model(checkpoint)?;
    let as_path = Path::new(input);
    let x = if as_path.is_file() {
        load_image(as_path, &spec)?
    } else {
        parse_row(input, &spec)?
    };
    let probs = no_grad(|| softmax(&model.forward(&x), -1)).to_vec::<f32>();
    if let Some(bad) = probs.iter().find(|p| !p.is_finite()) {
        return Err(format!(
            "the model's output is not finite ({bad}); are the checkpoint's weights finite?"
        ));
    }
    let (best, p) = probs
        .iter()
        .enumerate()
        .fold((0, f32::MIN), |b, (i, &p)| if p > b.1 { (i, p) } else { b });
    println!("class {best} (probability {p:.4})");
    let all: Vec<String> = probs
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{i}: {p:.4}"))
        .collect();
    println!("probabilities: {}", all.join("  "));
    Ok(())
}
