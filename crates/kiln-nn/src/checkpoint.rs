//! safetensors checkpoints with PyTorch's conventions: state-dict key names, shapes and dtypes,
//! metadata `{"format": "pt"}`. Files are written atomically (temporary file, fsync, rename),
//! so a crash mid-write never damages the previous checkpoint. Reading never panics: corrupt,
//! truncated or unsupported files give a [`CheckpointError`]. The header is written in one
//! canonical form (keys sorted), so the same state dict and metadata always give the same
//! bytes. The format itself is read and written by `kiln_runtime::weights` (graph files use
//! it too); this module maps state dicts onto it.

use crate::module::StateDict;
use kiln_core::Tensor;
use kiln_runtime::weights;
use std::collections::HashMap;
use std::path::Path;

pub use kiln_runtime::weights::{write_atomic, CheckpointError};

/// Little-endian bytes of a tensor's elements in row-major order.
pub fn tensor_bytes(t: &Tensor) -> Vec<u8> {
    weights::operand_bytes(readable(t).operand())
}

/// The tensor, after the check that it has data: a traced stand-in (a checkpoint written
/// inside a compiled function) panics with the message every value read gives.
fn readable(t: &Tensor) -> &Tensor {
    kiln_core::trace::check_readable(t, "checkpoint");
    t
}

/// Serializes a state dict to safetensors bytes; `metadata` is stored in the header and
/// `"format": "pt"` is always set.
pub fn to_bytes(sd: &StateDict, metadata: &HashMap<String, String>) -> Vec<u8> {
    weights::to_bytes(sd.iter().map(|(n, t)| (n, readable(t).operand())), metadata)
}

/// Parses safetensors bytes into a state dict (keys sorted) and the header metadata.
pub fn from_safetensors_bytes(
    bytes: &[u8],
) -> Result<(StateDict, HashMap<String, String>), CheckpointError> {
    parse(bytes, Path::new(""))
}

/// [`from_safetensors_bytes`] for bytes read from `path` (named in errors).
pub fn parse(
    bytes: &[u8],
    path: &Path,
) -> Result<(StateDict, HashMap<String, String>), CheckpointError> {
    let (named, meta) = weights::parse(bytes, path)?;
    Ok((state_dict(named), meta))
}

fn state_dict(named: weights::Named) -> StateDict {
    let mut sd = StateDict::new();
    for (name, value) in named {
        sd.insert(name, Tensor::from_owned_operand(&value));
    }
    sd
}

/// Saves a state dict to a safetensors file atomically, with `{"format": "pt"}` metadata.
pub fn save(sd: &StateDict, path: impl AsRef<Path>) -> Result<(), CheckpointError> {
    save_with_metadata(sd, path, &HashMap::new())
}

/// Saves with extra header metadata (string to string, as safetensors allows).
pub fn save_with_metadata(
    sd: &StateDict,
    path: impl AsRef<Path>,
    metadata: &HashMap<String, String>,
) -> Result<(), CheckpointError> {
    weights::save(
        sd.iter().map(|(n, t)| (n, readable(t).operand())),
        path.as_ref(),
        metadata,
    )
}

/// Loads a safetensors file into a state dict.
pub fn load(path: impl AsRef<Path>) -> Result<StateDict, CheckpointError> {
    load_with_metadata(path).map(|(sd, _)| sd)
}

/// Loads a safetensors file and its header metadata.
pub fn load_with_metadata(
    path: impl AsRef<Path>,
) -> Result<(StateDict, HashMap<String, String>), CheckpointError> {
    let (named, meta) = weights::load(path.as_ref())?;
    Ok((state_dict(named), meta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_core::bf16;

    fn sample() -> StateDict {
        let mut sd = StateDict::new();
        sd.insert(
            "fc.weight",
            Tensor::from_vec(vec![1.5f32, -2.0, 3.25, 4.0], [2, 2]),
        );
        sd.insert("fc.bias", Tensor::from_vec(vec![0.5f64, 1.0], [2]).t());
        sd.insert(
            "bn.num_batches_tracked",
            Tensor::from_vec(vec![7i64], [0usize; 0]),
        );
        sd.insert("mask", Tensor::from_vec(vec![true, false, true], [3]));
        sd.insert(
            "h",
            Tensor::from_vec(vec![bf16::from_f32(1.5), bf16::from_f32(-0.25)], [2]),
        );
        sd
    }

    #[test]
    fn round_trip_keeps_names_shapes_dtypes_values_and_format() {
        let bytes = to_bytes(&sample(), &HashMap::new());
        let (sd, meta) = from_safetensors_bytes(&bytes).unwrap();
        assert_eq!(meta.get("format").map(String::as_str), Some("pt"));
        for (name, t) in sample().iter() {
            let got = sd.get(name).unwrap();
            assert_eq!(got.shape(), t.shape(), "{name}");
            assert_eq!(got.dtype(), t.dtype(), "{name}");
            assert_eq!(got.to_vec::<f64>(), t.to_vec::<f64>(), "{name}");
        }
    }

    #[test]
    fn writing_a_traced_tensor_says_it_has_no_value() {
        use kiln_core::trace::{trace, ArgSpec};
        use kiln_core::DType;
        let spec = ArgSpec {
            shape: vec![2],
            dtype: DType::F32,
            requires_grad: false,
        };
        let err = std::panic::catch_unwind(|| {
            trace(&[spec], |xs| {
                let mut sd = StateDict::new();
                sd.insert("x", xs[0].clone());
                to_bytes(&sd, &HashMap::new());
                vec![xs[0].clone()]
            });
        })
        .unwrap_err();
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            msg.contains("checkpoint: cannot read the value of a traced tensor"),
            "{msg}"
        );
    }

    #[test]
    fn truncated_and_garbage_bytes_are_errors() {
        let bytes = to_bytes(&sample(), &HashMap::new());
        for cut in [0, 4, 8, 20, bytes.len() - 1] {
            assert!(
                from_safetensors_bytes(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        assert!(matches!(
            from_safetensors_bytes(b"not a checkpoint at all"),
            Err(CheckpointError::Format { .. })
        ));
    }

    #[test]
    fn save_is_atomic_and_load_reports_missing_files() {
        let dir = std::env::temp_dir().join(format!("kiln-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("model.safetensors");
        save(&sample(), &p).unwrap();
        assert!(load(&p).unwrap().get("fc.weight").is_some());
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .collect();
        assert_eq!(leftovers.len(), 1, "temporary file left behind");
        assert!(matches!(
            load(dir.join("missing.safetensors")),
            Err(CheckpointError::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
