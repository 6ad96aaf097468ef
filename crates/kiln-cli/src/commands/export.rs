//! `kiln export`: a checkpoint of `kiln train` as a graph file that `kiln serve` (or any
//! program linking the runtime) runs at every batch size, without the model's code.

use super::load_model;
use clap::Args;
use kiln_core::nn::functional::softmax;
use kiln_core::{no_grad, DType, Tensor};
use kiln_graph::compile;
use kiln_nn::Module;
use std::path::{Path, PathBuf};

/// The graph's tensor names, written to the model's `config.toml`.
const CONFIG: &str = "# Written by `kiln export`: the graph's tensor names.\n\
                      inputs = [\"input\"]\noutputs = [\"logits\", \"probabilities\"]\n";

/// Options of `kiln export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A `kiln train` run directory (its best checkpoint is exported, else its last), or a
    /// checkpoint directory or model.safetensors.
    pub source: PathBuf,
    /// The version directory to write, `REPO/<model>/<version>`: `model.kgraph` goes in it,
    /// and `REPO/<model>/config.toml` names the tensors unless it exists.
    #[arg(long)]
    pub out: PathBuf,
}

/// The checkpoint a path names: a run directory's best (or last) checkpoint, or the path.
pub fn checkpoint_of(source: &Path) -> Result<PathBuf, String> {
    let checkpoints = source.join("checkpoints");
    if checkpoints.is_dir() {
        return ["best", "last"]
            .iter()
            .map(|c| checkpoints.join(c))
            .find(|c| c.join("model.safetensors").is_file())
            .ok_or_else(|| {
                format!(
                    "{}: no checkpoints/best or checkpoints/last with a model.safetensors",
                    source.display()
                )
            });
    }
    Ok(source.to_path_buf())
}

/// Writes `checkpoint`'s model as `version_dir/model.kgraph`: raw inputs in (divided by the
/// training scale inside the graph, as `kiln predict` does), logits and class probabilities
/// out, with a symbolic batch dim. Returns the file written.
pub fn export(checkpoint: &Path, version_dir: &Path) -> Result<PathBuf, String> {
    let (model, spec, _) = load_model(checkpoint)?;
    let scale = spec.scale;
    let mut example = vec![1];
    example.extend(&spec.input);
    let graph = no_grad(|| {
        compile(|x: &[Tensor]| {
            let logits = model.forward(&x[0].div_scalar(scale));
            let probabilities = softmax(&logits, -1);
            vec![logits, probabilities]
        })
        .dynamic_batch()
        .dynamic_graph(&[Tensor::zeros(example, DType::F32)])
    })
    .ok_or("the model cannot be traced with a symbolic batch")?;
    std::fs::create_dir_all(version_dir).map_err(|e| format!("{}: {e}", version_dir.display()))?;
    let file = version_dir.join("model.kgraph");
    kiln_graph::artifact::save_dynamic(&graph, &file).map_err(|e| e.to_string())?;
    if let Some(model_dir) = version_dir.parent() {
        let config = model_dir.join("config.toml");
        if !config.exists() {
            kiln_nn::checkpoint::write_atomic(&config, CONFIG.as_bytes())
                .map_err(|e| format!("{}: {e}", config.display()))?;
        }
    }
    Ok(file)
}

/// Runs `kiln export`.
pub fn run(args: ExportArgs) -> Result<(), String> {
    let checkpoint = checkpoint_of(&args.source)?;
    let file = export(&checkpoint, &args.out)?;
    println!("wrote {} (from {})", file.display(), checkpoint.display());
    Ok(())
}
