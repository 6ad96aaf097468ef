//! `kiln info`: a checkpoint's tensors, shapes, dtypes and metadata; for a training
//! checkpoint directory also its training state, read the way `--resume` reads it (so an
//! error here means the directory cannot be resumed from).

use super::{model_file, MODEL_KEY};
use crate::data::DataSpec;
use crate::models::ModelSpec;
use crate::record::DataRecord;
use std::collections::HashMap;
use std::path::Path;

/// The class names and training data, read from the metadata, in words. Best effort: the
/// raw metadata is printed above, and a damaged entry must not hide the tensors.
fn summary(meta: &HashMap<String, String>) -> Vec<String> {
    let mut lines = Vec::new();
    let spec = meta
        .get(MODEL_KEY)
        .and_then(|raw| serde_json::from_str(raw).ok())
        .and_then(|v| ModelSpec::from_json(&v).ok());
    if let Some(spec) = spec {
        let names: Vec<String> = (0..spec.classes).map(|c| spec.class_name(c)).collect();
        let what = match spec.class_names {
            Some(_) => "class names",
            None => "class indices",
        };
        lines.push(format!(
            "classes ({} {what}): {}",
            spec.classes,
            names.join(", ")
        ));
        if let Some(features) = &spec.feature_names {
            lines.push(format!("features: {}", features.join(", ")));
        }
    }
    match DataRecord::from_metadata(meta) {
        Ok(Some(r)) => {
            let label = match r.data {
                DataSpec::Csv(_) => format!("label column `{}`, ", r.label_column),
                _ => String::new(),
            };
            lines.push(format!(
                "trained on: {} ({label}split seed {})",
                r.data, r.seed
            ))
        }
        Ok(None) => lines.push("trained on: not recorded".into()),
        Err(e) => lines.push(format!("trained on: {e}")),
    }
    lines
}

/// Runs `kiln info`.
pub fn run(path: &Path) -> Result<(), String> {
    let file = model_file(path);
    let (sd, meta) = kiln_nn::checkpoint::load_with_metadata(&file).map_err(|e| e.to_string())?;
    println!("{}", file.display());
    let mut keys: Vec<&String> = meta.keys().collect();
    keys.sort();
    for k in keys {
        println!("  {k}: {}", meta[k]);
    }
    for line in summary(&meta) {
        println!("{line}");
    }
    let width = sd.keys().map(str::len).max().unwrap_or(4);
    let mut total = 0;
    for (name, t) in sd.iter() {
        total += t.numel();
        println!(
            "  {name:<width$}  {:<16}  {:<5}  {}",
            format!("{:?}", t.shape()),
            t.dtype().name(),
            t.numel()
        );
    }
    println!("{} tensors, {total} elements", sd.len());
    if path.is_dir() && path.join("trainer.safetensors").exists() {
        // `model.safetensors` was read above: only `trainer.safetensors` is read here.
        let loaded =
            kiln_train::checkpoint::load_with_model(path, sd, &meta).map_err(|e| e.to_string())?;
        let s = &loaded.snapshot;
        println!(
            "training state: {} epochs done, {} optimizer steps, {} optimizer state tensors, \
             callbacks: {}",
            s.epochs_done,
            s.global_step,
            loaded.optimizer.tensors.len(),
            s.callbacks.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}
