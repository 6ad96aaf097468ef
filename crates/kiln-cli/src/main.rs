//! `kiln`: train a model on bundled or local data, evaluate and inspect checkpoints, predict.
//!
//! Layering: the `kiln` command sits on top of the library crates (`kiln-core`, `kiln-nn`,
//! `kiln-data`, `kiln-train`); nothing depends on it. Each subcommand is one file in `commands/`.
//!
//! Guide: *The `kiln` command* (`docs/src/command-line.md`).

#![deny(missing_docs)]

mod args;
mod commands;
mod csv_table;
mod data;
mod last_resort;
mod models;
mod record;
mod rows;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "kiln",
    version,
    about = "Kiln: train, evaluate, inspect, export and serve models"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model (default: a small CNN on the bundled digits).
    Train(commands::train::TrainArgs),
    /// Evaluate a checkpoint on the test split of a data source (by default the one it was
    /// trained on).
    Eval(commands::eval::EvalArgs),
    /// Predict the class of one input (a row of numbers or an image file) or of every row
    /// of a CSV file.
    Predict(commands::predict::PredictArgs),
    /// Export a checkpoint (or a run directory's best) as a graph file for serving.
    Export(commands::export::ExportArgs),
    /// Serve a model repository, or a run directory, over the Open Inference Protocol.
    Serve(commands::serve::ServeArgs),
    /// Show a checkpoint's parameters, shapes and metadata, its class names and the data it
    /// was trained on.
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
        Command::Eval(args) => commands::eval::run(args),
        Command::Predict(args) => commands::predict::run(args),
        Command::Info { checkpoint } => commands::info::run(&checkpoint),
        Command::Export(args) => commands::export::run(args),
        Command::Serve(args) => commands::serve::run(args),
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
