//! `kiln predict`: the predicted class and probabilities for one row of numbers or an image;
//! a CSV file of rows goes to [`super::predict_csv`].

use super::predict_input::{classify, Input};
use super::probabilities::{best, probabilities};
use super::{load_model, predict_csv};
use crate::models::ModelSpec;
use crate::record::DataRecord;
use clap::Args;
use kiln_core::Tensor;
use std::path::{Path, PathBuf};

/// Options of `kiln predict`.
#[derive(Args, Debug)]
pub struct PredictArgs {
    /// Checkpoint directory or model.safetensors.
    checkpoint: PathBuf,
    /// What to predict: a comma-separated row of input values (raw scale; it may start with
    /// a minus sign, `-1.5,2`), a PNG/JPEG path, or a CSV file (*.csv) with a header row,
    /// one prediction per row: columns are matched by name to the training features when
    /// the checkpoint records them, else by position.
    #[arg(allow_hyphen_values = true)]
    input: String,
    /// For a CSV file: the label column, read to report accuracy instead of as a feature
    /// (default: the one used in training, else `label`; the file need not have it).
    #[arg(long)]
    label_column: Option<String>,
    /// For a CSV file: also write the predictions to this CSV file (row, class, probability,
    /// then one probability column per class), replaced as a whole.
    #[arg(long)]
    out: Option<PathBuf>,
}

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
pub fn run(args: PredictArgs) -> Result<(), String> {
    // The input is classified first: a directory or a stray file is refused before the
    // checkpoint is read.
    let input = classify(&args.input).map_err(|e| e.to_string())?;
    if !matches!(input, Input::Csv(_)) {
        let csv_only = [
            ("--out", args.out.is_some()),
            ("--label-column", args.label_column.is_some()),
        ];
        if let Some((flag, _)) = csv_only.iter().find(|(_, given)| *given) {
            return Err(format!(
                "{flag} is for a CSV file of rows; `{}` is a single input",
                args.input
            ));
        }
    }
    let (model, spec, meta) = load_model(&args.checkpoint)?;
    let x = match input {
        Input::Csv(file) => {
            // The label column is only for scoring, so a damaged record just means `label`.
            let recorded = DataRecord::from_metadata(&meta).ok().flatten();
            let label_column = args
                .label_column
                .or(recorded.map(|r| r.label_column))
                .unwrap_or_else(|| "label".into());
            return predict_csv::run(&model, &spec, &file, &label_column, args.out.as_deref());
        }
        Input::Image(path) => load_image(&path, &spec)?,
        Input::Row(row) => parse_row(&row, &spec)?,
    };
    let probs = probabilities(&model, &x)?;
    let (class, p) = best(&probs);
    println!("class {} (probability {p:.4})", spec.class_name(class));
    let all: Vec<String> = probs
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}: {p:.4}", spec.class_name(i)))
        .collect();
    println!("probabilities: {}", all.join("  "));
    Ok(())
}
