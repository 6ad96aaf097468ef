//! Runs ONNX test cases against Kiln's importer: each folder holding a `model.onnx` and
//! `test_data_set_<k>/{input,output}_<i>.pb` (the layout of ONNX's backend tests, and of the
//! models `tests/models/export_models.py` writes with onnxruntime's outputs) is imported, run
//! on every data set, and compared as NumPy's `allclose` does. Prints one line per test and the
//! totals; with `--expect FILE`, fails when a test listed as passing no longer passes.
//!
//! ```text
//! cargo run --release -p kiln-onnx --example onnx_suite -- DIR [--expect FILE] [--write FILE]
//!     [--rtol R] [--atol A] [--all] [--quiet] [--plain]
//! ```
//!
//! Models load as users load them, through `kiln::onnx::load` (Kiln's graph passes run on
//! the imported graph); `--plain` loads them with `kiln_onnx::load`, as imported.
//!
//! Tolerances come from `DIR/manifest.json` when it has the test, else from `--rtol`/`--atol`
//! (default 1e-3 and 1e-7, the backend runner's). `--all` fails unless every test passes.

use kiln_kernels::cpu::to_contiguous_vec;
use kiln_kernels::ops::Op;
use kiln_kernels::{DType, OwnedOperand};
use kiln_onnx::proto::TensorProto;
use kiln_onnx::OnnxError;
use prost::Message;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Status {
    Pass,
    Fail,
    Unsupported,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Unsupported => "unsupported",
        }
    }
}

struct Args {
    dir: PathBuf,
    expect: Option<PathBuf>,
    write: Option<PathBuf>,
    rtol: f64,
    atol: f64,
    all: bool,
    quiet: bool,
    plain: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut args = Args {
        dir: PathBuf::new(),
        expect: None,
        write: None,
        rtol: 1e-3,
        atol: 1e-7,
        all: false,
        quiet: false,
        plain: false,
    };
    let mut dir = None;
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--expect" => args.expect = Some(value("--expect")?.into()),
            "--write" => args.write = Some(value("--write")?.into()),
            "--rtol" => {
                args.rtol = value("--rtol")?
                    .parse()
                    .map_err(|e| format!("--rtol: {e}"))?
            }
            "--atol" => {
                args.atol = value("--atol")?
                    .parse()
                    .map_err(|e| format!("--atol: {e}"))?
            }
            "--all" => args.all = true,
            "--quiet" => args.quiet = true,
            "--plain" => args.plain = true,
            s if s.starts_with("--") => return Err(format!("unknown flag {s}")),
            s => dir = Some(PathBuf::from(s)),
        }
    }
    args.dir = dir.ok_or(
        "usage: onnx_suite DIR [--expect FILE] [--write FILE] [--rtol R] [--atol A] [--all]",
    )?;
    Ok(args)
}

fn read_tensor(path: &Path) -> Result<OwnedOperand, OnnxError> {
    let bytes = std::fs::read(path).map_err(|source| OnnxError::Io {
        path: path.into(),
        source,
    })?;
    let t = TensorProto::decode(&bytes[..])
        .map_err(|e| OnnxError::Invalid(format!("{}: {e}", path.display())))?;
    kiln_onnx::import::decode_tensor(&t, None, &path.display().to_string())
}

/// The numbered `.pb` files of one kind in a data set, in order.
fn numbered(set: &Path, kind: &str) -> Vec<PathBuf> {
    (0..)
        .map(|i| set.join(format!("{kind}_{i}.pb")))
        .take_while(|p| p.is_file())
        .collect()
}

fn as_f64(v: &OwnedOperand) -> Vec<f64> {
    let o = v.operand();
    let (s, l) = kiln_kernels::cpu::execute(&Op::Cast(DType::F64), &[o], o.shape(), DType::F64);
    to_contiguous_vec::<f64>(OwnedOperand::new(s, l, DType::F64).operand())
}

/// Compares as `numpy.testing.assert_allclose` (NaNs equal, infinities exactly).
fn compare(got: &OwnedOperand, want: &OwnedOperand, rtol: f64, atol: f64) -> Result<(), String> {
    let (g, w) = (got.operand(), want.operand());
    if g.shape() != w.shape() {
        return Err(format!("shape {:?}, expected {:?}", g.shape(), w.shape()));
    }
    if g.dtype() != w.dtype() {
        return Err(format!("dtype {}, expected {}", g.dtype(), w.dtype()));
    }
    let (gv, wv) = (as_f64(got), as_f64(want));
    let mut worst: Option<(usize, f64)> = None;
    let mut off = 0;
    for (i, (&a, &b)) in gv.iter().zip(&wv).enumerate() {
        let ok = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= atol + rtol * b.abs();
        if !ok {
            off += 1;
            let d = (a - b).abs();
            if worst.is_none_or(|(_, w)| d > w || d.is_nan()) {
                worst = Some((i, d));
            }
        }
    }
    match worst {
        None => Ok(()),
        Some((i, d)) => Err(format!(
            "element {i}: {} vs expected {} (|diff| {d:e}; {off} of {} elements differ)",
            gv[i],
            wv[i],
            gv.len()
        )),
    }
}

