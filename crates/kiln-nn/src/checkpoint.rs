//! safetensors checkpoints with PyTorch's conventions: state-dict key names, shapes and dtypes,
//! metadata `{"format": "pt"}`. Files are written atomically (temporary file, fsync, rename),
//! so a crash mid-write never damages the previous checkpoint. Reading never panics: corrupt,
//! truncated or unsupported files give a [`CheckpointError`]. The header is written in one
//! canonical form (keys sorted), so the same state dict and metadata always give the same
//! bytes.

use crate::module::StateDict;
use kiln_core::{bf16, f16, DType, Tensor};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why a checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file system refused.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The bytes are not a valid safetensors file (bad header, truncated data, …).
    #[error("checkpoint {path}: not a valid safetensors file: {reason}")]
    Format {
        /// The file involved (empty for in-memory bytes).
        path: PathBuf,
        /// What the parser reported.
        reason: String,
    },
    /// The file is a PyTorch pickle (`torch.save`), not safetensors.
    #[error(
        "checkpoint {path}: this is a PyTorch pickle file (torch.save), not safetensors; \
         re-save it in Python with `from safetensors.torch import save_file; \
         save_file(torch.load(\"{path}\", map_location=\"cpu\"), \"model.safetensors\")` \
         (for a whole saved model, save its .state_dict())"
    )]
    PyTorchPickle {
        /// The file involved.
        path: PathBuf,
    },
    /// A tensor's shape cannot be a tensor's (too many elements for memory).
    #[error("checkpoint {path}: tensor `{name}`: {reason}")]
    BadTensor {
        /// The file involved.
        path: PathBuf,
        /// The tensor's key.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor has a dtype Kiln does not support.
    #[error("checkpoint {path}: tensor `{name}` has unsupported dtype {dtype}")]
    UnsupportedDtype {
        /// The file involved.
        path: PathBuf,
        /// The tensor's key.
        name: String,
        /// The dtype found.
        dtype: String,
    },
}

fn st_dtype(d: DType) -> Dtype {
    match d {
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
        DType::BF16 => Dtype::BF16,
        DType::F16 => Dtype::F16,
        DType::I64 => Dtype::I64,
        DType::I32 => Dtype::I32,
        DType::U8 => Dtype::U8,
        DType::Bool => Dtype::BOOL,
    }
}

/// Little-endian bytes of a tensor's elements in row-major order.
pub fn tensor_bytes(t: &Tensor) -> Vec<u8> {
    match t.dtype() {
        DType::F32 => t
            .to_vec::<f32>()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::F64 => t
            .to_vec::<f64>()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::BF16 => t
            .to_vec::<bf16>()
            .iter()
            .flat_map(|v| v.to_bits().to_le_bytes())
            .collect(),
        DType::F16 => t
            .to_vec::<f16>()
            .iter()
            .flat_map(|v| v.to_bits().to_le_bytes())
            .collect(),
        DType::I64 => t
            .to_vec::<i64>()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::I32 => t
            .to_vec::<i32>()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::U8 => t.to_vec::<u8>(),
        DType::Bool => t.to_vec::<bool>().iter().map(|&b| b as u8).collect(),
    }
}

fn from_bytes(dtype: Dtype, shape: &[usize], data: &[u8]) -> Option<Tensor> {
    fn chunks<const N: usize>(d: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
        d.chunks_exact(N).map(|c| c.try_into().unwrap())
    }
    let t = match dtype {
        Dtype::F32 => Tensor::from_vec(
            chunks::<4>(data)
                .map(f32::from_le_bytes)
                .collect::<Vec<_>>(),
            shape,
        ),
        Dtype::F64 => Tensor::from_vec(
            chunks::<8>(data)
                .map(f64::from_le_bytes)
                .collect::<Vec<_>>(),
            shape,
        ),
        Dtype::BF16 => Tensor::from_vec(
            chunks::<2>(data)
                .map(|b| bf16::from_bits(u16::from_le_bytes(b)))
                .collect::<Vec<_>>(),
            shape,
        ),
        Dtype::F16 => Tensor::from_vec(
            chunks::<2>(data)
                .map(|b| f16::from_bits(u16::from_le_bytes(b)))
                .collect::<Vec<_>>(),
            shape,
        ),
        Dtype::I64 => Tensor::from_vec(
            chunks::<8>(data)
                .map(i64::from_le_bytes)
                .collect::<Vec<_>>(),
            shape,
        ),
        Dtype::I32 => Tensor::from_vec(
            chunks::<4>(data)
                .map(i32::from_le_bytes)
                .collect::<Vec<_>>(),
            shape,
        ),
        Dtype::U8 => Tensor::from_vec(data.to_vec(), shape),
        Dtype::BOOL => Tensor::from_vec(data.iter().map(|&b| b != 0).collect::<Vec<_>>(), shape),
        _ => return None,
    };
    Some(t)
}

