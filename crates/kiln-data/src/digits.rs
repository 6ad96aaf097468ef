//! The bundled handwritten-digits dataset: 1,797 8×8 grey images of the digits 0–9.
//!
//! **Source:** *Optical Recognition of Handwritten Digits*, UCI Machine Learning Repository,
//! E. Alpaydin and C. Kaynak (1998), <https://doi.org/10.24432/C50P49> — the 1,797-sample test
//! set as distributed with scikit-learn (`sklearn/datasets/data/digits.csv.gz`).
//! **Licence:** Creative Commons Attribution 4.0 International (CC BY 4.0).
//!
//! The file is compiled into the binary (57 KB, gzip-compressed CSV with no header: 64 pixel
//! counts 0–16, row-major, then the label), so training needs no download and no file.
//!
//! ```
//! use kiln_data::{digits, DataLoader, Dataset};
//! let (train, test) = digits::default_split(); // stratified 80/20, seed 0
//! assert_eq!((train.len(), test.len()), (1438, 359));
//! let loader = DataLoader::new(train.dataset(), 64).shuffle(true);
//! let (x, y) = loader.iter().next().unwrap(); // x: f32 [64, 64] in [0, 1], y: i64 [64]
//! assert_eq!(x.shape(), &[64, 64]);
//! ```

use crate::dataset::TensorDataset;
use crate::error::{DataError, Result};
use crate::io::{maybe_gunzip, read_bytes};
use crate::rng::{derive_key, permutation, stream};
use kiln_core::Tensor;
use std::path::Path;

/// The bundled file: gzip-compressed CSV, 1,797 rows of 65 integers.
static BUNDLED: &[u8] = include_bytes!("../data/digits.csv.gz");

/// The number of samples in the bundled dataset.
pub const NUM_SAMPLES: usize = 1797;
/// Features per sample (8 × 8 pixels).
pub const NUM_FEATURES: usize = 64;
/// The number of classes.
pub const NUM_CLASSES: usize = 10;
/// The largest pixel value (pixels are counts 0..=16; features are scaled by 1/16).
pub const MAX_PIXEL: u32 = 16;
/// The test fraction of [`default_split`].
pub const DEFAULT_TEST_FRACTION: f64 = 0.2;
/// The seed of [`default_split`].
pub const DEFAULT_SEED: u64 = 0;

/// Digit images and labels.
#[derive(Clone, Debug)]
pub struct Digits {
    features: Tensor,
    labels: Tensor,
}

impl Digits {
    /// The number of samples.
    pub fn len(&self) -> usize {
        self.labels.size(0)
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `f32 [N, 64]` pixel intensities in [0, 1] (count / 16).
    pub fn features(&self) -> &Tensor {
        &self.features
    }

    /// `i64 [N]` digit labels 0..=9.
    pub fn labels(&self) -> &Tensor {
        &self.labels
    }

    /// The features as images, `f32 [N, 1, 8, 8]` (a view, no copy).
    pub fn images(&self) -> Tensor {
        self.features.reshape([self.len(), 1, 8, 8])
    }

    /// A dataset of (`f32 [64]`, `i64` label) samples, for MLPs.
    pub fn dataset(&self) -> TensorDataset {
        TensorDataset::new(self.features.clone(), self.labels.clone())
    }

    /// A dataset of (`f32 [1, 8, 8]`, `i64` label) samples, for convolutional nets.
    pub fn image_dataset(&self) -> TensorDataset {
        TensorDataset::new(self.images(), self.labels.clone())
    }

    /// The samples at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Digits {
        let idx = Tensor::from_vec(
            indices.iter().map(|&i| i as i64).collect::<Vec<_>>(),
            [indices.len()],
        );
        Digits {
            features: self.features.index_select(0, &idx),
            labels: self.labels.index_select(0, &idx),
        }
    }

