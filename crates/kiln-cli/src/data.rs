//! `--data` sources: the bundled digits, MNIST or CIFAR-10 directories, or a CSV file; each
//! split into train / validation / test sets deterministically.

use crate::csv_table;
use crate::models::{ModelSpec, MAX_CLASSES};
use kiln_core::Tensor;
use kiln_data::{digits, random_split, Dataset, Split, Subset, TensorDataset};
use std::path::{Path, PathBuf};

/// Where training data comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum DataSpec {
    /// The UCI digits bundled in the binary.
    Digits,
    /// An MNIST / Fashion-MNIST IDX directory.
    Mnist(PathBuf),
    /// A CIFAR-10 binary-batch directory.
    Cifar10(PathBuf),
    /// A CSV file with a header and a `label` column (or `--label-column`).
    Csv(PathBuf),
}

impl std::str::FromStr for DataSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<DataSpec, String> {
        let (kind, arg) = s.split_once(':').unwrap_or((s, ""));
        let path = || {
            if arg.is_empty() {
                Err(format!("`--data {kind}:<path>` needs a path"))
            } else {
                Ok(PathBuf::from(arg))
            }
        };
        match kind {
            "digits" => Ok(DataSpec::Digits),
            "mnist" => Ok(DataSpec::Mnist(path()?)),
            "cifar10" => Ok(DataSpec::Cifar10(path()?)),
            "csv" => Ok(DataSpec::Csv(path()?)),
            _ => Err(format!(
                "unknown data source `{s}`; use digits, mnist:<dir>, cifar10:<dir> or csv:<file>"
            )),
        }
    }
}

impl DataSpec {
    /// The same source with its path (if any) passed through `f`.
    pub fn map_path(&self, f: impl FnOnce(&Path) -> PathBuf) -> DataSpec {
        match self {
            DataSpec::Digits => DataSpec::Digits,
            DataSpec::Mnist(p) => DataSpec::Mnist(f(p)),
            DataSpec::Cifar10(p) => DataSpec::Cifar10(f(p)),
            DataSpec::Csv(p) => DataSpec::Csv(f(p)),
        }
    }

    /// The `--data` argument that parses back to this source; `None` when the path is not
    /// UTF-8 text.
    pub fn to_arg(&self) -> Option<String> {
        Some(match self {
            DataSpec::Digits => "digits".into(),
            DataSpec::Mnist(p) => format!("mnist:{}", p.to_str()?),
            DataSpec::Cifar10(p) => format!("cifar10:{}", p.to_str()?),
            DataSpec::Csv(p) => format!("csv:{}", p.to_str()?),
        })
    }
}

/// As the `--data` argument (a path that is not UTF-8 is shown lossily).
impl std::fmt::Display for DataSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            DataSpec::Digits => write!(f, "digits"),
            DataSpec::Mnist(p) => write!(f, "mnist:{}", p.display()),
            DataSpec::Cifar10(p) => write!(f, "cifar10:{}", p.display()),
            DataSpec::Csv(p) => write!(f, "csv:{}", p.display()),
        }
    }
}

/// A dataset split three ways, with what the model needs to know about it.
pub struct Splits {
    /// Training samples.
    pub train: Subset<TensorDataset>,
    /// Validation samples (monitored each epoch).
    pub val: Subset<TensorDataset>,
    /// Held-out test samples (reported at the end).
    pub test: Subset<TensorDataset>,
    /// Per-sample input shape.
    pub input: Vec<usize>,
    /// Number of classes.
    pub classes: usize,
    /// A short name for run directories.
    pub name: String,
    /// Divisor from raw values to model inputs.
    pub scale: f64,
    /// The class names by index when the labels are text (CSV data only).
    pub class_names: Option<Vec<String>>,
    /// The feature column names (CSV data only).
    pub feature_names: Option<Vec<String>>,
}

/// The number of classes labels `0..=max` make; `source` names where the labels come from.
fn num_classes(labels: &Tensor, source: &str) -> Result<usize, String> {
    if labels.numel() == 0 {
        return Err(format!("{source}: no samples"));
    }
    let values = labels.to_vec::<i64>();
    let (row, &max) = values
        .iter()
        .enumerate()
        .max_by_key(|&(_, v)| *v)
        .expect("not empty");
    if max < 0 || max >= MAX_CLASSES as i64 {
        return Err(format!(
            "{source}: label {max} (sample {row}) would make {} classes; labels must be class \
             indices 0 to {}",
            max as i128 + 1,
            MAX_CLASSES - 1
        ));
    }
    Ok(max as usize + 1)
}

