//! `kiln train`: fit a built-in model on a data source with validation, checkpoints,
//! TensorBoard and CSV logs under `runs/<name>/`, then report test accuracy.

use super::MODEL_KEY;
use crate::args;
use crate::data::DataSpec;
use crate::models::{ModelSpec, MODELS};
use crate::record::{DataRecord, DATA_KEY};
use clap::Args;
use kiln_core::manual_seed;
use kiln_data::DataLoader;
use kiln_nn::optim::lr_scheduler::CosineAnnealingLR;
use kiln_nn::optim::{Adam, AdamW, Optimizer, Sgd, SgdConfig};
use kiln_nn::ModuleBase;
use kiln_train::callbacks::{
    CsvLogger, LrSchedulerCallback, Mode, ModelCheckpoint, StepInterval, TensorBoardCallback,
    TerminateOnNaN,
};
use kiln_train::{ProgressMode, Trainer};
use std::path::PathBuf;
use std::time::Instant;

/// Options of `kiln train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Architecture: mlp or cnn.
    #[arg(long, default_value = "cnn", value_parser = clap::builder::PossibleValuesParser::new(MODELS))]
    model: String,
    /// Number of epochs (≥ 1).
    #[arg(long, default_value_t = 12, value_parser = args::epochs)]
    epochs: usize,
    /// Samples per batch (≥ 1).
    #[arg(long, default_value_t = 32, value_parser = args::batch_size)]
    batch_size: usize,
    /// Learning rate, a finite number > 0 (annealed with a cosine schedule).
    #[arg(long, default_value_t = 2e-3, value_parser = args::learning_rate)]
    lr: f64,
    /// Optimizer: adam, adamw or sgd (momentum 0.9).
    #[arg(long, default_value = "adam", value_parser = ["adam", "adamw", "sgd"])]
    optimizer: String,
    /// Seed for initialization, shuffling, dropout and splits.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Directory for runs.
    #[arg(long, default_value = "runs")]
    out: PathBuf,
    /// Run name (default: <data>-<model>).
    #[arg(long)]
    name: Option<String>,
    /// Continue from a checkpoint directory (e.g. runs/digits-cnn/checkpoints/last).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Data: digits (bundled), mnist:<dir>, cifar10:<dir> or csv:<file>. The checkpoints
    /// record it (a path made absolute), with --label-column and --seed, for `kiln eval`.
    #[arg(long, default_value = "digits")]
    data: DataSpec,
    /// Label column for CSV data: class indices (0, 1, …) or class names (setosa, …; kept in
    /// the checkpoint for `kiln predict` and `kiln info`).
    #[arg(long, default_value = "label")]
    label_column: String,
    /// Compute threads (default: all cores; at most 4× the cores).
    #[arg(long, value_parser = args::threads)]
    threads: Option<usize>,
    /// Data-loading worker threads (0 loads in the training thread; at most 4× the cores).
    #[arg(long, default_value_t = 0, value_parser = args::workers)]
    workers: usize,
    /// Keep a checkpoint of every epoch (checkpoints/epoch-<n>) besides last and best.
    #[arg(long)]
    save_every_epoch: bool,
    /// Print a per-op profile (calls, total/self time, bytes) after training.
    #[arg(long)]
    profile: bool,
    /// Progress display: auto, bar, plain or silent.
    #[arg(long, default_value = "auto", value_parser = ["auto", "bar", "plain", "silent"])]
    progress: String,
    /// Run each training step as one compiled graph (forward, backward and update).
    #[arg(long)]
    compile: bool,
    /// Keep training when the loss becomes NaN or infinite (by default the run stops with
    /// an error naming the epoch and step).
    #[arg(long)]
    no_terminate_on_nan: bool,
}

fn optimizer(name: &str, params: Vec<kiln_core::Tensor>, lr: f64) -> Box<dyn Optimizer> {
    match name {
        "adamw" => Box::new(AdamW::new(params, lr)),
        "sgd" => Box::new(Sgd::with_config(
            params,
            SgdConfig {
                lr,
                momentum: 0.9,
                ..Default::default()
            },
        )),
        _ => Box::new(Adam::new(params, lr)),
    }
}

