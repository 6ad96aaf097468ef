//! Tabular data from a CSV file with a header row: named feature columns and a label column.
//!
//! ```no_run
//! use kiln_data::csv::{self, CsvOptions, LabelKind};
//! let table = csv::load("iris.csv", &CsvOptions::new("species").label_kind(LabelKind::Named))?;
//! println!("{} rows, features {:?}, classes {:?}", table.len(), table.feature_names, table.class_names);
//! let ds = table.to_dataset(); // (f32 [F] features, i64 label) samples
//! # Ok::<(), kiln_data::DataError>(())
//! ```
//!
//! Feature cells must parse as finite numbers (surrounding spaces are ignored). The file may be
//! gzip-compressed. Errors name the file and the 1-based line: a row with the wrong number of
//! fields or a non-numeric feature is [`DataError::BadRow`], an unusable label is
//! [`DataError::BadLabel`], a requested column absent from the header is
//! [`DataError::MissingColumn`].

use crate::dataset::TensorDataset;
use crate::error::{DataError, Result};
use crate::io::read_bytes;
use kiln_core::Tensor;
use std::collections::BTreeMap;
use std::path::Path;

/// How to read the label column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LabelKind {
    /// A non-negative integer class index → `i64` labels (the default).
    #[default]
    Class,
    /// A real-valued regression target → `f32` labels.
    Regression,
    /// A class name (any text) → `i64` index into the sorted distinct names
    /// ([`CsvData::class_names`]).
    Named,
}

/// What to read from the CSV file.
#[derive(Clone, Debug)]
pub struct CsvOptions {
    /// The label column's header name.
    pub label: String,
    /// The feature columns' header names, in order; `None` = every column but the label.
    pub features: Option<Vec<String>>,
    /// How to read the label column.
    pub label_kind: LabelKind,
    /// The field delimiter (default `b','`).
    pub delimiter: u8,
}

impl CsvOptions {
    /// Reads label column `label` as integer classes, every other column as a feature.
    pub fn new(label: impl Into<String>) -> CsvOptions {
        CsvOptions {
            label: label.into(),
            features: None,
            label_kind: LabelKind::Class,
            delimiter: b',',
        }
    }

    /// Uses only these feature columns, in this order.
    pub fn features<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.features = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Sets how the label column is read.
    pub fn label_kind(mut self, kind: LabelKind) -> Self {
        self.label_kind = kind;
        self
    }

    /// Sets the field delimiter (e.g. `b';'` or `b'\t'`).
    pub fn delimiter(mut self, delimiter: u8) -> Self {
        self.delimiter = delimiter;
        self
    }
}

/// A CSV file read into tensors.
#[derive(Clone, Debug)]
pub struct CsvData {
    /// `f32 [N, F]` features, columns in [`feature_names`](Self::feature_names) order.
    pub features: Tensor,
    /// `[N]` labels: `i64` for [`LabelKind::Class`] and [`LabelKind::Named`], `f32` for
    /// [`LabelKind::Regression`].
    pub labels: Tensor,
    /// The feature column names.
    pub feature_names: Vec<String>,
    /// For [`LabelKind::Named`], the class names by index; else `None`.
    pub class_names: Option<Vec<String>>,
}

impl CsvData {
    /// The number of rows.
    pub fn len(&self) -> usize {
        self.labels.size(0)
    }

    /// True when the file has no data rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A dataset of (features `[F]`, label) samples.
    pub fn to_dataset(&self) -> TensorDataset {
        TensorDataset::new(self.features.clone(), self.labels.clone())
    }
}

/// Reads `path` (raw or gzip-compressed) as described by `options`.
pub fn load(path: impl AsRef<Path>, options: &CsvOptions) -> Result<CsvData> {
    let path = path.as_ref();
    parse(&read_bytes(path)?, path, options)
}

