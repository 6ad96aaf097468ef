//! Named weights in safetensors files, at the level of storages: the one reader and writer of
//! the format in Kiln (checkpoints in `kiln-nn` and graph files both go through it).
//! PyTorch's conventions: little-endian row-major data, metadata `{"format": "pt"}`. Files are
//! written atomically (temporary file, fsync, rename), so a crash mid-write never damages the
//! previous file. Reading never panics: corrupt, truncated or unsupported files give a
//! [`CheckpointError`]. The header is written in one canonical form (keys sorted), so the same
//! weights and metadata always give the same bytes.

use half::{bf16, f16};
use kiln_kernels::cpu::to_contiguous_vec;
use kiln_kernels::storage::{CpuStorage, StorageElement};
use kiln_kernels::{DType, Operand, OwnedOperand};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why a weights file could not be read or written.
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
        DType::I8 => Dtype::I8,
        DType::I16 => Dtype::I16,
        DType::U16 => Dtype::U16,
        DType::U32 => Dtype::U32,
        DType::U64 => Dtype::U64,
    }
}

/// Little-endian bytes of a value's elements in row-major order.
pub fn operand_bytes(t: Operand<'_>) -> Vec<u8> {
    fn le<T: StorageElement, const N: usize>(t: Operand<'_>, f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
        to_contiguous_vec::<T>(t).into_iter().flat_map(f).collect()
    }
    match t.dtype() {
        DType::F32 => le(t, f32::to_le_bytes),
        DType::F64 => le(t, f64::to_le_bytes),
        DType::BF16 => le(t, |v: bf16| v.to_bits().to_le_bytes()),
        DType::F16 => le(t, |v: f16| v.to_bits().to_le_bytes()),
        DType::I64 => le(t, i64::to_le_bytes),
        DType::I32 => le(t, i32::to_le_bytes),
        DType::U8 => to_contiguous_vec::<u8>(t),
        DType::Bool => le(t, |b: bool| [b as u8]),
        DType::I8 => le(t, i8::to_le_bytes),
        DType::I16 => le(t, i16::to_le_bytes),
        DType::U16 => le(t, u16::to_le_bytes),
        DType::U32 => le(t, u32::to_le_bytes),
        DType::U64 => le(t, u64::to_le_bytes),
    }
}

/// A dense row-major value of `shape` from its elements' little-endian bytes (the layout
/// [`operand_bytes`] writes, and the Open Inference Protocol's binary tensors use); `None`
/// when `bytes` is not exactly `shape`'s element count of `dtype`.
pub fn operand_from_le_bytes(dtype: DType, shape: &[usize], bytes: &[u8]) -> Option<OwnedOperand> {
    let elements = kiln_kernels::shape::checked_numel(shape, dtype.size_in_bytes()).ok()?;
    if elements.checked_mul(dtype.size_in_bytes()) != Some(bytes.len()) {
        return None;
    }
    from_bytes(st_dtype(dtype), shape, bytes)
}

/// A dense value from little-endian bytes; `None` for a dtype Kiln has no counterpart of.
fn from_bytes(dtype: Dtype, shape: &[usize], data: &[u8]) -> Option<OwnedOperand> {
    fn read<T: StorageElement, const N: usize>(d: &[u8], f: impl Fn([u8; N]) -> T) -> CpuStorage {
        T::wrap(
            d.chunks_exact(N)
                .map(|c| f(c.try_into().expect("chunk of N bytes")))
                .collect(),
        )
    }
    let data = match dtype {
        Dtype::F32 => read(data, f32::from_le_bytes),
        Dtype::F64 => read(data, f64::from_le_bytes),
        Dtype::BF16 => read(data, |b| bf16::from_bits(u16::from_le_bytes(b))),
        Dtype::F16 => read(data, |b| f16::from_bits(u16::from_le_bytes(b))),
        Dtype::I64 => read(data, i64::from_le_bytes),
        Dtype::I32 => read(data, i32::from_le_bytes),
        Dtype::U8 => u8::wrap(data.to_vec()),
        Dtype::BOOL => read(data, |[b]: [u8; 1]| b != 0),
        Dtype::I8 => read(data, i8::from_le_bytes),
        Dtype::I16 => read(data, i16::from_le_bytes),
        Dtype::U16 => read(data, u16::from_le_bytes),
        Dtype::U32 => read(data, u32::from_le_bytes),
        Dtype::U64 => read(data, u64::from_le_bytes),
        _ => return None,
    };
    Some(OwnedOperand::dense(data, shape))
}

