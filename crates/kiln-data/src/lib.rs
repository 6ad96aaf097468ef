//! kiln-data: getting data into Kiln — datasets, the batching [`DataLoader`], per-sample
//! [`transforms`], and readers for common file formats. Like `torch.utils.data` plus the
//! dataset readers of torchvision, without downloads: readers take files you already have,
//! and the small [`digits`] dataset is bundled in the binary.
//!
//! - **Datasets:** the [`Dataset`] trait; [`TensorDataset`] (rows of a features and a labels
//!   tensor), [`Subset`], [`ConcatDataset`], seeded [`random_split`], and [`Transformed`] (a
//!   dataset with a per-sample transform).
//! - **Loading:** [`DataLoader`] — batch size, per-epoch seeded shuffling (`set_epoch`),
//!   `drop_last`, a [`Collate`] step (stacking by default), and in-order prefetching on
//!   worker threads.
//! - **Transforms:** [`transforms::ToFloat`], [`transforms::Normalize`],
//!   [`transforms::RandomHorizontalFlip`], [`transforms::RandomCrop`],
//!   [`transforms::Compose`]; randomness is a pure function of (seed, epoch, sample index).
//! - **Readers:** [`digits`] (bundled), [`mnist`] / Fashion-MNIST ([`idx`] files), [`cifar10`]
//!   binary batches, [`csv`] tables, [`image_folder`] (PNG/JPEG, one folder per class).
//!   Every reader returns a [`DataError`] naming the file for missing, truncated or malformed
//!   input; none panics on bad bytes.
//!
//! ```
//! use kiln_data::{digits, DataLoader};
//! let (train, _test) = digits::default_split();
//! let loader = DataLoader::new(train.dataset(), 32).shuffle(true).seed(0);
//! for (x, y) in &loader {
//!     assert_eq!(x.size(0), y.size(0)); // x: f32 [32, 64], y: i64 [32]
//! }
//! ```
//!
//! Layering: built on `kiln-core` alone (batches are tensors); it knows nothing of models,
//! training or graphs.
//!
//! Guide: *Data* (`docs/src/data.md`).

#![deny(missing_docs)]

pub mod cifar10;
pub mod csv;
mod dataset;
pub mod digits;
mod error;
pub mod idx;
pub mod image_folder;
mod io;
mod labeled;
mod loader;
pub mod mnist;
mod rng;
pub mod transforms;

pub use dataset::{
    random_split, ConcatDataset, Dataset, MultiInputDataset, SplitLengths, Subset, TensorDataset,
    Transformed,
};
pub use error::{DataError, Result};
pub use labeled::{LabeledImages, Split};
pub use loader::{Batches, Collate, DataLoader, FnCollate, StackCollate};
pub use rng::SampleRng;
