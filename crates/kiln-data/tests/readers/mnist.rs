use crate::{gzip, tempdir, write};
use kiln_core::DType;
use kiln_data::{idx, mnist, DataError, Split};
use std::path::Path;

fn images_file(magic: u32, n: u32, rows: u32, cols: u32, pixels: usize) -> Vec<u8> {
    let mut b = Vec::new();
    for w in [magic, n, rows, cols] {
        b.extend_from_slice(&w.to_be_bytes());
    }
    b.extend((0..pixels).map(|i| (i % 256) as u8));
    b
}

fn labels_file(magic: u32, labels: &[u8]) -> Vec<u8> {
    let mut b = magic.to_be_bytes().to_vec();
    b.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    b.extend_from_slice(labels);
    b
}

/// A valid 3-image 2×4 set for `split` in `dir`; `gz` compresses the image file.
fn write_set(dir: &Path, split: Split, gz: bool) {
    let (img, lab) = mnist::file_names(split);
    let images = images_file(idx::IMAGES_MAGIC, 3, 2, 4, 24);
    if gz {
        write(dir, &format!("{img}.gz"), &gzip(&images));
    } else {
        write(dir, img, &images);
    }
    write(dir, lab, &labels_file(idx::LABELS_MAGIC, &[7, 0, 9]));
}

#[test]
fn reads_raw_and_gzipped_idx() {
    let dir = tempdir();
    write_set(dir.path(), Split::Train, false);
    write_set(dir.path(), Split::Test, true);
    for split in [Split::Train, Split::Test] {
        let set = mnist::load(dir.path(), split).unwrap();
        assert_eq!(set.images.shape(), &[3, 1, 2, 4]);
        assert_eq!(set.images.dtype(), DType::U8);
        assert_eq!(set.labels.to_vec::<i64>(), vec![7, 0, 9]);
        assert_eq!(set.images.to_vec::<u8>()[8..10], [8, 9]);
        let x = set.float_images().to_vec::<f32>();
        assert!((x[23] - 23.0 / 255.0).abs() < 1e-7);
        assert_eq!(set.to_dataset().features().shape(), &[3, 1, 2, 4]);
    }
}

#[test]
fn missing_directory_and_files() {
    let dir = tempdir();
    let e = mnist::load(dir.path().join("absent"), Split::Train).unwrap_err();
    assert!(
        matches!(&e, DataError::Missing { path } if path.ends_with("absent")),
        "{e}"
    );
    let e = mnist::load(dir.path(), Split::Train).unwrap_err();
    assert!(
        matches!(&e, DataError::Missing { path } if path.ends_with("train-images-idx3-ubyte")),
        "{e}"
    );
    write_set(dir.path(), Split::Train, false);
    std::fs::remove_file(dir.path().join("train-labels-idx1-ubyte")).unwrap();
    let e = mnist::load(dir.path(), Split::Train).unwrap_err();
    assert!(matches!(e, DataError::Missing { .. }), "{e}");
}

/// Replaces the training images file with `bytes` and returns the error.
fn images_error(bytes: &[u8]) -> DataError {
    let dir = tempdir();
    write_set(dir.path(), Split::Train, false);
    write(dir.path(), "train-images-idx3-ubyte", bytes);
    mnist::load(dir.path(), Split::Train).unwrap_err()
}

#[test]
fn wrong_magic() {
    let e = images_error(&images_file(idx::LABELS_MAGIC, 3, 2, 4, 24));
    assert!(
        matches!(
            e,
            DataError::BadMagic {
                expected: 2051,
                found: 2049,
                ..
            }
        ),
        "{e}"
    );
    let e = idx::parse_labels(&labels_file(1234, &[1]), Path::new("l")).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::BadMagic {
                expected: 2049,
                found: 1234,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn truncated_header_and_data() {
    let full = images_file(idx::IMAGES_MAGIC, 3, 2, 4, 24);
    assert!(matches!(
        images_error(&full[..2]),
        DataError::Truncated { .. }
    ));
    assert!(matches!(
        images_error(&full[..10]),
        DataError::Truncated { .. }
    ));
    assert!(matches!(
        images_error(&full[..30]),
        DataError::Truncated { .. }
    ));
    assert!(matches!(images_error(&[]), DataError::Truncated { .. }));
    let mut z = gzip(&images_file(idx::IMAGES_MAGIC, 300, 20, 20, 300 * 400));
    z.truncate(z.len() - 20);
    assert!(matches!(images_error(&z), DataError::Truncated { .. }));
}

#[test]
fn trailing_bytes_are_a_wrong_length() {
    let e = images_error(&images_file(idx::IMAGES_MAGIC, 3, 2, 4, 25));
    assert!(matches!(e, DataError::WrongLength { .. }), "{e}");
}

#[test]
fn count_mismatch_and_bad_label() {
    let dir = tempdir();
    write_set(dir.path(), Split::Train, false);
    write(
        dir.path(),
        "train-labels-idx1-ubyte",
        &labels_file(idx::LABELS_MAGIC, &[1, 2]),
    );
    let e = mnist::load(dir.path(), Split::Train).unwrap_err();
    assert!(matches!(e, DataError::Mismatch { .. }), "{e}");

    write(
        dir.path(),
        "train-labels-idx1-ubyte",
        &labels_file(idx::LABELS_MAGIC, &[1, 10, 2]),
    );
    let e = mnist::load(dir.path(), Split::Train).unwrap_err();
    assert!(matches!(e, DataError::BadLabel { index: 1, .. }), "{e}");
}