/// Serializes named values to safetensors bytes; `metadata` is stored in the header and
/// `"format": "pt"` is always set.
pub fn to_bytes<'a>(
    weights: impl IntoIterator<Item = (&'a str, Operand<'a>)>,
    metadata: &HashMap<String, String>,
) -> Vec<u8> {
    let owned: Vec<(String, DType, Vec<usize>, Vec<u8>)> = weights
        .into_iter()
        .map(|(n, t)| {
            (
                n.to_string(),
                t.dtype(),
                t.shape().to_vec(),
                operand_bytes(t),
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
/// pickle stream (protocol 2–5 starts with 0x80 and the protocol number) — and not a
/// safetensors file. A safetensors file starts with its header's length, which can read as
/// those bytes (a 640-byte header starts `80 02 00 00`), then its JSON header: `{` at byte 8,
/// where neither a zip archive nor a pickle has one.
fn is_pytorch_pickle(bytes: &[u8]) -> bool {
    let safetensors_header = bytes.get(8) == Some(&b'{');
    !safetensors_header && (bytes.starts_with(b"PK\x03\x04") || matches!(bytes, [0x80, 2..=5, ..]))
}

/// Named values read from a safetensors file, sorted by name.
pub type Named = Vec<(String, OwnedOperand)>;

/// Parses safetensors bytes into named values (sorted by name) and the header metadata;
/// `path` only names the file in errors.
pub fn parse(
    bytes: &[u8],
    path: &Path,
) -> Result<(Named, HashMap<String, String>), CheckpointError> {
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
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let view = st.tensor(&name).map_err(format_err)?;
        let elem_bytes = view.dtype().bitsize().div_ceil(8);
        if let Err(e) = kiln_kernels::shape::checked_numel(view.shape(), elem_bytes) {
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
        out.push((name, t));
    }
    Ok((out, meta))
}

/// Writes `bytes` to `path` atomically: a sibling temporary file is written and synced, then
/// renamed over `path`. Any file may be written so (training logs are too), so errors are
/// plain I/O errors.
///
/// Only a regular file is replaced. A symbolic link is followed, so the file it points to is
/// replaced and the link kept. A path that names something else — `/dev/null`, a FIFO, a
/// terminal — is written in place: a rename would put a regular file where the device was
/// (as root, `--out /dev/null` once turned the machine's `/dev/null` into a file). A
/// directory is an error.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let resolved;
    let path = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            resolved = std::fs::canonicalize(path)?;
            resolved.as_path()
        }
        _ => path,
    };
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "is a directory",
            ))
        }
        Ok(m) if !m.is_file() => {
            let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
            return f.write_all(bytes);
        }
        _ => {}
    }
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

/// Writes named values and metadata to `path` atomically.
pub fn save<'a>(
    weights: impl IntoIterator<Item = (&'a str, Operand<'a>)>,
    path: &Path,
    metadata: &HashMap<String, String>,
) -> Result<(), CheckpointError> {
    write_atomic(path, &to_bytes(weights, metadata)).map_err(|source| CheckpointError::Io {
        path: path.into(),
        source,
    })
}

/// Reads a safetensors file into named values and its header metadata.
pub fn load(path: &Path) -> Result<(Named, HashMap<String, String>), CheckpointError> {
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.into(),
        source,
    })?;
    parse(&bytes, path)
}
