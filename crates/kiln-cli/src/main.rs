//! `kiln`: train a model on bundled or local data, evaluate and inspect checkpoints, predict.
//!
//! Layering: the `kiln` command sits on top of the library crates (`kiln-core`, `kiln-nn`,
//! `kiln-data`, `kiln-train`); nothing depends on it. Each subcommand is one file in `commands/`.

mod args;
mod commands;
mod data;
mod last_resort;
mod models;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "kiln",
    version,
    about = "Kiln: train, evaluate and inspect models"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model (default: a small CNN on the bundled digits).
    Train(commands::train::TrainArgs),
    /// Evaluate a checkpoint on the test split of a data source.
    Eval {
        /// Checkpoint directory (e.g. runs/digits-cnn/checkpoints/best) or model.safetensors.
        checkpoint: PathBuf,
        /// Data source: digits, mnist:<dir>, cifar10:<dir> or csv:<file>.
        #[arg(long, default_value = "digits")]
        data: data::DataSpec,
        /// Label column for CSV data.
        #[arg(long, default_value = "label")]
        label_column: String,
        /// Seed of the train/validation/test split (must match training for CSV data).
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Predict the class of one input: a CSV row of numbers or an image file.
    Predict {
        /// Checkpoint directory or model.safetensors.
        checkpoint: PathBuf,
        /// A comma-separated row of input values (raw scale), or a PNG/JPEG path. A row may
        /// start with a minus sign (`-1.5,2`).
        #[arg(allow_hyphen_values = true)]
        input: String,
    },
    /// Show a checkpoint's parameters, shapes and metadata.
    Info {
        /// Checkpoint directory or .safetensors file.
        checkpoint: PathBuf,
    },
    /// Panics on purpose, so tests can check what a bug looks like to the user.
    #[command(name = "internal-panic-test", hide = true)]
    PanicTest,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    last_resort::run(|| run(cli.command))
}

fn run(command: Command) -> ExitCode {
    let result = match command {
        Command::Train(args) => commands::train::run(args),
        Command::Eval {
            checkpoint,
            data,
            label_column,
            seed,
        } => commands::eval::run(&checkpoint, &data, &label_column, seed),
        Command::Predict { checkpoint, input } => commands::predict::run(&checkpoint, &input),
        Command::Info { checkpoint } => commands::info::run(&checkpoint),
        Command::PanicTest => panic!("a deliberate panic\nover two lines"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
