//! File access shared by the readers: whole-file reads with transparent gunzip, and locating a
//! file that may be stored raw or gzip-compressed.

use crate::error::{DataError, Result};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The two bytes every gzip stream starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The contents of `path`, decompressed if they are gzip data (detected by magic bytes).
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| DataError::from_io(path, e))?;
    maybe_gunzip(bytes, path)
}

/// `bytes` decompressed if they start with the gzip magic, else unchanged.
pub(crate) fn maybe_gunzip(bytes: Vec<u8>, path: &Path) -> Result<Vec<u8>> {
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Ok(bytes);
    }
    let mut out = Vec::new();
    GzDecoder::new(&bytes[..])
        .read_to_end(&mut out)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => DataError::Truncated {
                path: path.to_path_buf(),
                reason: "the gzip stream ends early".into(),
            },
            _ => DataError::Decode {
                path: path.to_path_buf(),
                reason: format!("gzip: {e}"),
            },
        })?;
    Ok(out)
}

/// `dir/name`, or `dir/name.gz` if only that exists; [`DataError::Missing`] otherwise (naming
/// the directory if it is missing, else the uncompressed file name).
pub(crate) fn find_file(dir: &Path, name: &str) -> Result<PathBuf> {
    if !dir.is_dir() {
        return Err(DataError::Missing {
            path: dir.to_path_buf(),
        });
    }
    let raw = dir.join(name);
    if raw.is_file() {
        return Ok(raw);
    }
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    Err(DataError::Missing { path: raw })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gunzips_only_gzip() {
        let p = Path::new("x");
        assert_eq!(maybe_gunzip(b"plain".to_vec(), p).unwrap(), b"plain");
        assert_eq!(maybe_gunzip(gz(b"hello"), p).unwrap(), b"hello");
    }

    #[test]
    fn truncated_gzip_is_an_error() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut z = gz(&data);
        z.truncate(z.len() / 2);
        let err = maybe_gunzip(z, Path::new("t.gz")).unwrap_err();
        assert!(matches!(err, DataError::Truncated { .. }), "{err}");
    }

    #[test]
    fn corrupt_gzip_is_a_decode_error() {
        let mut z = gz(b"some text that compresses");
        let n = z.len();
        for b in &mut z[10..n - 8] {
            *b = 0xff;
        }
        let err = maybe_gunzip(z, Path::new("c.gz")).unwrap_err();
        assert!(
            matches!(err, DataError::Decode { .. } | DataError::Truncated { .. }),
            "{err}"
        );
    }
}