fn run_test(dir: &Path, rtol: f64, atol: f64, plain: bool) -> (Status, String) {
    let path = dir.join("model.onnx");
    // As users load models: through the facade, with Kiln's graph passes (`--plain`: without).
    let loaded = if plain {
        kiln_onnx::load(&path)
    } else {
        kiln::onnx::load(&path)
    };
    let model = match loaded {
        Ok(m) => m,
        Err(
            e @ (OnnxError::UnsupportedOp { .. }
            | OnnxError::NotSupported(_)
            | OnnxError::Node { .. }),
        ) => return (Status::Unsupported, e.to_string()),
        Err(e) => return (Status::Fail, e.to_string()),
    };
    let mut sets: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    sets.sort();
    if sets.is_empty() {
        return (Status::Unsupported, "no data sets".into());
    }
    for set in sets {
        let (ins, outs) = (numbered(&set, "input"), numbered(&set, "output"));
        if ins.len() != model.inputs().len() || outs.len() != model.outputs().len() {
            return (
                Status::Unsupported,
                format!(
                    "{} inputs and {} outputs as tensors, the model has {} and {}",
                    ins.len(),
                    outs.len(),
                    model.inputs().len(),
                    model.outputs().len()
                ),
            );
        }
        let read = |paths: &[PathBuf]| -> Result<Vec<OwnedOperand>, OnnxError> {
            paths.iter().map(|p| read_tensor(p)).collect()
        };
        let (inputs, expected) = match (read(&ins), read(&outs)) {
            (Ok(i), Ok(o)) => (i, o),
            (Err(e), _) | (_, Err(e)) => return (Status::Unsupported, e.to_string()),
        };
        let args: Vec<_> = inputs.iter().map(|v| v.operand()).collect();
        let got = match model.run(&args) {
            Ok(g) => g,
            Err(e) => return (Status::Fail, format!("run: {e}")),
        };
        for (k, (g, w)) in got.iter().zip(&expected).enumerate() {
            if let Err(e) = compare(g, w, rtol, atol) {
                return (Status::Fail, format!("output {k}: {e}"));
            }
        }
    }
    let note = if model.specialized() {
        "imported per call signature (batch size, shape inputs)"
    } else {
        ""
    };
    (Status::Pass, note.into())
}

/// Per test: its tolerances and whether only default-domain ops are used.
struct Case {
    rtol: f64,
    atol: f64,
    default_domain: bool,
}

fn manifest(dir: &Path, args: &Args) -> BTreeMap<String, Case> {
    let Ok(text) = std::fs::read_to_string(dir.join("manifest.json")) else {
        return BTreeMap::new();
    };
    let Ok(serde_json::Value::Object(m)) = serde_json::from_str(&text) else {
        return BTreeMap::new();
    };
    m.into_iter()
        .map(|(name, v)| {
            let case = Case {
                rtol: v["rtol"].as_f64().unwrap_or(args.rtol),
                atol: v["atol"].as_f64().unwrap_or(args.atol),
                default_domain: v["domains"]
                    .as_array()
                    .is_some_and(|d| d.iter().all(|x| x == "ai.onnx")),
            };
            (name, case)
        })
        .collect()
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("onnx_suite: {e}");
            return ExitCode::from(2);
        }
    };
    let cases = manifest(&args.dir, &args);
    let mut tests: Vec<PathBuf> = match std::fs::read_dir(&args.dir) {
        Ok(r) => r
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.join("model.onnx").is_file())
            .collect(),
        Err(e) => {
            eprintln!("onnx_suite: {}: {e}", args.dir.display());
            return ExitCode::from(2);
        }
    };
    tests.sort();
    let mut results: BTreeMap<String, Status> = BTreeMap::new();
    let mut lines = Vec::new();
    for t in &tests {
        let name = t
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let (rtol, atol) = cases
            .get(&name)
            .map_or((args.rtol, args.atol), |c| (c.rtol, c.atol));
        let (status, why) = run_test(t, rtol, atol, args.plain);
        let line = format!("{name} {}", status.name());
        if !args.quiet || status == Status::Fail {
            println!("{line}{}{why}", if why.is_empty() { "" } else { "  # " });
        }
        lines.push(line);
        results.insert(name, status);
    }
    let count = |s: Status| results.values().filter(|&&r| r == s).count();
    let (pass, fail, unsupported) = (
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Unsupported),
    );
    println!(
        "onnx_suite: {} tests: {pass} pass, {fail} fail, {unsupported} unsupported",
        results.len()
    );
    let default: Vec<&String> = results
        .keys()
        .filter(|n| cases.get(*n).is_some_and(|c| c.default_domain))
        .collect();
    if !default.is_empty() {
        let passed = default
            .iter()
            .filter(|n| results[**n] == Status::Pass)
            .count();
        println!(
            "onnx_suite: default-domain (ai.onnx) tests: {passed} of {} pass ({:.1}%)",
            default.len(),
            100.0 * passed as f64 / default.len() as f64
        );
    }
    if let Some(path) = &args.write {
        let text = lines.join("\n") + "\n";
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("onnx_suite: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    let mut ok = true;
    if let Some(path) = &args.expect {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("onnx_suite: {}: {e}", path.display());
                return ExitCode::from(2);
            }
        };
        let mut newly = 0;
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let mut parts = line.split_whitespace();
            let (Some(name), Some(status)) = (parts.next(), parts.next()) else {
                continue;
            };
            match (status, results.get(name)) {
                ("pass", Some(Status::Pass)) => {}
                ("pass", got) => {
                    ok = false;
                    let got = got.map_or("missing", |s| s.name());
                    println!("onnx_suite: REGRESSION {name}: expected pass, got {got}");
                }
                (_, Some(Status::Pass)) => newly += 1,
                _ => {}
            }
        }
        if newly > 0 {
            println!("onnx_suite: {newly} tests pass that the expectations list otherwise (update with --write)");
        }
    }
    if args.all && (fail > 0 || unsupported > 0) {
        ok = false;
        println!("onnx_suite: --all: every test must pass");
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
