//! CIFAR-10 from its binary batches in a directory you name.
//!
//! The "CIFAR-10 binary version" (`cifar-10-binary.tar.gz`, A. Krizhevsky, 2009) unpacks to
//! `cifar-10-batches-bin/` with `data_batch_1.bin` … `data_batch_5.bin` (training) and
//! `test_batch.bin`. Each file is a sequence of 3,073-byte records: one label byte (0–9), then
//! 3,072 pixel bytes — the 32×32 red plane, then green, then blue, each row-major — which is
//! already the `[3, 32, 32]` layout. The official files hold 10,000 records each; the reader
//! accepts any positive number of whole records. Nothing is downloaded.
//!
//! ```no_run
//! use kiln_data::{cifar10, Split};
//! let test = cifar10::load("data/cifar-10-batches-bin", Split::Test)?; // u8 [10000, 3, 32, 32]
//! let first_class = cifar10::CLASSES[test.labels.i(0).item::<i64>() as usize];
//! # Ok::<(), kiln_data::DataError>(())
//! ```

use crate::error::{DataError, Result};
use crate::io::{find_file, read_bytes};
use crate::labeled::{LabeledImages, Split};
use kiln_core::Tensor;
use std::path::Path;

/// The class names, by label.
pub const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Pixel bytes per image (3 × 32 × 32).
pub const IMAGE_BYTES: usize = 3 * 32 * 32;
/// Bytes per record: the label byte and the pixels.
pub const RECORD_BYTES: usize = 1 + IMAGE_BYTES;

/// The batch file names of a split.
pub fn file_names(split: Split) -> Vec<String> {
    match split {
        Split::Train => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
        Split::Test => vec!["test_batch.bin".to_string()],
    }
}

/// Reads one batch file: images `u8 [N, 3, 32, 32]`, labels `i64 [N]`.
///
/// Errors: [`DataError::Missing`] for a missing file, [`DataError::Truncated`] for an empty
/// file, [`DataError::WrongLength`] when the length is not a whole number of records,
/// [`DataError::BadLabel`] for a label above 9.
pub fn read_batch(path: impl AsRef<Path>) -> Result<LabeledImages> {
    let path = path.as_ref();
    let bytes = read_bytes(path)?;
    let (pixels, labels) = parse_records(&bytes, path)?;
    let n = labels.len();
    Ok(LabeledImages {
        images: Tensor::from_vec(pixels, [n, 3, 32, 32]),
        labels: Tensor::from_vec(labels, [n]),
    })
}

/// Reads a split from `dir` (the unpacked `cifar-10-batches-bin`, or its parent) and
/// concatenates its batches in file order.
pub fn load(dir: impl AsRef<Path>, split: Split) -> Result<LabeledImages> {
    let mut dir = dir.as_ref().to_path_buf();
    let nested = dir.join("cifar-10-batches-bin");
    if nested.is_dir() && !dir.join(&file_names(split)[0]).exists() {
        dir = nested;
    }
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for name in file_names(split) {
        let path = find_file(&dir, &name)?;
        let (p, l) = parse_records(&read_bytes(&path)?, &path)?;
        pixels.extend_from_slice(&p);
        labels.extend_from_slice(&l);
    }
    let n = labels.len();
    Ok(LabeledImages {
        images: Tensor::from_vec(pixels, [n, 3, 32, 32]),
        labels: Tensor::from_vec(labels, [n]),
    })
}

/// Splits `bytes` into pixel bytes and labels, validating lengths and labels.
fn parse_records(bytes: &[u8], path: &Path) -> Result<(Vec<u8>, Vec<i64>)> {
    if bytes.is_empty() {
        return Err(DataError::Truncated {
            path: path.into(),
            reason: "the file is empty".into(),
        });
    }
    let (n, over) = (bytes.len() / RECORD_BYTES, bytes.len() % RECORD_BYTES);
    if over > 0 {
        return Err(DataError::WrongLength {
            path: path.into(),
            reason: format!(
                "{} bytes is not a whole number of {RECORD_BYTES}-byte records \
                 ({n} full, {over} bytes over)",
                bytes.len()
            ),
        });
    }
    let mut pixels = Vec::with_capacity(n * IMAGE_BYTES);
    let mut labels = Vec::with_capacity(n);
    for (index, record) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
        let label = record[0];
        if label as usize >= CLASSES.len() {
            return Err(DataError::BadLabel {
                path: path.into(),
                index,
                reason: format!("label {label} is not in 0..{}", CLASSES.len()),
            });
        }
        labels.push(i64::from(label));
        pixels.extend_from_slice(&record[1..]);
    }
    Ok((pixels, labels))
}
