//! safetensors checkpoints (`kiln_nn::checkpoint`): every accepted file's tensors are read in
//! full, so a header that lies about sizes cannot hide behind a lazy view.

use super::Target;
use crate::rng::Rng;
use crate::{mutate, seeds, st_file};

/// Names worth swapping into headers: dtypes and keys.
const NAMES: &[&str] = &[
    "F32",
    "F64",
    "BF16",
    "F16",
    "I64",
    "I32",
    "U8",
    "BOOL",
    "F8_E4M3",
    "U64",
    "dtype",
    "shape",
    "data_offsets",
    "__metadata__",
    "format",
];

/// The checkpoint target.
pub struct Checkpoint {
    seeds: Vec<Vec<u8>>,
}

impl Default for Checkpoint {
    fn default() -> Self {
        Checkpoint::new()
    }
}

impl Checkpoint {
    /// With seeds from [`seeds::checkpoints`].
    pub fn new() -> Checkpoint {
        Checkpoint {
            seeds: seeds::checkpoints(),
        }
    }
}

/// A mutated safetensors file: its header JSON, its bytes, or both.
pub fn mutate_file(rng: &mut Rng, seed: &[u8], names: &[&str]) -> Vec<u8> {
    let mut out = seed.to_vec();
    if !rng.one_in(3) {
        if let Some(mut parts) = st_file::split(seed) {
            mutate::json(rng, &mut parts.header, names);
            out = st_file::join(&parts);
        }
    }
    if rng.one_in(2) {
        mutate::bytes(rng, &mut out);
    }
    out
}

impl Target for Checkpoint {
    fn name(&self) -> &'static str {
        "checkpoint"
    }

    fn input(&self, rng: &mut Rng) -> Vec<u8> {
        let seed = rng.pick(&self.seeds).clone();
        mutate_file(rng, &seed, NAMES)
    }

    fn run(&self, input: &[u8]) -> bool {
        match kiln_nn::checkpoint::from_safetensors_bytes(input) {
            Ok((sd, _meta)) => {
                for (_, t) in sd.iter() {
                    std::hint::black_box(t.to_vec::<f64>());
                }
                true
            }
            Err(e) => {
                std::hint::black_box(e.to_string());
                false
            }
        }
    }
}