    /// A stratified split into (train, test): within each class, a seeded shuffle puts
    /// `round(count × test_fraction)` samples in the test set. Both parts keep the original
    /// sample order. The same arguments always give the same split.
    ///
    /// # Panics
    /// If `test_fraction` is not in [0, 1].
    pub fn train_test_split(&self, test_fraction: f64, seed: u64) -> (Digits, Digits) {
        if !(0.0..=1.0).contains(&test_fraction) {
            panic!("digits::train_test_split: test_fraction {test_fraction} is not in [0, 1]");
        }
        let labels = self.labels.to_vec::<i64>();
        let mut is_test = vec![false; labels.len()];
        for class in 0..NUM_CLASSES as i64 {
            let members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
            let n_test = (members.len() as f64 * test_fraction).round() as usize;
            let perm = permutation(
                members.len(),
                derive_key(&[stream::TRAIN_TEST, seed, class as u64]),
            );
            for &k in &perm[..n_test] {
                is_test[members[k]] = true;
            }
        }
        let (test, train): (Vec<usize>, Vec<usize>) = (0..labels.len()).partition(|&i| is_test[i]);
        (self.select(&train), self.select(&test))
    }
}

/// The bundled dataset: all 1,797 samples.
pub fn load() -> Digits {
    parse(BUNDLED, Path::new("<bundled digits.csv.gz>"))
        .expect("the bundled digits data is valid (checked by the crate's tests)")
}

/// The bundled dataset split into (train, test) by [`Digits::train_test_split`].
pub fn train_test_split(test_fraction: f64, seed: u64) -> (Digits, Digits) {
    load().train_test_split(test_fraction, seed)
}

/// The standard split: stratified, 20 % test, seed 0 — 1,438 training and 359 test samples.
pub fn default_split() -> (Digits, Digits) {
    train_test_split(DEFAULT_TEST_FRACTION, DEFAULT_SEED)
}

/// Reads a file in the bundled format (gzip-compressed or plain CSV, no header, 65 integers
/// per row).
pub fn load_from(path: impl AsRef<Path>) -> Result<Digits> {
    let path = path.as_ref();
    parse(&read_bytes(path)?, path)
}

/// Parses the bundled format from bytes (gzip or plain); `path` only names the source in
/// errors. A row without exactly 65 integers or with a pixel outside 0..=16 is
/// [`DataError::BadRow`]; a label outside 0..=9 is [`DataError::BadLabel`]; no rows at all is
/// [`DataError::Malformed`].
pub fn parse(bytes: &[u8], path: &Path) -> Result<Digits> {
    let text = maybe_gunzip(bytes.to_vec(), path)?;
    let mut features = Vec::with_capacity(NUM_SAMPLES * NUM_FEATURES);
    let mut labels = Vec::with_capacity(NUM_SAMPLES);
    for (index, line) in text.split(|&b| b == b'\n').enumerate() {
        let line_no = index as u64 + 1;
        let bad_row = |reason: String| DataError::BadRow {
            path: path.into(),
            line: line_no,
            reason,
        };
        let line = std::str::from_utf8(line).map_err(|e| bad_row(format!("invalid UTF-8: {e}")))?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let values = line
            .split(',')
            .map(|v| v.trim().parse::<u32>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| bad_row(format!("not a list of integers: {e}")))?;
        if values.len() != NUM_FEATURES + 1 {
            return Err(bad_row(format!(
                "{} values, expected {}",
                values.len(),
                NUM_FEATURES + 1
            )));
        }
        if let Some(&p) = values[..NUM_FEATURES].iter().find(|&&p| p > MAX_PIXEL) {
            return Err(bad_row(format!("pixel {p} is not in 0..={MAX_PIXEL}")));
        }
        let label = values[NUM_FEATURES];
        if label as usize >= NUM_CLASSES {
            return Err(DataError::BadLabel {
                path: path.into(),
                index: labels.len(),
                reason: format!("line {line_no}: label {label} is not in 0..{NUM_CLASSES}"),
            });
        }
        features.extend(
            values[..NUM_FEATURES]
                .iter()
                .map(|&p| p as f32 / MAX_PIXEL as f32),
        );
        labels.push(i64::from(label));
    }
    if labels.is_empty() {
        return Err(DataError::Malformed {
            path: path.into(),
            reason: "no data rows".into(),
        });
    }
    let n = labels.len();
    Ok(Digits {
        features: Tensor::from_vec(features, [n, NUM_FEATURES]),
        labels: Tensor::from_vec(labels, [n]),
    })
}
