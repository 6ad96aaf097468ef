//! `kiln eval`: loss and accuracy of a checkpoint on a data source's test split — by default
//! the source, label column and split seed the checkpoint was trained with.

use super::load_model;
use crate::data::{max_label, DataSpec};
use crate::record::DataRecord;
use clap::Args;
use kiln_data::DataLoader;
use kiln_train::Trainer;
use std::path::PathBuf;

/// Options of `kiln eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Checkpoint directory (e.g. runs/digits-cnn/checkpoints/best) or model.safetensors.
    checkpoint: PathBuf,
    /// Data source: digits, mnist:<dir>, cifar10:<dir> or csv:<file> (default: the one the
    /// checkpoint was trained on; digits for checkpoints that do not record it).
    #[arg(long)]
    data: Option<DataSpec>,
    /// Label column for CSV data (default: the one used in training, else `label`).
    #[arg(long)]
    label_column: Option<String>,
    /// Seed of the train/validation/test split (default: the one used in training, else 0;
    /// must match training for CSV data).
    #[arg(long)]
    seed: Option<u64>,
}

/// What to evaluate on, and a line saying where each part came from.
struct Source {
    data: DataSpec,
    label_column: String,
    seed: u64,
    /// Whether `data` is the checkpoint's record (then a file that is gone needs a hint).
    recorded: bool,
    origin: &'static str,
}

/// Flags first, then the checkpoint's record, then the defaults of checkpoints written
/// before the record existed (digits, `label`, seed 0).
fn source(args: &EvalArgs, record: Option<DataRecord>) -> Source {
    let origin = match (&args.data, &record) {
        (Some(_), _) => "from --data",
        (None, Some(_)) => "recorded in the checkpoint",
        (None, None) => "the default; this checkpoint does not record its training data",
    };
    let recorded = args.data.is_none() && record.is_some();
    let (data, label_column, seed) = match record {
        Some(r) => (r.data, r.label_column, r.seed),
        None => (DataSpec::Digits, "label".to_string(), 0),
    };
    Source {
        data: args.data.clone().unwrap_or(data),
        label_column: args.label_column.clone().unwrap_or(label_column),
        seed: args.seed.unwrap_or(seed),
        recorded,
        origin,
    }
}

/// Runs `kiln eval`.
pub fn run(args: EvalArgs) -> Result<(), String> {
    let (model, spec, meta) = load_model(&args.checkpoint)?;
    let record = match DataRecord::from_metadata(&meta) {
        Ok(r) => r,
        // Explicit flags do not need the record, so a damaged one does not stop them.
        Err(e) if args.data.is_some() => {
            eprintln!("note: ignoring the checkpoint's {e}");
            None
        }
        Err(e) => return Err(format!("{}: {e}; pass --data", args.checkpoint.display())),
    };
    let src = source(&args, record);
    let label = match src.data {
        DataSpec::Csv(_) => format!(", label column `{}`", src.label_column),
        _ => String::new(),
    };
    println!(
        "data: {}{label}, split seed {} ({})",
        src.data, src.seed, src.origin
    );
    let splits = src
        .data
        .load(src.seed, &src.label_column, Some(&spec))
        .map_err(|e| {
            if src.recorded {
                format!("{e} (the data recorded in the checkpoint; pass --data to use other data)")
            } else {
                e
            }
        })?;
    if splits.input != spec.input {
        // Not given --data: the default (or the record) was likely the wrong guess.
        let hint = match args.data {
            None => "; pass --data to choose the data",
            Some(_) => "",
        };
        return Err(format!(
            "the checkpoint expects inputs of shape {:?}, the data has {:?}{hint}",
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
