//! The IDX binary format of MNIST and Fashion-MNIST (`*-idx3-ubyte` images, `*-idx1-ubyte`
//! labels), raw or gzip-compressed.
//!
//! Layout (big-endian): a `u32` magic number — 2051 (`0x00000803`: unsigned bytes, 3 dims) for
//! images, 2049 (`0x00000801`: unsigned bytes, 1 dim) for labels — then one `u32` per
//! dimension, then the data, row-major. Readers check the magic number, that the header is
//! complete and that the data is exactly as long as the dimensions say.

use crate::error::{DataError, Result};
use crate::io::read_bytes;
use std::path::Path;

/// Magic number of an IDX image file (`u8`, 3 dims).
pub const IMAGES_MAGIC: u32 = 2051;
/// Magic number of an IDX label file (`u8`, 1 dim).
pub const LABELS_MAGIC: u32 = 2049;

/// The contents of an IDX image file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    /// The number of images.
    pub count: usize,
    /// Rows (height) of each image.
    pub rows: usize,
    /// Columns (width) of each image.
    pub cols: usize,
    /// `count * rows * cols` pixels, image by image, row-major.
    pub pixels: Vec<u8>,
}

/// Reads an IDX image file (raw or `.gz`).
pub fn read_images(path: impl AsRef<Path>) -> Result<IdxImages> {
    let path = path.as_ref();
    parse_images(&read_bytes(path)?, path)
}

/// Reads an IDX label file (raw or `.gz`): one byte per label.
pub fn read_labels(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let path = path.as_ref();
    parse_labels(&read_bytes(path)?, path)
}

/// Parses decompressed IDX image bytes; `path` only names the source in errors.
pub fn parse_images(bytes: &[u8], path: &Path) -> Result<IdxImages> {
    let (dims, data) = parse(bytes, path, IMAGES_MAGIC, 3)?;
    let (count, rows, cols) = (dims[0], dims[1], dims[2]);
    Ok(IdxImages {
        count,
        rows,
        cols,
        pixels: data.to_vec(),
    })
}

/// Parses decompressed IDX label bytes; `path` only names the source in errors.
pub fn parse_labels(bytes: &[u8], path: &Path) -> Result<Vec<u8>> {
    let (_, data) = parse(bytes, path, LABELS_MAGIC, 1)?;
    Ok(data.to_vec())
}

/// Checks the header and length; returns the dimensions and the data bytes.
fn parse<'a>(
    bytes: &'a [u8],
    path: &Path,
    magic: u32,
    rank: usize,
) -> Result<(Vec<usize>, &'a [u8])> {
    let header = 4 * (1 + rank);
    let word = |i: usize| u32::from_be_bytes(bytes[4 * i..4 * i + 4].try_into().expect("4 bytes"));
    if bytes.len() < 4 {
        return Err(DataError::Truncated {
            path: path.into(),
            reason: format!("{} bytes, too short for the magic number", bytes.len()),
        });
    }
    if word(0) != magic {
        return Err(DataError::BadMagic {
            path: path.into(),
            expected: magic,
            found: word(0),
        });
    }
    if bytes.len() < header {
        return Err(DataError::Truncated {
            path: path.into(),
            reason: format!(
                "{} bytes, too short for the {header}-byte header",
                bytes.len()
            ),
        });
    }
    let dims: Vec<usize> = (1..=rank).map(|i| word(i) as usize).collect();
    let expected = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .and_then(|body| body.checked_add(header as u64))
        .ok_or_else(|| DataError::Malformed {
            path: path.into(),
            reason: format!("dimensions {dims:?} overflow"),
        })?;
    let found = bytes.len() as u64;
    if found < expected {
        return Err(DataError::Truncated {
            path: path.into(),
            reason: format!("dimensions {dims:?} need {expected} bytes, the file has {found}"),
        });
    }
    if found > expected {
        return Err(DataError::WrongLength {
            path: path.into(),
            reason: format!(
                "dimensions {dims:?} need {expected} bytes, the file has {found} ({} extra)",
                found - expected
            ),
        });
    }
    Ok((dims, &bytes[header..]))
}
