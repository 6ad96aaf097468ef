//! MNIST and Fashion-MNIST from their IDX files in a directory you name.
//!
//! The directory holds the four files under their original names, each raw or gzip-compressed
//! (`name` or `name.gz`): `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
//! `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`. Fashion-MNIST uses the same names and
//! format. Nothing is downloaded.
//!
//! ```no_run
//! use kiln_data::{mnist, Split};
//! let train = mnist::load("data/mnist", Split::Train)?; // images u8 [60000, 1, 28, 28]
//! let loader = kiln_data::DataLoader::new(train.to_dataset(), 64).shuffle(true);
//! # Ok::<(), kiln_data::DataError>(())
//! ```

use crate::error::{DataError, Result};
use crate::idx;
use crate::io::find_file;
use crate::labeled::{LabeledImages, Split};
use kiln_core::Tensor;
use std::path::Path;

/// The number of classes (digits 0–9; ten clothing categories for Fashion-MNIST).
pub const NUM_CLASSES: usize = 10;

/// Fashion-MNIST's class names, by label.
pub const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// The (images, labels) file names of a split, without `.gz`.
pub fn file_names(split: Split) -> (&'static str, &'static str) {
    match split {
        Split::Train => ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        Split::Test => ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }
}

/// Reads one split from `dir`: images `u8 [N, 1, rows, cols]`, labels `i64 [N]`.
///
/// Errors: [`DataError::Missing`] for a missing directory or file; [`DataError::BadMagic`],
/// [`DataError::Truncated`] or [`DataError::WrongLength`] for a malformed file;
/// [`DataError::Mismatch`] when the image and label counts differ; [`DataError::BadLabel`] for
/// a label above 9.
pub fn load(dir: impl AsRef<Path>, split: Split) -> Result<LabeledImages> {
    let dir = dir.as_ref();
    let (images_name, labels_name) = file_names(split);
    let images_path = find_file(dir, images_name)?;
    let labels_path = find_file(dir, labels_name)?;
    let images = idx::read_images(&images_path)?;
    let labels = idx::read_labels(&labels_path)?;
    if images.count != labels.len() {
        return Err(DataError::Mismatch {
            path: labels_path,
            reason: format!(
                "{} labels for {} images in {}",
                labels.len(),
                images.count,
                images_path.display()
            ),
        });
    }
    if let Some((index, &label)) = labels
        .iter()
        .enumerate()
        .find(|&(_, &l)| l as usize >= NUM_CLASSES)
    {
        return Err(DataError::BadLabel {
            path: labels_path,
            index,
            reason: format!("label {label} is not in 0..{NUM_CLASSES}"),
        });
    }
    Ok(LabeledImages {
        images: Tensor::from_vec(images.pixels, [images.count, 1, images.rows, images.cols]),
        labels: Tensor::from_vec(
            labels.into_iter().map(i64::from).collect::<Vec<_>>(),
            [images.count],
        ),
    })
}
