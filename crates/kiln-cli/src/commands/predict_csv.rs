//! `kiln predict CHECKPOINT rows.csv`: a prediction for every row of a CSV file, the accuracy
//! when the file has the label column, and optionally the predictions as a CSV file.

use super::probabilities::{best, probabilities};
use crate::models::ModelSpec;
use crate::rows;
use kiln_core::Tensor;
use kiln_nn::Sequential;
use std::path::Path;

/// Rows per forward pass: bounds memory for large files.
const BATCH: usize = 256;

/// Predicts every row of `file`; `label_column` names its (optional) label column, and
/// `out`, if given, receives the predictions as CSV.
pub fn run(
    model: &Sequential,
    spec: &ModelSpec,
    file: &Path,
    label_column: &str,
    out: Option<&Path>,
) -> Result<(), String> {
    let rows = rows::read(file, spec, label_column)?;
    let per_row: usize = spec.input.iter().product();
    let mut probs = Vec::with_capacity(rows.len * spec.classes);
    for chunk in rows.values.chunks(BATCH * per_row) {
        let scaled: Vec<f32> = chunk.iter().map(|v| v / spec.scale as f32).collect();
        let mut shape = vec![chunk.len() / per_row];
        shape.extend(&spec.input);
        probs.extend(probabilities(model, &Tensor::from_vec(scaled, shape))?);
    }
    let predicted: Vec<(usize, f32)> = probs.chunks(spec.classes).map(best).collect();
    for (i, &(class, p)) in predicted.iter().enumerate() {
        println!(
            "row {}: {} (probability {p:.4})",
            i + 1,
            spec.class_name(class)
        );
    }
    if let Some(labels) = &rows.labels {
        let right = predicted
            .iter()
            .zip(labels)
            .filter(|((c, _), l)| c == *l)
            .count();
        println!(
            "accuracy: {:.2}% ({right} of {} rows, against column `{label_column}`)",
            100.0 * right as f64 / rows.len as f64,
            rows.len
        );
    }
    if let Some(out) = out {
        let csv = to_csv(spec, &predicted, &probs)?;
        kiln_nn::checkpoint::write_atomic(out, &csv)
            .map_err(|e| format!("{}: cannot write: {e}", out.display()))?;
        eprintln!("wrote {} predictions to {}", rows.len, out.display());
    }
    Ok(())
}

/// The predictions as CSV: `row,class,probability`, then one probability column per class
/// (`p_<class>`).
fn to_csv(spec: &ModelSpec, predicted: &[(usize, f32)], probs: &[f32]) -> Result<Vec<u8>, String> {
    // The csv writer quotes class names that hold commas or quotes.
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["row".to_string(), "class".into(), "probability".into()];
    header.extend((0..spec.classes).map(|c| format!("p_{}", spec.class_name(c))));
    let failed = |e: csv::Error| format!("writing the predictions: {e}");
    w.write_record(&header).map_err(failed)?;
    for (i, (&(class, p), all)) in predicted.iter().zip(probs.chunks(spec.classes)).enumerate() {
        let mut record = vec![(i + 1).to_string(), spec.class_name(class), p.to_string()];
        record.extend(all.iter().map(f32::to_string));
        w.write_record(&record).map_err(failed)?;
    }
    w.into_inner()
        .map_err(|e| format!("writing the predictions: {}", e.error()))
}