/// Runs `kiln train`.
pub fn run(args: TrainArgs) -> Result<(), String> {
    let started = Instant::now();
    if let Some(n) = args.threads {
        kiln_core::set_num_threads(n);
    }
    manual_seed(args.seed);
    let splits = args.data.load(args.seed, &args.label_column, None)?;
    splits.require(&["train", "val", "test"])?;
    let spec = ModelSpec {
        kind: args.model.clone(),
        input: splits.input.clone(),
        classes: splits.classes,
        scale: splits.scale,
        class_names: splits.class_names.clone(),
        feature_names: splits.feature_names.clone(),
    };
    let model = spec.build()?;
    let mut opt = optimizer(&args.optimizer, model.parameters(), args.lr);
    let schedule = CosineAnnealingLR::new(opt.as_mut(), args.epochs, 0.0);
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-{}", splits.name, args.model));
    let run_dir = args.out.join(&name);
    let n_train = kiln_data::Dataset::len(&splits.train);
    let train = DataLoader::new(splits.train, args.batch_size)
        .shuffle(true)
        .seed(args.seed)
        .num_workers(args.workers);
    let val = DataLoader::new(splits.val, 256);
    let test = DataLoader::new(splits.test, 256);
    let progress = match args.progress.as_str() {
        "bar" => ProgressMode::Bar,
        "plain" => ProgressMode::Plain,
        "silent" => ProgressMode::Silent,
        _ => ProgressMode::Auto,
    };
    let mut trainer = Trainer::new().progress(progress).compile(args.compile);
    // Before the loggers, so a non-finite epoch fails before it is logged as a finished one.
    if !args.no_terminate_on_nan {
        trainer = trainer.callback(TerminateOnNaN::new());
    }
    let mut checkpoints = ModelCheckpoint::new(run_dir.join("checkpoints"))
        .monitor("val_accuracy", Mode::Max)
        .every_epoch(args.save_every_epoch)
        .model_metadata(MODEL_KEY, spec.to_json().to_string());
    match DataRecord::for_training(&args.data, &args.label_column, args.seed).to_json() {
        Some(record) => checkpoints = checkpoints.model_metadata(DATA_KEY, record.to_string()),
        None => eprintln!(
            "note: the data path is not UTF-8 text, so the checkpoints do not record it; pass \
             --data to `kiln eval`"
        ),
    }
    let mut trainer = trainer
        .callback(LrSchedulerCallback::new(schedule, StepInterval::Epoch))
        .callback(checkpoints)
        .callback(TensorBoardCallback::new(run_dir.join("tensorboard")))
        .callback(CsvLogger::new(run_dir.join("metrics.csv")));
    if let Some(dir) = &args.resume {
        let done = trainer
            .resume_from(dir, &model, opt.as_mut())
            .map_err(|e| e.to_string())?;
        eprintln!("resumed from {} after epoch {done}", dir.display());
    }
    eprintln!(
        "training {} on {} ({} train samples, {} parameters) for {} epochs",
        args.model,
        splits.name,
        n_train,
        model.num_parameters(),
        args.epochs
    );
    if args.profile {
        kiln_core::profile::enable();
    }
    let fit_start = Instant::now();
    trainer
        .fit(&model, opt.as_mut(), &train, Some(&val), args.epochs)
        .map_err(|e| e.to_string())?;
    let fit_secs = fit_start.elapsed().as_secs_f64();
    if args.profile || kiln_core::profile::is_enabled() {
        kiln_core::profile::disable();
        kiln_core::profile::print();
    }
    let logs = trainer.evaluate(&model, &test);
    let acc = logs.get("accuracy").copied().unwrap_or(f64::NAN);
    println!(
        "test accuracy: {:.2}% (loss {:.4}) — training {:.1}s, total {:.1}s",
        acc * 100.0,
        logs.get("loss").copied().unwrap_or(f64::NAN),
        fit_secs,
        started.elapsed().as_secs_f64()
    );
    println!("checkpoints: {}", run_dir.join("checkpoints").display());
    println!(
        "tensorboard: tensorboard --logdir {}",
        run_dir.join("tensorboard").display()
    );
    Ok(())
}
