//! CSV data end to end with the `kiln` binary: Fisher's Iris (class names as labels) through
//! train, info, eval with the data source the checkpoint recorded (from another directory),
//! and predict for one row, a whole file and `--out`; checkpoints without the record.

mod common;

use common::edit_metadata;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Fisher's Iris data (150 rows; see `fixtures/make_iris.py` for its source and licence).
const IRIS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/iris.csv");

/// Runs `kiln` in `cwd`; returns success, stdout and stderr.
fn kiln(cwd: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(cwd)
        .env("CI", "1")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The number after `prefix` and before the next `%`.
fn percent(text: &str, prefix: &str) -> f64 {
    text.split(prefix)
        .nth(1)
        .unwrap()
        .split('%')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Trains an mlp on the Iris copy in `data_dir`, naming the file relatively (`csv:iris.csv`,
/// run from `data_dir`); returns the `best/` checkpoint and the training output.
fn train_iris(data_dir: &Path, runs: &Path) -> (PathBuf, String) {
    std::fs::copy(IRIS, data_dir.join("iris.csv")).unwrap();
    let (ok, stdout, stderr) = kiln(
        data_dir,
        &[
            "train",
            "--model",
            "mlp",
            "--epochs",
            "15",
            "--data",
            "csv:iris.csv",
            "--label-column",
            "species",
            "--out",
            runs.to_str().unwrap(),
            "--name",
            "iris",
            "--threads",
            "1",
        ],
    );
    assert!(ok, "{stdout}\n{stderr}");
    (runs.join("iris/checkpoints/best"), stdout)
}

#[test]
fn iris_with_class_names_trains_evaluates_and_predicts() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    std::fs::create_dir(&data_dir).unwrap();
    let (best, stdout) = train_iris(&data_dir, &tmp.path().join("runs"));
    // Chance is 33% for three balanced classes.
    let acc = percent(&stdout, "test accuracy: ");
    assert!(acc >= 80.0, "{stdout}");
    let ckpt = best.to_str().unwrap();
    let iris = data_dir.join("iris.csv");

    let (ok, info, err) = kiln(tmp.path(), &["info", ckpt]);
    assert!(ok, "{err}");
    assert!(
        info.contains("classes (3 class names): setosa, versicolor, virginica"),
        "{info}"
    );
    assert!(
        info.contains(&format!(
            "trained on: csv:{} (label column `species`",
            iris.display()
        )),
        "{info}"
    );

    // From another directory, without --data: the recorded (absolute) source is used.
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let (ok, eval, err) = kiln(&elsewhere, &["eval", ckpt]);
    assert!(ok, "{eval}\n{err}");
    assert!(
        eval.contains(&format!(
            "data: csv:{}, label column `species`, split seed 0 (recorded in the checkpoint)",
            iris.display()
        )),
        "{eval}"
    );
    assert!(eval.contains("iris: 15 test samples"), "{eval}");

    // One row: a typical setosa flower.
    let (ok, row, err) = kiln(&elsewhere, &["predict", ckpt, "5.1,3.5,1.4,0.2"]);
    assert!(ok, "{err}");
    assert!(row.starts_with("class setosa (probability 0."), "{row}");
    assert!(row.contains("probabilities: setosa: 0."), "{row}");
    assert!(row.contains("  virginica: 0."), "{row}");

    // The whole file, scored against its species column, and written with --out.
    let preds = elsewhere.join("preds.csv");
    let args = [
        "predict",
        ckpt,
        iris.to_str().unwrap(),
        "--out",
        preds.to_str().unwrap(),
    ];
    let (ok, all, err) = kiln(&elsewhere, &args);
    assert!(ok, "{err}");
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 151, "{all}");
    assert!(
        lines[0].starts_with("row 1: setosa (probability 0."),
        "{all}"
    );
    assert!(lines[149].starts_with("row 150: "), "{all}");
    assert!(percent(&all, "accuracy: ") >= 80.0, "{all}");
    assert!(
        all.contains("of 150 rows, against column `species`)"),
        "{all}"
    );
    let written = std::fs::read_to_string(&preds).unwrap();
    let mut rows = written.lines();
    assert_eq!(
        rows.next(),
        Some("row,class,probability,p_setosa,p_versicolor,p_virginica")
    );
    assert!(rows.next().unwrap().starts_with("1,setosa,0."), "{written}");
    assert_eq!(rows.count(), 149);
    // Replaced through a temporary file that is gone afterwards.
    let names: Vec<_> = std::fs::read_dir(&elsewhere)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["preds.csv"], "{names:?}");

    // Columns are matched by name, in any order; no label column means no accuracy line.
    let shuffled = elsewhere.join("shuffled.csv");
    std::fs::write(
        &shuffled,
        "petal_width,sepal_width,petal_length,sepal_length\n0.2,3.5,1.4,5.1\n",
    )
    .unwrap();
    let (ok, one, err) = kiln(&elsewhere, &["predict", ckpt, shuffled.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(one.starts_with("row 1: setosa (probability 0."), "{one}");
    assert!(!one.contains("accuracy"), "{one}");

    // Evaluating on other data: its class names are numbered as the model numbers them, even
    // when the file lacks a class; a class the model does not know is refused.
    let two = elsewhere.join("two.csv");
    let mut text = String::from("sepal_length,sepal_width,petal_length,petal_width,species\n");
    for line in std::fs::read_to_string(&iris).unwrap().lines().skip(51) {
        text += line;
        text += "\n";
    }
    std::fs::write(&two, &text).unwrap();
    let (ok, eval, err) = kiln(&elsewhere, &["eval", ckpt, "--data", "csv:two.csv"]);
    assert!(ok, "{err}");
    assert!(
        eval.contains("data: csv:two.csv, label column `species`, split seed 0 (from --data)"),
        "{eval}"
    );
    assert!(percent(&eval, "accuracy ") >= 60.0, "{eval}");
    std::fs::write(&two, text.replace("virginica", "lily")).unwrap();
    let (ok, _, err) = kiln(&elsewhere, &["eval", ckpt, "--data", "csv:two.csv"]);
    assert!(!ok && err.contains("class `lily` in label column `species` is not one of the model's classes (setosa, versicolor, virginica)"), "{err}");
}

#[test]
fn checkpoints_without_the_record_evaluate_on_the_default() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    let (ok, stdout, stderr) = kiln(
        tmp.path(),
        &[
            "train",
            "--model",
            "mlp",
            "--epochs",
            "3",
            "--out",
            runs.to_str().unwrap(),
            "--name",
            "d",
            "--threads",
            "1",
        ],
    );
    assert!(ok, "{stdout}\n{stderr}");
    let best = runs.join("d/checkpoints/best");
    let ckpt = best.to_str().unwrap();
    let (ok, eval, err) = kiln(tmp.path(), &["eval", ckpt]);
    assert!(ok, "{err}");
    assert!(
        eval.contains("data: digits, split seed 0 (recorded in the checkpoint)"),
        "{eval}"
    );

    // As a checkpoint written before the record existed (and before feature names).
    edit_metadata(&best.join("model.safetensors"), |meta| {
        meta.remove("kiln.data").unwrap();
    });
    let (ok, eval, err) = kiln(tmp.path(), &["eval", ckpt]);
    assert!(ok, "{err}");
    let first = eval.lines().next().unwrap();
    assert_eq!(
        first,
        "data: digits, split seed 0 (the default; this checkpoint does not record its training data)"
    );
    assert!(eval.contains("digits: 359 test samples"), "{eval}");
    let (ok, info, _) = kiln(tmp.path(), &["info", ckpt]);
    assert!(ok && info.contains("trained on: not recorded"), "{info}");

    // A CSV file predicted by position (the model knows no column names): 64 pixel columns
    // and a label column, which is scored, not read as a feature.
    let zero = "0,0,5,13,9,1,0,0,0,0,13,15,10,15,5,0,0,3,15,2,0,11,8,0,0,4,12,0,0,8,8,0,0,5,8,0,0,9,8,0,0,4,11,0,1,12,7,0,0,2,14,5,10,12,0,0,0,0,6,13,10,0,0,0";
    let header: Vec<String> = (0..64).map(|i| format!("p{i}")).collect();
    let rows = tmp.path().join("digits.csv");
    std::fs::write(
        &rows,
        format!("{},label\n{zero},0\n{zero},0\n", header.join(",")),
    )
    .unwrap();
    let (ok, out, err) = kiln(tmp.path(), &["predict", ckpt, rows.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.starts_with("row 1: 0 (probability 0."), "{out}");
    assert!(
        out.contains("accuracy: 100.00% (2 of 2 rows, against column `label`)"),
        "{out}"
    );
}
