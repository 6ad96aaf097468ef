//! `kiln info`: a checkpoint's tensors, shapes, dtypes and metadata; for a training
//! checkpoint directory also its training state, read the way `--resume` reads it (so an
//! error here means the directory cannot be resumed from).

use super::model_file;
use std::path::Path;

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
