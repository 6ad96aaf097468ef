//! Everyday bad input is an error that names the flag or field, never a panic, an abort, a
//! hang or garbage with exit code 0 (issue 20, item 5: one test per case found).

mod common;

use common::edit_metadata;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn kiln(args: &[&str]) -> Run {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("CI", "1")
        .output()
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Asserts a clean failure: an exit code (no signal), not success, not the panic code, no
/// panic report, and stderr naming `what`.
fn assert_refused(args: &[&str], what: &str) -> Run {
    let run = kiln(args);
    let context = format!(
        "kiln {args:?}\nstdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    let code = run
        .code
        .unwrap_or_else(|| panic!("killed by a signal: {context}"));
    assert_ne!(code, 0, "{context}");
    assert_ne!(code, 101, "a panic: {context}");
    assert!(!run.stderr.contains("panicked"), "{context}");
    assert!(!run.stderr.contains("internal error"), "{context}");
    assert!(run.stderr.contains(what), "expected {what:?}: {context}");
    run
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A CSV table with two features and `rows` rows labelled `label(i)`.
fn table(rows: usize, label: impl Fn(usize) -> usize) -> String {
    let mut t = String::from("a,b,label\n");
    for i in 0..rows {
        t += &format!("{},{},{}\n", i % 7, (i * 3) % 5, label(i));
    }
    t
}

fn csv_arg(path: &Path) -> String {
    format!("csv:{}", path.display())
}

/// Trains a 3-class mlp on a small CSV table; returns its `best/` checkpoint.
fn trained_csv_model(dir: &Path) -> PathBuf {
    let data = write(dir, "three.csv", &table(40, |i| i % 3));
    let out = dir.join("runs");
    let run = kiln(&[
        "train",
        "--model",
        "mlp",
        "--epochs",
        "1",
        "--data",
        &csv_arg(&data),
        "--out",
        out.to_str().unwrap(),
        "--name",
        "t",
        "--threads",
        "1",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    out.join("t/checkpoints/best")
}

#[test]
fn training_flags_out_of_range() {
    let cases: &[(&[&str], &str)] = &[
        (&["--batch-size", "0"], "--batch-size"),
        (&["--epochs", "0"], "--epochs"),
        (&["--lr", "NaN"], "--lr"),
        (&["--lr=-1"], "--lr"),
        (&["--lr", "0"], "--lr"),
        (&["--lr", "inf"], "--lr"),
        (&["--threads", "100000"], "--threads"),
        (&["--threads", "0"], "--threads"),
        (&["--workers", "100000"], "--workers"),
    ];
    for (flags, what) in cases {
        let mut args = vec!["train"];
        args.extend_from_slice(flags);
        assert_refused(&args, what);
    }
}

#[test]
fn csv_with_only_a_header() {
    let dir = tempfile::tempdir().unwrap();
    let data = write(dir.path(), "header.csv", "a,b,label\n");
    assert_refused(&["train", "--data", &csv_arg(&data)], "no data rows");
}

#[test]
fn csv_label_of_a_billion_is_not_a_class_count() {
    let dir = tempfile::tempdir().unwrap();
    let data = write(
        dir.path(),
        "big.csv",
        &table(20, |i| if i == 5 { 1_000_000_000 } else { 1 }),
    );
    let run = assert_refused(
        &["train", "--data", &csv_arg(&data)],
        "label column `label`",
    );
    assert!(run.stderr.contains("1000000000"), "{}", run.stderr);
}

#[test]
fn csv_with_non_finite_features() {
    let dir = tempfile::tempdir().unwrap();
    let data = write(dir.path(), "nan.csv", "a,b,label\n1,2,0\nNaN,3,1\n");
    assert_refused(&["train", "--data", &csv_arg(&data)], "column \"a\"");
}

#[test]
fn too_few_rows_for_the_splits() {
    let dir = tempfile::tempdir().unwrap();
    let data = write(dir.path(), "tiny.csv", &table(3, |i| i % 2));
    assert_refused(
        &["train", "--model", "mlp", "--data", &csv_arg(&data)],
        "split is empty",
    );
}

#[test]
fn training_that_goes_nan_fails_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    let run = assert_refused(
        &[
            "train",
            "--model",
            "mlp",
            "--optimizer",
            "sgd",
            "--lr",
            "1e10",
            "--epochs",
            "2",
            "--threads",
            "1",
            "--out",
            out.to_str().unwrap(),
        ],
        "loss is NaN at epoch 1, step ",
    );
    assert!(!run.stdout.contains("test accuracy"), "{}", run.stdout);
    // Nothing was saved from the broken weights.
    assert!(!out.join("digits-mlp/checkpoints/last").exists());
}

#[test]
fn eval_and_predict_refuse_what_the_model_cannot_answer() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = trained_csv_model(dir.path());
    let ckpt = ckpt.to_str().unwrap();

    // Labels 0..=7 against a 3-class model.
    let wide = write(dir.path(), "wide.csv", &table(40, |i| i % 8));
    let run = assert_refused(
        &["eval", ckpt, "--data", &csv_arg(&wide)],
        "but the model has 3 classes",
    );
    assert!(run.stderr.contains("the data has label "), "{}", run.stderr);

    // 3 rows: the test split is empty; no "accuracy 0.00%".
    let tiny = write(dir.path(), "tiny.csv", &table(3, |i| i % 3));
    let run = assert_refused(
        &["eval", ckpt, "--data", &csv_arg(&tiny)],
        "test split is empty",
    );
    assert!(!run.stdout.contains("accuracy"), "{}", run.stdout);

    for row in ["NaN,1", "1,inf", "-inf,0"] {
        let run = assert_refused(&["predict", ckpt, row], "is not a finite number");
        assert!(!run.stdout.contains("class"), "{}", run.stdout);
    }
    // The same checkpoint answers finite rows, also one starting with a minus sign.
    for row in ["1,2", "-1.5,2"] {
        let run = kiln(&["predict", ckpt, row]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert!(run.stdout.contains("class "), "{}", run.stdout);
    }
}

/// A safetensors file with no tensors and `kiln.model` metadata `spec`.
fn metadata_only_checkpoint(dir: &Path, spec: &str) -> PathBuf {
    let header =
        serde_json::json!({ "__metadata__": { "kiln.model": spec, "format": "pt" } }).to_string();
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    let path = dir.join("model.safetensors");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn checkpoint_metadata_claiming_a_trillion_classes() {
    let dir = tempfile::tempdir().unwrap();
    let file = metadata_only_checkpoint(
        dir.path(),
        r#"{"kind":"mlp","input":[2],"classes":1000000000000,"scale":1.0}"#,
    );
    let file = file.to_str().unwrap();
    assert_refused(&["eval", file], "`classes` is 1000000000000");
    assert_refused(&["predict", file, "1,2"], "`classes` is 1000000000000");
    let huge_input = metadata_only_checkpoint(
        dir.path(),
        r#"{"kind":"mlp","input":[1000000000,1000],"classes":3}"#,
    );
    assert_refused(
        &["predict", huge_input.to_str().unwrap(), "1,2"],
        "parameters",
    );
}

/// A safetensors file with no tensors and the header metadata `meta`.
fn metadata_only_safetensors(meta: serde_json::Value) -> Vec<u8> {
    let header = serde_json::json!({ "__metadata__": meta }).to_string();
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes
}

#[test]
fn resuming_a_run_whose_metrics_csv_is_not_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let best = trained_csv_model(dir.path());
    let last = best.parent().unwrap().join("last");
    let run_dir = dir.path().join("runs/t");
    std::fs::write(run_dir.join("metrics.csv"), b"epoch,loss\n1,\xff\xfe0.5\n").unwrap();
    let data = csv_arg(&dir.path().join("three.csv"));
    let run = assert_refused(
        &[
            "train",
            "--model",
            "mlp",
            "--epochs",
            "2",
            "--data",
            &data,
            "--out",
            dir.path().join("runs").to_str().unwrap(),
            "--name",
            "t",
            "--threads",
            "1",
            "--resume",
            last.to_str().unwrap(),
        ],
        "metrics.csv: not UTF-8 text",
    );
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(!run.stdout.contains("test accuracy"), "{}", run.stdout);
}

#[test]
fn info_on_a_corrupt_trainer_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = trained_csv_model(dir.path());
    let trainer = ckpt.join("trainer.safetensors");
    let good = std::fs::read(&trainer).unwrap();
    let trainer_meta = |json: &str| {
        metadata_only_safetensors(serde_json::json!({ "format": "pt", "kiln.trainer": json }))
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "trainer.safetensors"),
        (
            "garbage",
            b"definitely not safetensors".to_vec(),
            "trainer.safetensors: not a valid safetensors file",
        ),
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            "trainer.safetensors: not a valid safetensors file",
        ),
        (
            "huge header length",
            u64::MAX.to_le_bytes().to_vec(),
            "trainer.safetensors: not a valid safetensors file",
        ),
        (
            "no trainer metadata",
            metadata_only_safetensors(serde_json::json!({ "format": "pt" })),
            "trainer.safetensors has no kiln.trainer metadata",
        ),
        (
            "bad JSON",
            trainer_meta("{\"epochs_done\": "),
            "bad trainer metadata",
        ),
        (
            "wrong field types",
            trainer_meta(r#"{"epochs_done": "one", "rng": 5, "history": {}}"#),
            "missing `epochs_done`",
        ),
        (
            "another epoch",
            trainer_meta(r#"{"epochs_done": 7}"#),
            "from different epochs",
        ),
        (
            "bad rng",
            trainer_meta(r#"{"epochs_done": 1, "rng": ["x", "-1"]}"#),
            "missing or bad `rng`",
        ),
        (
            "history of the wrong length",
            trainer_meta(r#"{"epochs_done": 1, "rng": ["1", "2"], "history": []}"#),
            "the history has 0 epochs",
        ),
    ];
    for (what, bytes, expected) in cases {
        std::fs::write(&trainer, &bytes).unwrap();
        let run = assert_refused(&["info", ckpt.to_str().unwrap()], expected);
        assert!(
            matches!(run.code, Some(1 | 2)),
            "{what}: exit code {:?}: {}",
            run.code,
            run.stderr
        );
    }
}

#[test]
fn a_bug_is_one_line_and_exit_code_101() {
    let run = kiln(&["internal-panic-test"]);
    assert_eq!(run.code, Some(101), "{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(
        lines[0].starts_with("error: internal error: a deliberate panic over two lines (at ")
            && lines[0].contains("main.rs:"),
        "{}",
        run.stderr
    );
}

#[test]
fn predict_refuses_inputs_that_are_not_a_row_an_image_or_a_csv_file() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = trained_csv_model(dir.path());
    let ckpt = ckpt.to_str().unwrap();
    let d = dir.path().to_str().unwrap();
    assert_refused(&["predict", ckpt, d], "is a directory");
    let notes = write(dir.path(), "notes.txt", "a,b\n1,2\n");
    assert_refused(
        &["predict", ckpt, notes.to_str().unwrap()],
        "neither an image (PNG or JPEG) nor a CSV file",
    );
    assert_refused(
        &["predict", ckpt, "missing.csv"],
        "missing.csv: no such file",
    );
    // The CSV-only flags with a single row.
    assert_refused(
        &["predict", ckpt, "1,2", "--out", "p.csv"],
        "--out is for a CSV file",
    );
    assert_refused(
        &["predict", ckpt, "1,2", "--label-column", "y"],
        "--label-column is for a CSV file",
    );
}

#[test]
fn predict_refuses_bad_csv_files() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = trained_csv_model(dir.path());
    let ckpt_str = ckpt.to_str().unwrap();
    // The model was trained on columns a, b and labels 0..=2.
    let cases: &[(&str, &str)] = &[
        ("", "the file is empty"),
        ("a,b,label\n", "no data rows after the header"),
        ("a,b,c\n1,2,3\n", "unknown column `c`"),
        ("a,label\n1,0\n", "no column `b`"),
        ("a,b\n1,2,3\n", "line 2: 3 fields, but the header has 2"),
        (
            "a,b\n1,2\n1,NaN\n",
            "line 3: column `b`: `NaN` is not a finite number",
        ),
        ("a,b\n1e39,2\n", "column `a`: `1e39` is not a finite number"),
        ("a,b\nx,2\n", "column `a`: `x` is not a number"),
        (
            "a,b,label\n1,2,7\n",
            "line 2: label `7` is not a class index of the model (0 to 2)",
        ),
    ];
    for (i, (text, what)) in cases.iter().enumerate() {
        let file = write(dir.path(), &format!("rows{i}.csv"), text);
        let run = assert_refused(&["predict", ckpt_str, file.to_str().unwrap()], what);
        assert!(!run.stdout.contains("row 1:"), "{}", run.stdout);
    }
    let latin1 = dir.path().join("latin1.csv");
    std::fs::write(&latin1, b"a,b\n1,\xff\n").unwrap();
    assert_refused(
        &["predict", ckpt_str, latin1.to_str().unwrap()],
        "latin1.csv: line 2: invalid UTF-8",
    );
    let good = write(dir.path(), "good.csv", "b,a\n2,1\n");
    let run = assert_refused(
        &[
            "predict",
            ckpt_str,
            good.to_str().unwrap(),
            "--out",
            "/nonexistent/dir/p.csv",
        ],
        "/nonexistent/dir/p.csv: cannot write",
    );
    assert!(run.stdout.contains("row 1: "), "{}", run.stdout);

    // Without recorded column names, columns are positional and must be as many as the
    // model's inputs.
    edit_metadata(&ckpt.join("model.safetensors"), |meta| {
        let mut spec: serde_json::Value =
            serde_json::from_str(meta["kiln.model"].as_str().unwrap()).unwrap();
        spec.as_object_mut()
            .unwrap()
            .remove("feature_names")
            .unwrap();
        meta["kiln.model"] = spec.to_string().into();
    });
    let three = write(dir.path(), "three_cols.csv", "x,y,z,label\n1,2,3,0\n");
    assert_refused(
        &["predict", ckpt_str, three.to_str().unwrap()],
        "3 feature columns (besides the label column `label`), but the model takes 2 values per row",
    );
}

#[test]
fn eval_without_usable_recorded_data() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = trained_csv_model(dir.path());
    let ckpt_str = ckpt.to_str().unwrap();
    // The recorded file is gone: the error says the path came from the checkpoint.
    let data = dir.path().join("three.csv");
    let saved = std::fs::read(&data).unwrap();
    std::fs::remove_file(&data).unwrap();
    let run = assert_refused(&["eval", ckpt_str], "three.csv: no such file or directory");
    assert!(
        run.stderr
            .contains("(the data recorded in the checkpoint; pass --data"),
        "{}",
        run.stderr
    );
    std::fs::write(&data, saved).unwrap();

    // A damaged record is an error without --data, a note with it.
    edit_metadata(&ckpt.join("model.safetensors"), |meta| {
        meta["kiln.data"] = "{\"data\": 3}".into();
    });
    assert_refused(
        &["eval", ckpt_str],
        "bad `kiln.data` metadata: no string field `data`; pass --data",
    );
    let run = kiln(&["eval", ckpt_str, "--data", &csv_arg(&data)]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("note: ignoring the checkpoint's bad `kiln.data` metadata"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("(from --data)"), "{}", run.stdout);
}

#[test]
fn csv_labels_that_are_neither_indices_nor_usable_names() {
    let dir = tempfile::tempdir().unwrap();
    // Numbers that are not class indices keep today's error.
    let data = write(dir.path(), "neg.csv", "a,b,label\n1,2,0\n3,4,-1\n");
    assert_refused(
        &["train", "--data", &csv_arg(&data)],
        "\"-1\" is not a class index",
    );
    let data = write(dir.path(), "frac.csv", "a,b,label\n1,2,0\n3,4,2.5\n");
    assert_refused(
        &["train", "--data", &csv_arg(&data)],
        "\"2.5\" is not a class index",
    );
    // Names with a gap.
    let data = write(dir.path(), "gap.csv", "a,b,label\n1,2,cat\n3,4,\n");
    assert_refused(&["train", "--data", &csv_arg(&data)], "empty class name");
    // Class names against a model trained on class indices.
    let ckpt = trained_csv_model(dir.path());
    let named = write(
        dir.path(),
        "named.csv",
        &table(40, |i| i % 3).replace(",0\n", ",cat\n"),
    );
    assert_refused(
        &["eval", ckpt.to_str().unwrap(), "--data", &csv_arg(&named)],
        "label column `label` holds class names (1, 2, cat), but the model was trained on class indices 0 to 2",
    );
}

#[test]
fn export_and_serve_refuse_bad_sources_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("repo/m/1");
    let out = out.to_str().unwrap();
    let garbage = write(d, "model.safetensors", "not a checkpoint");
    assert_refused(
        &["export", garbage.to_str().unwrap(), "--out", out],
        "model.safetensors",
    );
    assert_refused(
        &["export", d.join("nowhere").to_str().unwrap(), "--out", out],
        "nowhere",
    );
    // A run directory whose checkpoints were never written.
    std::fs::create_dir_all(d.join("run/checkpoints")).unwrap();
    assert_refused(
        &["export", d.join("run").to_str().unwrap(), "--out", out],
        "no checkpoints/best or checkpoints/last",
    );
    assert!(
        !d.join("repo/m/1/model.kgraph").exists(),
        "nothing written on failure"
    );
    // ONNX: a broken graph file and a broken checkpoint are refused; nothing is written.
    let onnx = d.join("m.onnx");
    let onnx = onnx.to_str().unwrap();
    let bad_graph = write(d, "model.kgraph", "not a graph");
    for source in [bad_graph.to_str().unwrap(), garbage.to_str().unwrap()] {
        let args = ["export", source, "--format", "onnx", "--out", onnx];
        assert_refused(&args, source.rsplit('/').next().unwrap());
    }
    assert_refused(
        &["export", out, "--format", "tflite", "--out", onnx],
        "tflite",
    );
    assert!(
        !d.join("m.onnx").exists(),
        "no ONNX file written on failure"
    );

    // External data is written for ONNX only; a failed ONNX export writes no data file.
    assert_refused(
        &[
            "export",
            garbage.to_str().unwrap(),
            "--external-data",
            "--out",
            out,
        ],
        "--external-data is for --format onnx",
    );
    let args = [
        "export",
        bad_graph.to_str().unwrap(),
        "--format",
        "onnx",
        "--external-data",
        "--out",
        onnx,
    ];
    assert_refused(&args, "model.kgraph");
    assert!(!d.join("m.onnx.data").exists(), "no data file on failure");

    assert_refused(&["serve"], "give a run directory");
    // An ONNX file served directly: missing, not a file, or not a model (refused before
    // serving, as one model served directly must load).
    assert_refused(
        &["serve", d.join("nosuch.onnx").to_str().unwrap()],
        "nosuch.onnx",
    );
    std::fs::create_dir_all(d.join("dir.onnx")).unwrap();
    assert_refused(
        &["serve", d.join("dir.onnx").to_str().unwrap()],
        "is not a file",
    );
    let broken = write(d, "broken.onnx", "not a protobuf model");
    let args = [
        "serve",
        broken.to_str().unwrap(),
        "--http-port",
        "0",
        "--no-grpc",
    ];
    assert_refused(&args, "not an ONNX model");
    let repo = d.join("no-repo");
    // (`-1` is refused by the argument parser as a flag; the others by the range check.)
    for (bad, what) in [
        ("nan", "--poll-secs"),
        ("-1", "'-1'"),
        ("1e9", "--poll-secs"),
    ] {
        let args = [
            "serve",
            "--model-repository",
            repo.to_str().unwrap(),
            "--poll-secs",
            bad,
        ];
        assert_refused(&args, what);
    }
    assert_refused(
        &["serve", "--model-repository", repo.to_str().unwrap()],
        "model repository",
    );
    assert_refused(
        &["serve", "--http-port", "70000", "--model-repository", "x"],
        "70000",
    );
    assert_refused(
        &["serve", "--grpc-port", "70000", "--model-repository", "x"],
        "70000",
    );
    assert_refused(
        &[
            "serve",
            "--no-grpc",
            "--grpc-port",
            "9000",
            "--model-repository",
            "x",
        ],
        "--no-grpc",
    );
    // HTTP and gRPC asked to share one port: the second bind fails, reported, not a panic.
    let empty = d.join("empty-repo");
    std::fs::create_dir_all(&empty).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let args = [
        "serve",
        "--model-repository",
        empty.to_str().unwrap(),
        "--http-port",
        &port,
        "--grpc-port",
        &port,
    ];
    assert_refused(&args, "cannot listen on 127.0.0.1:");
    assert_refused(
        &[
            "serve",
            "--host",
            "not-an-address",
            "--model-repository",
            "x",
        ],
        "not-an-address",
    );
    assert_refused(
        &["serve", d.join("run").to_str().unwrap()],
        "no checkpoints/best",
    );
}

#[test]
fn a_trained_checkpoint_exports_to_a_graph_with_its_config() {
    let dir = tempfile::tempdir().unwrap();
    let best = trained_csv_model(dir.path());
    let version = dir.path().join("repo/m/1");
    let run = kiln(&[
        "export",
        best.to_str().unwrap(),
        "--out",
        version.to_str().unwrap(),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(version.join("model.kgraph").is_file());
    let config = std::fs::read_to_string(dir.path().join("repo/m/config.toml")).unwrap();
    assert!(
        config.contains(r#"outputs = ["logits", "probabilities"]"#),
        "{config}"
    );
}
