//! One module per subcommand, plus loading a checkpointed model.

pub mod eval;
pub mod export;
pub mod info;
pub mod predict;
pub mod predict_csv;
pub mod predict_input;
pub mod probabilities;
pub mod serve;
pub mod train;

use crate::models::ModelSpec;
use kiln_nn::{ModuleBase, Sequential};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Metadata key holding the [`ModelSpec`] in `model.safetensors`.
pub const MODEL_KEY: &str = "kiln.model";

/// `dir/model.safetensors` for a checkpoint directory, or the file itself.
pub fn model_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("model.safetensors")
    } else {
        path.to_path_buf()
    }
}

/// Rebuilds the model a checkpoint was trained as and loads its weights (eval mode).
pub fn load_model(path: &Path) -> Result<(Sequential, ModelSpec, HashMap<String, String>), String> {
    let file = model_file(path);
    let (sd, meta) = kiln_nn::checkpoint::load_with_metadata(&file).map_err(|e| e.to_string())?;
    let raw = meta.get(MODEL_KEY).ok_or_else(|| {
        format!(
            "{}: no `{MODEL_KEY}` metadata; was it written by `kiln train`?",
            file.display()
        )
    })?;
    let spec = serde_json::from_str(raw)
        .map_err(|e| e.to_string())
        .and_then(|v| ModelSpec::from_json(&v))
        .map_err(|e| format!("{}: bad `{MODEL_KEY}` metadata: {e}", file.display()))?;
    let model = spec.build()?;
    model
        .load_state_dict(&sd, true)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    model.eval();
    Ok((model, spec, meta))
}
