//! Fuzz targets: each turns a seed into a mutated input and feeds it to one reader. A target
//! must return normally for every input; a panic, abort, hang or crash is a finding.

pub mod checkpoint;
pub mod cli;
pub mod graph;
pub mod onnx;
pub mod trainer;

use crate::rng::Rng;

/// One reader under test.
pub trait Target {
    /// The name used on the command line and in reports.
    fn name(&self) -> &'static str;

    /// Builds input `rng` describes from the seeds (deterministic in `rng`).
    fn input(&self, rng: &mut Rng) -> Vec<u8>;

    /// Feeds the input to the reader; true when it was accepted (an `Err` is a correct
    /// rejection, returned as false).
    fn run(&self, input: &[u8]) -> bool;
}
