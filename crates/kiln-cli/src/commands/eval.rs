//! `kiln eval`: loss and accuracy of a checkpoint on a data source's test split.

use super::load_model;
use crate::data::{max_label, DataSpec};
use kiln_data::DataLoader;
use kiln_train::Trainer;
use std::path::Path;

/// Runs `kiln eval`.
pub fn run(
    checkpoint: &Path,
    data: &DataSpec,
    label_column: &str,
    seed: u64,
) -> Result<(), String> {
    let (model, spec, _) = load_model(checkpoint)?;
    let splits = data.load(seed, label_column)?;
    if splits.input != spec.input {
        return Err(format!(
            "the checkpoint expects inputs of shape {:?}, the data has {:?}",
            spec.input, splits.input
        ));
    }
    splits.require(&["test"])?;
    if let Some(max) = max_label(&splits.test).filter(|&m| m >= spec.classes as i64) {
        return Err(format!(
            "{}: the data has label {max} but the model has {} classes (labels 0 to {})",
            splits.name,
            spec.classes,
            spec.classes - 1
        ));
    }
    let n = kiln_data::Dataset::len(&splits.test);
    let logs = Trainer::new().evaluate(&model, &DataLoader::new(splits.test, 256));
    println!(
        "{}: {n} test samples  loss {:.4}  accuracy {:.2}%",
        splits.name,
        logs["loss"],
        logs["accuracy"] * 100.0
    );
    Ok(())
}
