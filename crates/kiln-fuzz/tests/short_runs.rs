//! A short, bounded run of each in-process fuzz target as part of the test suite (the long
//! runs, and the `kiln` command's target, are `kiln-fuzz` runs in `.ci/run`): a fixed seed, so
//! a failure names an input that `kiln-fuzz <target> --seed 20 --start <i> --iterations 1`
//! replays.

use kiln_fuzz::rng::Rng;
use kiln_fuzz::targets::checkpoint::Checkpoint;
use kiln_fuzz::targets::graph::GraphFile;
use kiln_fuzz::targets::trainer::TrainerDir;
use kiln_fuzz::targets::Target;

const SEED: u64 = 20;

/// Runs `n` inputs; returns how many the reader accepted. Panics name the input.
fn run(target: &dyn Target, n: u64) -> u64 {
    let mut accepted = 0;
    for i in 0..n {
        let input = target.input(&mut Rng::for_input(SEED, i));
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target.run(&input)));
        match outcome {
            Ok(ok) => accepted += ok as u64,
            Err(_) => panic!("{} input {i} (seed {SEED}) panicked", target.name()),
        }
    }
    accepted
}

#[test]
fn checkpoint_files() {
    let accepted = run(&Checkpoint::new(), 20_000);
    // Some mutations keep a file valid, most do not: both paths were taken.
    assert!((100..19_000).contains(&accepted), "{accepted} accepted");
}

#[test]
fn graph_files_loaded_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let accepted = run(&GraphFile::new(dir.path()), 5_000);
    assert!((50..4_900).contains(&accepted), "{accepted} accepted");
}

#[test]
fn trainer_checkpoint_directories() {
    let dir = tempfile::tempdir().unwrap();
    let accepted = run(&TrainerDir::new(dir.path()), 3_000);
    assert!((50..2_900).contains(&accepted), "{accepted} accepted");
}

/// Inputs that once crashed a reader (saved findings of earlier runs) still return.
#[test]
fn the_corpus_of_former_findings() {
    let dir = tempfile::tempdir().unwrap();
    let graph = GraphFile::new(dir.path());
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/graph");
    let inputs = kiln_fuzz::report::saved_inputs(&corpus);
    assert!(
        inputs.len() >= 4,
        "{} inputs in {}",
        inputs.len(),
        corpus.display()
    );
    for input in inputs {
        graph.run(&input);
    }
}
