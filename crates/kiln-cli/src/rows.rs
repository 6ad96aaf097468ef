//! Reading a CSV file of rows to predict: its header is matched to the model's features (by
//! name when the checkpoint records them, else by position), and a label column, if there
//! is one, is read as the answers to score the predictions against.

use crate::models::ModelSpec;
use std::path::Path;

/// The rows of a prediction CSV file.
#[derive(Debug, PartialEq)]
pub struct Rows {
    /// Raw feature values, row after row, in the model's input order.
    pub values: Vec<f32>,
    /// The number of rows.
    pub len: usize,
    /// Each row's class index (as the model numbers its classes) when the file has the
    /// label column.
    pub labels: Option<Vec<usize>>,
}

/// Which of the file's columns are the model's features (in the model's order) and which,
/// if any, is the label.
struct Columns {
    features: Vec<usize>,
    label: Option<usize>,
}

/// Matches `header` to the model's inputs; `label_column` is the label's name.
fn columns(header: &[&str], spec: &ModelSpec, label_column: &str) -> Result<Columns, String> {
    let label = header.iter().position(|&h| h == label_column);
    if let Some(dup) = header
        .iter()
        .enumerate()
        .find(|&(i, h)| header[..i].contains(h))
    {
        return Err(format!("column `{}` appears twice in the header", dup.1));
    }
    let Some(names) = &spec.feature_names else {
        // Positional: every column but the label, in file order.
        let features: Vec<usize> = (0..header.len()).filter(|&i| Some(i) != label).collect();
        let want: usize = spec.input.iter().product();
        if features.len() != want {
            return Err(format!(
                "{} feature columns{}, but the model takes {want} values per row",
                features.len(),
                match label {
                    Some(_) => format!(" (besides the label column `{label_column}`)"),
                    // One too many: likely a label column under another name.
                    None if features.len() == want + 1 => format!(
                        " and no label column `{label_column}` (--label-column names another)"
                    ),
                    None => String::new(),
                }
            ));
        }
        return Ok(Columns { features, label });
    };
    if let Some(extra) = header
        .iter()
        .enumerate()
        .find(|&(i, h)| Some(i) != label && !names.iter().any(|n| n == h))
    {
        return Err(format!(
            "unknown column `{}`: the model's features are {} and its label column is \
             `{label_column}` (--label-column names another)",
            extra.1,
            names.join(", ")
        ));
    }
    let features = names
        .iter()
        .map(|n| {
            header.iter().position(|h| h == n).ok_or_else(|| {
                format!(
                    "no column `{n}`; the model's features are {}",
                    names.join(", ")
                )
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Columns { features, label })
}

/// The class index the model uses for a label cell.
fn class_of(cell: &str, spec: &ModelSpec) -> Result<usize, String> {
    match &spec.class_names {
        Some(names) => names.iter().position(|n| n == cell).ok_or_else(|| {
            format!(
                "`{cell}` is not one of the model's classes ({})",
                names.join(", ")
            )
        }),
        None => cell
            .parse::<usize>()
            .ok()
            .filter(|&c| c < spec.classes)
            .ok_or_else(|| {
                format!(
                    "`{cell}` is not a class index of the model (0 to {})",
                    spec.classes - 1
                )
            }),
    }
}

/// Reads `path`; every problem is an error naming the file (and the line, for a bad row).
pub fn read(path: &Path, spec: &ModelSpec, label_column: &str) -> Result<Rows, String> {
    let at = |why: String| format!("{}: {why}", path.display());
    let bytes = std::fs::read(path).map_err(|e| at(format!("cannot read: {e}")))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(at(
            "the file is empty; it needs a header row and data rows".into()
        ));
    }
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(&bytes[..]);
    let header = reader.headers().map_err(|e| at(csv_reason(&e)))?.clone();
    let header: Vec<&str> = header.iter().collect();
    let cols = columns(&header, spec, label_column).map_err(at)?;
    let (mut values, mut labels, mut len) = (Vec::new(), Vec::new(), 0);
    for record in reader.records() {
        let record = record.map_err(|e| at(csv_reason(&e)))?;
        let line = record.position().map_or(0, |p| p.line());
        let bad = |why: String| at(format!("line {line}: {why}"));
        for &c in &cols.features {
            let cell = &record[c];
            let v: f32 = cell
                .parse()
                .map_err(|_| bad(format!("column `{}`: `{cell}` is not a number", header[c])))?;
            // A NaN or infinite input makes every class probability NaN.
            if !v.is_finite() {
                return Err(bad(format!(
                    "column `{}`: `{cell}` is not a finite number",
                    header[c]
                )));
            }
            values.push(v);
        }
        if let Some(c) = cols.label {
            labels.push(class_of(&record[c], spec).map_err(|e| bad(format!("label {e}")))?);
        }
        len += 1;
    }
    if len == 0 {
        return Err(at("no data rows after the header".into()));
    }
    Ok(Rows {
        values,
        len,
        labels: cols.label.map(|_| labels),
    })
}

/// A csv-crate error as a reason with its line.
fn csv_reason(e: &csv::Error) -> String {
    let line = e.position().map_or(0, |p| p.line());
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("line {line}: {len} fields, but the header has {expected_len}"),
        csv::ErrorKind::Utf8 { err, .. } => format!("line {line}: invalid UTF-8: {err}"),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(features: Option<&[&str]>, classes: Option<&[&str]>) -> ModelSpec {
        ModelSpec {
            kind: "mlp".into(),
            input: vec![2],
            classes: 2,
            scale: 1.0,
            class_names: classes.map(|c| c.iter().map(|s| s.to_string()).collect()),
            feature_names: features.map(|c| c.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn read_text(text: &str, spec: &ModelSpec) -> Result<Rows, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.csv");
        std::fs::write(&path, text).unwrap();
        read(&path, spec, "kind")
    }

    #[test]
    fn columns_by_name_in_the_models_order() {
        let s = spec(Some(&["a", "b"]), Some(&["cat", "dog"]));
        let rows = read_text("kind,b,a\ndog,2,1\ncat,4,3\n", &s).unwrap();
        assert_eq!(rows.values, [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(rows.labels, Some(vec![1, 0]));
        let rows = read_text("b,a\n2,1\n", &s).unwrap();
        assert_eq!((rows.len, rows.labels), (1, None));
    }

    #[test]
    fn columns_by_position_without_names() {
        let s = spec(None, None);
        let rows = read_text("x,kind,y\n1,1,2\n", &s).unwrap();
        assert_eq!((rows.values, rows.labels), (vec![1.0, 2.0], Some(vec![1])));
    }

    #[test]
    fn refusals() {
        let named = spec(Some(&["a", "b"]), Some(&["cat", "dog"]));
        let cases = [
            ("", &named, "the file is empty"),
            ("a,b\n", &named, "no data rows"),
            ("a,b,c\n1,2,3\n", &named, "unknown column `c`"),
            ("a\n1\n", &named, "no column `b`"),
            ("a,a,b\n1,1,2\n", &named, "`a` appears twice"),
            (
                "a,b\n1,x\n",
                &named,
                "line 2: column `b`: `x` is not a number",
            ),
            (
                "a,b\n1,2\n1,inf\n",
                &named,
                "line 3: column `b`: `inf` is not a finite",
            ),
            (
                "a,b\n1,2,3\n",
                &named,
                "line 2: 3 fields, but the header has 2",
            ),
            (
                "a,b,kind\n1,2,cow\n",
                &named,
                "label `cow` is not one of the model's classes",
            ),
        ];
        for (text, s, want) in cases {
            let e = read_text(text, s).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let e = read_text("w,x,y,z\n1,2,3,4\n", &spec(None, None)).unwrap_err();
        assert!(
            e.contains("4 feature columns, but the model takes 2"),
            "{e}"
        );
        let e = read_text("x,y,z\n1,2,3\n", &spec(None, None)).unwrap_err();
        assert!(
            e.contains("and no label column `kind` (--label-column"),
            "{e}"
        );
        let e = read_text("x,y,kind\n1,2,2\n", &spec(None, None)).unwrap_err();
        assert!(
            e.contains("`2` is not a class index of the model (0 to 1)"),
            "{e}"
        );
    }
}
