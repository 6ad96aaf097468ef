//! Reading a labelled CSV table for training or evaluation: labels that are class indices
//! (`0`, `1`, …) or class names (`setosa`, …) are told apart by looking at them, and when a
//! checkpoint is evaluated, its feature columns and class names decide how the file is read.

use crate::models::ModelSpec;
use kiln_core::Tensor;
use kiln_data::csv::{self, CsvData, CsvOptions, LabelKind};
use std::path::Path;

/// Reads `file` with labels in `label_column`, as class indices `i64 [N]`.
///
/// Labels that all read as numbers are class indices, as they always were (a negative or
/// fractional one is an error naming its line); otherwise they are class names, numbered in
/// sorted order, and [`CsvData::class_names`] holds them. With `model`, only the model's
/// feature columns are read, in its order, and class names are numbered as the model numbers
/// them.
pub fn load(file: &Path, label_column: &str, model: Option<&ModelSpec>) -> Result<CsvData, String> {
    let mut options = CsvOptions::new(label_column);
    if let Some(names) = model.and_then(|m| m.feature_names.clone()) {
        options = options.features(names);
    }
    // Read as names first: every label cell is then kept as text, and one look at the
    // distinct values decides what they are, without reading the file twice.
    let mut data = csv::load(file, &options.clone().label_kind(LabelKind::Named))
        .map_err(|e| e.to_string())?;
    let names = data.class_names.take().unwrap_or_default();
    if names.iter().all(|n| n.parse::<f64>().is_ok()) {
        data.labels = match class_indices(&data.labels, &names) {
            Some(labels) => labels,
            // A number that is no class index (-1, 2.5, NaN): read again as indices for the
            // reader's own error, which names the line.
            None => {
                let e = csv::load(file, &options)
                    .err()
                    .map_or_else(|| "labels must be class indices".into(), |e| e.to_string());
                return Err(e);
            }
        };
        if let Some(classes) = model
            .and_then(|m| m.class_names.as_ref())
            .filter(|_| !names.is_empty())
        {
            return Err(format!(
                "{}: label column `{label_column}` holds class indices, but the model was \
                 trained on class names ({})",
                file.display(),
                classes.join(", ")
            ));
        }
        return Ok(data);
    }
    if let Some(model) = model {
        data.labels = to_model_classes(file, label_column, &data.labels, &names, model)?;
        data.class_names = model.class_names.clone();
    } else {
        data.class_names = Some(names);
    }
    Ok(data)
}

/// The labels as the numbers their names spell (`None` if one is not an index ≥ 0).
fn class_indices(labels: &Tensor, names: &[String]) -> Option<Tensor> {
    let values: Vec<i64> = names
        .iter()
        .map(|n| n.parse::<i64>().ok().filter(|&v| v >= 0))
        .collect::<Option<_>>()?;
    let labels: Vec<i64> = labels
        .to_vec::<i64>()
        .iter()
        .map(|&i| values[i as usize])
        .collect();
    let n = labels.len();
    Some(Tensor::from_vec(labels, [n]))
}

/// Renumbers labels indexing `names` (the file's classes) as the model numbers its classes:
/// a file need not hold every class, and its own sorted order would then differ.
fn to_model_classes(
    file: &Path,
    label_column: &str,
    labels: &Tensor,
    names: &[String],
    model: &ModelSpec,
) -> Result<Tensor, String> {
    let Some(classes) = &model.class_names else {
        return Err(format!(
            "{}: label column `{label_column}` holds class names ({}), but the model was \
             trained on class indices 0 to {}",
            file.display(),
            names.join(", "),
            model.classes - 1
        ));
    };
    let ids = names
        .iter()
        .map(|n| {
            classes.iter().position(|c| c == n).ok_or_else(|| {
                format!(
                    "{}: class `{n}` in label column `{label_column}` is not one of the \
                     model's classes ({})",
                    file.display(),
                    classes.join(", ")
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let labels: Vec<i64> = labels
        .to_vec::<i64>()
        .iter()
        .map(|&i| ids[i as usize] as i64)
        .collect();
    let n = labels.len();
    Ok(Tensor::from_vec(labels, [n]))
}
