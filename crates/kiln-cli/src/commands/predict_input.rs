//! What `kiln predict` was given: one row of numbers, an image file or a CSV file of rows.

use std::io::Read;
use std::path::{Path, PathBuf};

/// The kinds of input `kiln predict` reads.
#[derive(Debug, PartialEq)]
pub enum Input {
    /// Comma-separated values given on the command line.
    Row(String),
    /// A PNG or JPEG file.
    Image(PathBuf),
    /// A CSV file with a header row (named `*.csv`).
    Csv(PathBuf),
}

/// Why an input argument cannot be predicted.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The path is a directory.
    #[error(
        "{}: is a directory; give a CSV file (.csv), an image (PNG or JPEG) or a row of numbers",
        .0.display()
    )]
    Directory(PathBuf),
    /// A file that is neither a PNG/JPEG image nor a `.csv` file.
    #[error(
        "{}: neither an image (PNG or JPEG) nor a CSV file (a CSV file must be named *.csv)",
        .0.display()
    )]
    Unsupported(PathBuf),
    /// Neither an existing file nor a row of numbers.
    #[error("{}: no such file (and not a row of numbers)", .0.display())]
    Missing(PathBuf),
    /// The path exists but cannot be read.
    #[error("{}: cannot read: {source}", path.display())]
    Unreadable {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Decides what `arg` is: an existing path by its extension (`.csv`, `.png`, `.jpg`,
/// `.jpeg`) or, lacking one of those, by its first bytes; anything else that is no path is
/// a row (whose values are checked when it is parsed).
pub fn classify(arg: &str) -> Result<Input, InputError> {
    let path = Path::new(arg);
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        // One value or several separated by commas: a row, even if a value is bad (the row
        // parser then names it); a single word that is not a number was meant as a file.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return if arg.contains(',') || arg.trim().parse::<f64>().is_ok() {
                Ok(Input::Row(arg.to_string()))
            } else {
                Err(InputError::Missing(path.into()))
            };
        }
        Err(source) => {
            return Err(InputError::Unreadable {
                path: path.into(),
                source,
            })
        }
    };
    if meta.is_dir() {
        return Err(InputError::Directory(path.into()));
    }
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("csv") => return Ok(Input::Csv(path.into())),
        Some("png" | "jpg" | "jpeg") => return Ok(Input::Image(path.into())),
        _ => {}
    }
    // An image saved without its extension is still recognised by its signature.
    let mut head = [0u8; 16];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|source| InputError::Unreadable {
            path: path.into(),
            source,
        })?;
    match image::guess_format(&head[..n]) {
        Ok(image::ImageFormat::Png | image::ImageFormat::Jpeg) => Ok(Input::Image(path.into())),
        _ => Err(InputError::Unsupported(path.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_files_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p.to_str().unwrap().to_string()
        };
        assert_eq!(classify("1,2").unwrap(), Input::Row("1,2".into()));
        assert_eq!(classify("-1.5").unwrap(), Input::Row("-1.5".into()));
        assert_eq!(classify("1,x").unwrap(), Input::Row("1,x".into()));
        let csv = file("rows.CSV", b"a\n1\n");
        assert_eq!(classify(&csv).unwrap(), Input::Csv(csv.clone().into()));
        let png = file("digit", b"\x89PNG\r\n\x1a\n0000");
        assert_eq!(classify(&png).unwrap(), Input::Image(png.clone().into()));
        let txt = file("notes.txt", b"hello");
        assert!(matches!(classify(&txt), Err(InputError::Unsupported(_))));
        let d = dir.path().to_str().unwrap();
        assert!(matches!(classify(d), Err(InputError::Directory(_))));
        assert!(matches!(classify("nope.csv"), Err(InputError::Missing(_))));
    }
}