/// Serializes a state dict to safetensors bytes; `metadata` is stored in the header and
/// `"format": "pt"` is always set.
pub fn to_bytes(sd: &StateDict, metadata: &HashMap<String, String>) -> Vec<u8> {
    let owned: Vec<(String, DType, Vec<usize>, Vec<u8>)> = sd
        .iter()
        .map(|(n, t)| {
            (
                n.to_string(),
                t.dtype(),
                t.shape().to_vec(),
                tensor_bytes(t),
            )
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = owned
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                TensorView::new(st_dtype(*d), s.clone(), b).expect("checkpoint: view"),
            )
        })
        .collect();
    let mut meta = metadata.clone();
    meta.insert("format".into(), "pt".into());
    let bytes = safetensors::tensor::serialize(views, Some(meta)).expect("checkpoint: serialize");
    canonical_header(bytes)
}

/// Rewrites a safetensors file's JSON header with its keys sorted (`safetensors` writes the
/// metadata map in hash order, which differs from process to process), padded with spaces to
/// 8 bytes as the format requires. The data section and its offsets are unchanged.
fn canonical_header(bytes: Vec<u8>) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8-byte length")) as usize;
    let header: serde_json::Value =
        serde_json::from_slice(&bytes[8..8 + n]).expect("checkpoint: header we wrote parses");
    // serde_json's map is a BTreeMap: keys come out sorted at every level.
    let mut json = serde_json::to_vec(&header).expect("checkpoint: header serializes");
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + json.len() + bytes.len() - 8 - n);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&bytes[8 + n..]);
    out
}

/// True for the first bytes of a `torch.save` file: a zip archive (PyTorch ≥ 1.6) or a bare
/// pickle stream (protocol 2–5 starts with 0x80 and the protocol number).
fn is_pytorch_pickle(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || matches!(bytes, [0x80, 2..=5, ..])
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
    let format_err = |e: safetensors::SafeTensorError| CheckpointError::Format {
        path: path.into(),
        reason: e.to_string(),
    };
    if is_pytorch_pickle(bytes) {
        return Err(CheckpointError::PyTorchPickle { path: path.into() });
    }
    let st = SafeTensors::deserialize(bytes).map_err(format_err)?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(format_err)?;
    let meta = header.metadata().clone().unwrap_or_default();
    let mut names: Vec<String> = st.names().into_iter().map(|s| s.to_string()).collect();
    names.sort();
    let mut sd = StateDict::new();
    for name in names {
        let view = st.tensor(&name).map_err(format_err)?;
        let elem_bytes = view.dtype().bitsize().div_ceil(8);
        if let Err(e) = kiln_core::shape::checked_numel(view.shape(), elem_bytes) {
            return Err(CheckpointError::BadTensor {
                path: path.into(),
                name,
                reason: e.to_string(),
            });
        }
        let t = from_bytes(view.dtype(), view.shape(), view.data()).ok_or_else(|| {
            CheckpointError::UnsupportedDtype {
                path: path.into(),
                name: name.clone(),
                dtype: format!("{:?}", view.dtype()),
            }
        })?;
        sd.insert(name, t);
    }
    Ok((sd, meta))
}

/// Writes `bytes` to `path` atomically: a sibling temporary file is written and synced, then
/// renamed over `path`. Any file may be written so (training logs are too), so errors are
/// plain I/O errors; [`save`] and [`save_with_metadata`] report them as a
/// [`CheckpointError::Io`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
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
    let path = path.as_ref();
    write_atomic(path, &to_bytes(sd, metadata)).map_err(|source| CheckpointError::Io {
        path: path.into(),
        source,
    })
}

/// Loads a safetensors file into a state dict.
pub fn load(path: impl AsRef<Path>) -> Result<StateDict, CheckpointError> {
    load_with_metadata(path).map(|(sd, _)| sd)
}

/// Loads a safetensors file and its header metadata.
pub fn load_with_metadata(
    path: impl AsRef<Path>,
) -> Result<(StateDict, HashMap<String, String>), CheckpointError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.into(),
        source,
    })?;
    parse(&bytes, path)
}

#[cfg(test)]
mod tests {
    use super::*;

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
