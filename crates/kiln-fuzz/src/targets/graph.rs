//! Graph files (`kiln_graph::artifact`): a mutated file is loaded and, when accepted, run on
//! inputs of its signature, since a graph that loads must also run.

use super::checkpoint::mutate_file;
use super::Target;
use crate::rng::Rng;
use crate::{mutate, seeds, st_file};
use kiln_core::Tensor;
use kiln_graph::artifact::{self, ArtifactError, LoadOptions};
use std::path::Path;

/// Strings worth swapping into graph JSON: op tags, dtypes, input kinds, field names.
const NAMES: &[&str] = &[
    "Exp",
    "Log",
    "Relu",
    "Add",
    "Mul",
    "Div",
    "Where",
    "Sum",
    "Max",
    "ArgMax",
    "Numel",
    "Reshape",
    "Permute",
    "Expand",
    "Slice",
    "SliceScatter",
    "Contiguous",
    "Cast",
    "Cat",
    "IndexSelect",
    "IndexAdd",
    "Gather",
    "ScatterAdd",
    "Matmul",
    "MatmulAct",
    "Unfold",
    "Fold",
    "Conv2d",
    "Conv2dInputGrad",
    "Conv2dWeightGrad",
    "MaxPool2d",
    "MaxPool2dBackward",
    "Softmax",
    "LayerNorm",
    "LayerNormBackward",
    "Attention",
    "AttentionBackward",
    "Random",
    "Fused",
    "AdamStep",
    "GeluBackward",
    "MatmulGeluBackward",
    "MatmulReluBackward",
    "MatmulGeluRhs",
    "F32",
    "F64",
    "I64",
    "I32",
    "Bool",
    "U8",
    "BF16",
    "F16",
    "arg",
    "weight",
    "const",
    "dims",
    "dim",
    "shape",
    "args",
    "stores",
    "reduce",
    "steps",
    "batch",
    "traced",
    "arg_dims",
    "output_dims",
    "mul",
    "add",
];

/// The graph-file target.
pub struct GraphFile {
    seeds: Vec<Vec<u8>>,
}

impl GraphFile {
    /// With seeds from [`seeds::graphs`], written under `dir`.
    pub fn new(dir: &Path) -> GraphFile {
        GraphFile {
            seeds: seeds::graphs(dir),
        }
    }
}

impl Target for GraphFile {
    fn name(&self) -> &'static str {
        "graph"
    }

    fn input(&self, rng: &mut Rng) -> Vec<u8> {
        let seed = rng.pick(&self.seeds).clone();
        if rng.below(4) < 3 {
            if let Some(mut out) = st_file::mutate_metadata_json(rng, &seed, "kiln.graph", NAMES) {
                if rng.one_in(8) {
                    mutate::bytes(rng, &mut out);
                }
                return out;
            }
        }
        mutate_file(rng, &seed, NAMES)
    }

    fn run(&self, input: &[u8]) -> bool {
        // A bound well below this machine's memory: accepted graphs are also run.
        let options = LoadOptions {
            max_buffer_bytes: Some(64 << 20),
        };
        let loaded = match artifact::load_bytes(input, Path::new("fuzz.kgraph"), options) {
            Ok(g) => g,
            Err(e) => {
                std::hint::black_box(e.to_string());
                return false;
            }
        };
        // A graph with a symbolic batch runs at a batch of 3, not the one it was traced at.
        let args: Vec<Tensor> = loaded
            .arg_dims()
            .iter()
            .zip(loaded.signature())
            .map(|((dims, dtype), (traced, _))| {
                let at3: Option<Vec<usize>> = dims.iter().map(|d| d.at(3)).collect();
                Tensor::ones(at3.unwrap_or_else(|| traced.clone()).as_slice(), *dtype)
            })
            .collect();
        match loaded.run(&args) {
            Ok(outputs) => {
                for o in outputs {
                    std::hint::black_box(o.to_vec::<f64>());
                }
                true
            }
            // The data refused by an op at run time (ones as indices of an empty dim).
            Err(ArtifactError::Run(e)) => {
                std::hint::black_box(e.to_string());
                false
            }
            // A batch the graph cannot take (a fixed slice of the batch longer than 3), or
            // whose buffers pass the bound: typed refusals at a size other than the traced one.
            Err(e @ (ArtifactError::Batch(_) | ArtifactError::TooLarge { .. }))
                if loaded.dynamic_batch() =>
            {
                std::hint::black_box(e.to_string());
                false
            }
            Err(e) => panic!("arguments of the graph's own signature refused: {e}"),
        }
    }
}
