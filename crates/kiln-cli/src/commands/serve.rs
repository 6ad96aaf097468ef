//! `kiln serve`: serves a model repository over the Open Inference Protocol (HTTP and gRPC)
//! and TF Serving's REST API, or one model directly from a temporary repository: a `kiln
//! train` run directory (its best checkpoint exported to a graph first) or an ONNX file.

use super::export::{checkpoint_of, export};
use clap::Args;
use kiln_serve::{serve, ServeOptions};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Options of `kiln serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// A `kiln train` run directory or an ONNX file (`model.onnx`) to serve directly (as model
    /// `<run name>` or `<file stem>`, version 1).
    pub run: Option<PathBuf>,
    /// A model repository: `REPO/<model>/<version>/model.kgraph` or `model.onnx` (+ optional
    /// `REPO/<model>/config.toml`).
    #[arg(long, conflicts_with = "run")]
    pub model_repository: Option<PathBuf>,
    /// Address to listen on (127.0.0.1: this machine only; 0.0.0.0 to serve the network).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// HTTP port (0: any free port, printed at start).
    #[arg(long, default_value_t = 8000)]
    pub http_port: u16,
    /// gRPC port (0: any free port, printed at start).
    #[arg(long, default_value_t = 8001, conflicts_with = "no_grpc")]
    pub grpc_port: u16,
    /// Serve HTTP only.
    #[arg(long)]
    pub no_grpc: bool,
    /// Seconds between scans of the repository for new and removed versions (0: never).
    #[arg(long, default_value_t = 5.0)]
    pub poll_secs: f64,
}

/// Runs `kiln serve` until SIGTERM or Ctrl-C.
pub fn run(args: ServeArgs) -> Result<(), String> {
    if !(args.poll_secs.is_finite() && (0.0..=86_400.0).contains(&args.poll_secs)) {
        return Err(format!(
            "--poll-secs must be 0 to 86400, got {}",
            args.poll_secs
        ));
    }
    // A run directory is exported into a temporary repository that lives while we serve.
    let mut _temporary = None;
    let repository = match (&args.run, &args.model_repository) {
        (_, Some(repo)) => repo.clone(),
        (Some(file), None) if file.extension().is_some_and(|e| e == "onnx") => {
            let dir = tempfile::tempdir().map_err(|e| format!("temporary repository: {e}"))?;
            let path = onnx_repository(file, dir.path())?;
            _temporary = Some(dir);
            path
        }
        (Some(run), None) => {
            let checkpoint = checkpoint_of(run)?;
            let name = run
                .canonicalize()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .filter(|n| kiln_serve::repository::check_name(n).is_ok())
                .unwrap_or_else(|| "model".into());
            let dir = tempfile::tempdir().map_err(|e| format!("temporary repository: {e}"))?;
            let file = export(&checkpoint, &dir.path().join(&name).join("1"))?;
            eprintln!(
                "kiln serve: exported {} to {}",
                checkpoint.display(),
                file.display()
            );
            let path = dir.path().to_path_buf();
            _temporary = Some(dir);
            path
        }
        (None, None) => {
            return Err(
                "give a run directory (kiln serve runs/digits-cnn), an ONNX file \
                        (kiln serve model.onnx) or --model-repository REPO"
                    .into(),
            )
        }
    };
    let options = ServeOptions {
        repository,
        http: SocketAddr::new(args.host, args.http_port),
        grpc: (!args.no_grpc).then(|| SocketAddr::new(args.host, args.grpc_port)),
        poll: (args.poll_secs > 0.0).then(|| Duration::from_secs_f64(args.poll_secs)),
        // ONNX models go through the passes `compile` runs, as `kiln::onnx::load` does.
        import: kiln_onnx::ImportOptions {
            optimize: Some(std::sync::Arc::new(
                kiln_graph::passes::run_default_pipeline,
            )),
            ..Default::default()
        },
        // One model served directly (a run or a file) must load; a repository serves what does.
        exit_on_error: args.model_repository.is_none(),
    };
    serve(&options, |bound| {
        let http = bound.http;
        eprintln!("kiln serve: Open Inference Protocol over HTTP at http://{http}/v2");
        if let Some(grpc) = bound.grpc {
            eprintln!("kiln serve: Open Inference Protocol over gRPC at {grpc}");
        }
        eprintln!("kiln serve: TF Serving REST at http://{http}/v1/models");
    })
}

/// A repository in `dir` serving the ONNX file `file` as model `<file stem>`, version 1 (a
/// link to the file, so external weight data beside it is found).
fn onnx_repository(file: &Path, dir: &Path) -> Result<PathBuf, String> {
    let target = file
        .canonicalize()
        .map_err(|e| format!("{}: {e}", file.display()))?;
    if !target.is_file() {
        return Err(format!("{} is not a file", file.display()));
    }
    let name = file
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| kiln_serve::repository::check_name(n).is_ok())
        .unwrap_or_else(|| "model".into());
    let version = dir.join(&name).join("1");
    std::fs::create_dir_all(&version).map_err(|e| format!("temporary repository: {e}"))?;
    let link = version.join(kiln_serve::repository::ONNX_FILE);
    #[cfg(unix)]
    std::os::unix::fs::symlink(&target, &link).map_err(|e| format!("temporary repository: {e}"))?;
    #[cfg(not(unix))]
    std::fs::copy(&target, &link).map_err(|e| format!("temporary repository: {e}"))?;
    eprintln!("kiln serve: serving {} as model {name}", file.display());
    Ok(dir.to_path_buf())
}
