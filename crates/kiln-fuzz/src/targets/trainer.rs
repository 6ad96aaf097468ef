//! Training checkpoint directories (`kiln_train::checkpoint`, `Trainer::resume_from`): one or
//! both files mutated, the training-state JSON inside `trainer.safetensors` included; resuming
//! must succeed or return an error.

use super::checkpoint::mutate_file;
use super::Target;
use crate::rng::Rng;
use crate::{seeds, st_file};
use kiln_nn::optim::Adam;
use kiln_nn::ModuleBase;
use kiln_train::Trainer;
use std::path::{Path, PathBuf};

/// Keys and strings worth swapping into the training state.
const NAMES: &[&str] = &[
    "epochs_done",
    "global_step",
    "rng",
    "callbacks",
    "history",
    "optimizer",
    "best",
    "best_epoch",
    "wait",
    "lr",
    "betas",
    "eps",
    "weight_decay",
    "amsgrad",
    "step",
    "state",
    "param_groups",
    "params",
    "initial_lr",
    "F32",
    "I64",
    "nan",
    "inf",
];

/// The trainer-checkpoint target.
pub struct TrainerDir {
    model: Vec<u8>,
    trainer: Vec<u8>,
    dir: PathBuf,
}

impl TrainerDir {
    /// Seeds written under `work`; inputs are tried in `work/mutant`.
    pub fn new(work: &Path) -> TrainerDir {
        let (model, trainer) = seeds::trainer_checkpoint(&work.join("seed"));
        let dir = work.join("mutant");
        std::fs::create_dir_all(&dir).expect("fuzz directory");
        TrainerDir {
            model,
            trainer,
            dir,
        }
    }
}

/// One input holds both files: the model file's length (8 bytes), the model, the trainer.
fn pack(model: &[u8], trainer: &[u8]) -> Vec<u8> {
    let mut out = (model.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(model);
    out.extend_from_slice(trainer);
    out
}

fn unpack(input: &[u8]) -> (&[u8], &[u8]) {
    let n = u64::from_le_bytes(input[..8].try_into().expect("8 bytes")) as usize;
    input[8..].split_at(n)
}

/// Replaces a file by a new one (rewriting in place makes ext4 flush on close).
fn put(path: &Path, bytes: &[u8]) {
    let _ = std::fs::remove_file(path);
    std::fs::write(path, bytes).expect("fuzz file writes");
}

impl Target for TrainerDir {
    fn name(&self) -> &'static str {
        "trainer"
    }

    fn input(&self, rng: &mut Rng) -> Vec<u8> {
        let (mut model, mut trainer) = (self.model.clone(), self.trainer.clone());
        match rng.below(5) {
            0 | 1 => {
                trainer = st_file::mutate_metadata_json(rng, &trainer, "kiln.trainer", NAMES)
                    .unwrap_or(trainer)
            }
            2 => trainer = mutate_file(rng, &trainer, NAMES),
            3 => model = mutate_file(rng, &model, NAMES),
            _ => {
                // Files from different checkpoints, or one of them cut short.
                let cut = rng.below(trainer.len());
                trainer.truncate(cut);
            }
        }
        pack(&model, &trainer)
    }

    fn run(&self, input: &[u8]) -> bool {
        let (model, trainer) = unpack(input);
        put(&self.dir.join("model.safetensors"), model);
        put(&self.dir.join("trainer.safetensors"), trainer);
        let m = seeds::trainer_model();
        let mut opt = Adam::new(m.parameters(), 1e-3);
        match Trainer::new().resume_from(&self.dir, &m, &mut opt) {
            Ok(_) => true,
            Err(e) => {
                std::hint::black_box(e.to_string());
                false
            }
        }
    }
}
