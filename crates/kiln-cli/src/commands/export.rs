//! `kiln export`: a checkpoint of `kiln train` as a graph file that `kiln serve` (or any
//! program linking the runtime) runs at every batch size, without the model's code; or, with
//! `--format onnx`, a checkpoint or a graph file as an ONNX model.

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

/// What `kiln export` writes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq)]
pub enum Format {
    /// A Kiln graph file in a model repository's version directory.
    #[default]
    Kgraph,
    /// An ONNX model file (opset 21, a symbolic batch dim).
    Onnx,
}

/// Options of `kiln export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A `kiln train` run directory (its best checkpoint is exported, else its last), a
    /// checkpoint directory or model.safetensors, or (with `--format onnx`) a `.kgraph` file.
    pub source: PathBuf,
    /// kgraph: the version directory to write, `REPO/<model>/<version>` (`model.kgraph` goes
    /// in it, and `REPO/<model>/config.toml` names the tensors unless it exists). onnx: the
    /// `.onnx` file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// What to write.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// onnx: write the weights to `<out>.data` beside the model (ONNX's external data, as
    /// models past 2 GiB need; those get it anyway).
    #[arg(long)]
    pub external_data: bool,
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
    let graph = trace(checkpoint)?;
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

/// `checkpoint`'s model as a graph with a symbolic batch: raw inputs in, logits and class
/// probabilities out.
fn trace(checkpoint: &Path) -> Result<kiln_graph::artifact::DynamicGraph, String> {
    let (model, spec, _) = load_model(checkpoint)?;
    let scale = spec.scale;
    let mut example = vec![1];
    example.extend(&spec.input);
    no_grad(|| {
        compile(|x: &[Tensor]| {
            let logits = model.forward(&x[0].div_scalar(scale));
            let probabilities = softmax(&logits, -1);
            vec![logits, probabilities]
        })
        .dynamic_batch()
        .dynamic_graph(&[Tensor::zeros(example, DType::F32)])
    })
    .ok_or_else(|| "the model cannot be traced with a symbolic batch".to_string())
}

/// Writes `source` (a checkpoint, or a `.kgraph` file) as the ONNX model `out`.
fn export_onnx(source: &Path, out: &Path, external: bool) -> Result<String, String> {
    let is_graph_file = source.extension().is_some_and(|e| e == "kgraph") && source.is_file();
    let (model, from) = if is_graph_file {
        let loaded = kiln_runtime::artifact::load(source).map_err(|e| e.to_string())?;
        let options = kiln_onnx::ExportOptions::default();
        let model = match loaded.dynamic() {
            Some(g) => kiln_onnx::export_dynamic(g, &options),
            None => kiln_onnx::export(loaded.graph(), &options),
        };
        (model, source.to_path_buf())
    } else {
        let checkpoint = checkpoint_of(source)?;
        let options = kiln_onnx::ExportOptions {
            input_names: vec!["input".into()],
            output_names: vec!["logits".into(), "probabilities".into()],
            ..Default::default()
        };
        (
            kiln_onnx::export_dynamic(&trace(&checkpoint)?, &options),
            checkpoint,
        )
    };
    let model = model.map_err(|e| e.to_string())?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    if external {
        kiln_onnx::save_with_external_data(&model, out).map_err(|e| e.to_string())?;
    } else {
        kiln_onnx::save(&model, out).map_err(|e| e.to_string())?;
    }
    Ok(from.display().to_string())
}

/// Runs `kiln export`.
pub fn run(args: ExportArgs) -> Result<(), String> {
    if args.format == Format::Onnx {
        let from = export_onnx(&args.source, &args.out, args.external_data)?;
        println!("wrote {} (from {from})", args.out.display());
        return Ok(());
    }
    if args.external_data {
        return Err("--external-data is for --format onnx".into());
    }
    let checkpoint = checkpoint_of(&args.source)?;
    let file = export(&checkpoint, &args.out)?;
    println!("wrote {} (from {})", file.display(), checkpoint.display());
    Ok(())
}
