//! The data a checkpoint was trained on, recorded in its metadata so `kiln eval` can evaluate
//! on the same source (and the same test split) without being told again.

use crate::data::DataSpec;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Metadata key holding the [`DataRecord`] in `model.safetensors`.
pub const DATA_KEY: &str = "kiln.data";

/// What `kiln train` was given: `--data`, `--label-column` and the split seed.
#[derive(Clone, Debug, PartialEq)]
pub struct DataRecord {
    /// The data source; a path is absolute when it could be made so.
    pub data: DataSpec,
    /// The label column (used by CSV data only, and recorded only for it; read back as
    /// `label` for other sources).
    pub label_column: String,
    /// The seed of the train/validation/test split.
    pub seed: u64,
}

impl DataRecord {
    /// The record of a training run; a relative path is made absolute (against the current
    /// directory) so the checkpoint can be evaluated from anywhere.
    pub fn for_training(data: &DataSpec, label_column: &str, seed: u64) -> DataRecord {
        let data = data.map_path(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()));
        DataRecord {
            data,
            label_column: label_column.to_string(),
            seed,
        }
    }

    /// As JSON for checkpoint metadata (the label column only for CSV data, the one source
    /// that has columns); `None` when the path is not UTF-8 text (JSON could only hold a
    /// lossy copy, which would name another file).
    pub fn to_json(&self) -> Option<Value> {
        let mut v = json!({ "data": self.data.to_arg()?, "seed": self.seed });
        if matches!(self.data, DataSpec::Csv(_)) {
            v["label_column"] = json!(self.label_column);
        }
        Some(v)
    }

    /// The record in checkpoint metadata: `Ok(None)` for a checkpoint written without one.
    pub fn from_metadata(meta: &HashMap<String, String>) -> Result<Option<DataRecord>, String> {
        let Some(raw) = meta.get(DATA_KEY) else {
            return Ok(None);
        };
        let bad = |why: String| format!("bad `{DATA_KEY}` metadata: {why}");
        let v: Value = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
        let data = v
            .get("data")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no string field `data`".into()))?;
        let label_column = match v.get("label_column") {
            None => "label",
            Some(l) => l
                .as_str()
                .ok_or_else(|| bad("field `label_column` is not a string".into()))?,
        };
        let seed = v
            .get("seed")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("no whole-number field `seed`".into()))?;
        Ok(Some(DataRecord {
            data: data.parse().map_err(bad)?,
            label_column: label_column.to_string(),
            seed,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn meta(record: &DataRecord) -> HashMap<String, String> {
        let json = record.to_json().unwrap().to_string();
        HashMap::from([(DATA_KEY.to_string(), json)])
    }

    #[test]
    fn round_trips_with_an_absolute_path() {
        let record = DataRecord::for_training(&DataSpec::Csv("a:b/iris.csv".into()), "species", 7);
        let DataSpec::Csv(path) = &record.data else {
            panic!("{record:?}")
        };
        assert!(
            path.is_absolute() && path.ends_with("a:b/iris.csv"),
            "{path:?}"
        );
        assert_eq!(DataRecord::from_metadata(&meta(&record)), Ok(Some(record)));
        let digits = DataRecord::for_training(&DataSpec::Digits, "label", u64::MAX);
        assert_eq!(DataRecord::from_metadata(&meta(&digits)), Ok(Some(digits)));
    }

    #[test]
    fn missing_and_bad_records() {
        assert_eq!(DataRecord::from_metadata(&HashMap::new()), Ok(None));
        for raw in [
            "{",
            r#"{"data": "imagenet", "seed": 0}"#,
            r#"{"data": "digits"}"#,
            r#"{"data": "csv:a.csv", "seed": 0, "label_column": 1}"#,
        ] {
            let m = HashMap::from([(DATA_KEY.to_string(), raw.to_string())]);
            let e = DataRecord::from_metadata(&m).unwrap_err();
            assert!(e.starts_with("bad `kiln.data` metadata"), "{e}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_path_that_is_not_utf8_is_not_recorded() {
        use std::os::unix::ffi::OsStrExt;
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(b"/data/\xff.csv"));
        let record = DataRecord::for_training(&DataSpec::Csv(path), "label", 0);
        assert_eq!(record.to_json(), None);
    }
}