/// The largest label of `split` (`None` when it is empty).
pub fn max_label(split: &Subset<TensorDataset>) -> Option<i64> {
    (0..split.len()).map(|i| split.get(i).1.item::<i64>()).max()
}

fn whole(ds: TensorDataset) -> Subset<TensorDataset> {
    let n = ds.len();
    Subset::new(ds, (0..n).collect())
}

/// Holds out 10% of `train` for validation.
fn with_val(train: TensorDataset, seed: u64) -> (Subset<TensorDataset>, Subset<TensorDataset>) {
    let mut parts = random_split(train, [0.9, 0.1], seed).into_iter();
    (parts.next().unwrap(), parts.next().unwrap())
}

impl Splits {
    /// An error unless every split named in `which` ("train", "val", "test") has samples.
    pub fn require(&self, which: &[&str]) -> Result<(), String> {
        for &w in which {
            let (len, what) = match w {
                "train" => (self.train.len(), "training"),
                "val" => (self.val.len(), "validation"),
                _ => (self.test.len(), "test"),
            };
            if len == 0 {
                return Err(format!(
                    "{}: the {what} split is empty ({} training, {} validation, {} test \
                     samples); use more data",
                    self.name,
                    self.train.len(),
                    self.val.len(),
                    self.test.len()
                ));
            }
        }
        Ok(())
    }
}

impl DataSpec {
    /// Loads and splits the data; file problems come back as readable errors. With `model`
    /// (evaluating a checkpoint), CSV columns and class names are matched to the model's.
    pub fn load(
        &self,
        seed: u64,
        label_column: &str,
        model: Option<&ModelSpec>,
    ) -> Result<Splits, String> {
        match self {
            DataSpec::Digits => {
                let (train, test) = digits::default_split();
                let classes = num_classes(train.labels(), "digits")?;
                let (tr, val) = with_val(train.image_dataset(), seed);
                Ok(Splits {
                    train: tr,
                    val,
                    test: whole(test.image_dataset()),
                    input: vec![1, 8, 8],
                    classes,
                    name: "digits".into(),
                    scale: 16.0,
                    class_names: None,
                    feature_names: None,
                })
            }
            DataSpec::Mnist(dir) | DataSpec::Cifar10(dir) => {
                let load = |split| match self {
                    DataSpec::Mnist(_) => kiln_data::mnist::load(dir, split),
                    _ => kiln_data::cifar10::load(dir, split),
                };
                let train = load(Split::Train).map_err(|e| e.to_string())?;
                let test = load(Split::Test).map_err(|e| e.to_string())?;
                let input = train.images.shape()[1..].to_vec();
                let classes = num_classes(&train.labels, &format!("{}", dir.display()))?;
                let (tr, val) = with_val(train.to_dataset(), seed);
                let name = if matches!(self, DataSpec::Mnist(_)) {
                    "mnist"
                } else {
                    "cifar10"
                };
                Ok(Splits {
                    train: tr,
                    val,
                    test: whole(test.to_dataset()),
                    input,
                    classes,
                    name: name.into(),
                    scale: 255.0,
                    class_names: None,
                    feature_names: None,
                })
            }
            DataSpec::Csv(file) => {
                let data = csv_table::load(file, label_column, model)?;
                if data.is_empty() {
                    return Err(format!("{}: no data rows after the header", file.display()));
                }
                let input = vec![data.features.shape()[1]];
                let classes = num_classes(
                    &data.labels,
                    &format!("{}: label column `{label_column}`", file.display()),
                )?;
                let mut parts = random_split(data.to_dataset(), [0.8, 0.1, 0.1], seed).into_iter();
                let (train, val, test) = (
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                );
                let name = file
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "csv".into());
                Ok(Splits {
                    train,
                    val,
                    test,
                    input,
                    classes,
                    name,
                    scale: 1.0,
                    class_names: data.class_names,
                    feature_names: Some(data.feature_names),
                })
            }
        }
    }
}
