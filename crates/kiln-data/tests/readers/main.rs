//! Every reader on tiny valid files and on each kind of bad file, checking the exact error.

mod cifar10;
mod csv;
mod digits;
mod image_folder;
mod mnist;

use flate2::write::GzEncoder;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `dir/name`, returning the path.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `bytes` gzip-compressed.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A fresh temporary directory.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}