/// Parses CSV text; `path` only names the source in errors.
pub fn parse(bytes: &[u8], path: &Path, options: &CsvOptions) -> Result<CsvData> {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .delimiter(options.delimiter)
        .trim(::csv::Trim::All)
        .from_reader(bytes);
    let header = reader.headers().map_err(|e| csv_error(path, e))?.clone();
    if header.is_empty() {
        return Err(DataError::Malformed {
            path: path.into(),
            reason: "no header row".into(),
        });
    }
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| DataError::MissingColumn {
                path: path.into(),
                column: name.to_string(),
            })
    };
    let label_col = column(&options.label)?;
    let feature_names: Vec<String> = match &options.features {
        Some(names) => names.clone(),
        None => header
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != label_col)
            .map(|(_, h)| h.to_string())
            .collect(),
    };
    let feature_cols = feature_names
        .iter()
        .map(|n| column(n))
        .collect::<Result<Vec<_>>>()?;

    let mut features = Vec::new();
    let mut raw_labels = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let record = record.map_err(|e| csv_error(path, e))?;
        let line = record.position().map_or(0, |p| p.line());
        for (&col, name) in feature_cols.iter().zip(&feature_names) {
            let cell = &record[col];
            let value: f32 = cell.parse().map_err(|_| DataError::BadRow {
                path: path.into(),
                line,
                reason: format!("column {name:?}: {cell:?} is not a number"),
            })?;
            // "NaN", "inf" and 1e39 parse, but no model can learn from them: one such cell
            // turns every loss into NaN.
            if !value.is_finite() {
                return Err(DataError::BadRow {
                    path: path.into(),
                    line,
                    reason: format!("column {name:?}: {cell:?} is not a finite number"),
                });
            }
            features.push(value);
        }
        raw_labels.push((index, line, record[label_col].to_string()));
    }
    let n = raw_labels.len();
    let (labels, class_names) = labels(path, &options.label, options.label_kind, raw_labels)?;
    Ok(CsvData {
        features: Tensor::from_vec(features, [n, feature_cols.len()]),
        labels,
        feature_names,
        class_names,
    })
}

/// Converts the label cells (record index, line, text) to a label tensor.
fn labels(
    path: &Path,
    column: &str,
    kind: LabelKind,
    cells: Vec<(usize, u64, String)>,
) -> Result<(Tensor, Option<Vec<String>>)> {
    let n = cells.len();
    let bad = |index: usize, line: u64, why: String| DataError::BadLabel {
        path: path.into(),
        index,
        reason: format!("line {line}, column {column:?}: {why}"),
    };
    match kind {
        LabelKind::Class => {
            let values = cells
                .into_iter()
                .map(|(i, line, cell)| match cell.parse::<i64>() {
                    Ok(v) if v >= 0 => Ok(v),
                    _ => Err(bad(
                        i,
                        line,
                        format!("{cell:?} is not a class index (an integer >= 0)"),
                    )),
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((Tensor::from_vec(values, [n]), None))
        }
        LabelKind::Regression => {
            let values = cells
                .into_iter()
                .map(|(i, line, cell)| match cell.parse::<f32>() {
                    Ok(v) if v.is_finite() => Ok(v),
                    _ => Err(bad(i, line, format!("{cell:?} is not a finite number"))),
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((Tensor::from_vec(values, [n]), None))
        }
        LabelKind::Named => {
            if let Some((i, line, _)) = cells.iter().find(|(_, _, c)| c.is_empty()) {
                return Err(bad(*i, *line, "empty class name".into()));
            }
            let mut ids: BTreeMap<&str, i64> =
                cells.iter().map(|(_, _, c)| (c.as_str(), 0)).collect();
            for (k, id) in ids.values_mut().enumerate() {
                *id = k as i64;
            }
            let values: Vec<i64> = cells.iter().map(|(_, _, c)| ids[c.as_str()]).collect();
            let names = ids.keys().map(|s| s.to_string()).collect();
            Ok((Tensor::from_vec(values, [n]), Some(names)))
        }
    }
}

/// Maps a csv-crate error to ours, keeping the line number.
fn csv_error(path: &Path, e: ::csv::Error) -> DataError {
    let line = e.position().map_or(0, |p| p.line());
    match e.into_kind() {
        ::csv::ErrorKind::Io(source) => DataError::from_io(path, source),
        ::csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => DataError::BadRow {
            path: path.into(),
            line,
            reason: format!("{len} fields, but the header has {expected_len}"),
        },
        ::csv::ErrorKind::Utf8 { err, .. } => DataError::BadRow {
            path: path.into(),
            line,
            reason: format!("invalid UTF-8: {err}"),
        },
        other => DataError::Malformed {
            path: path.into(),
            reason: format!("{other:?}"),
        },
    }
}
