//! `kiln serve`: serves a model repository over the Open Inference Protocol (HTTP and gRPC)
//! and TF Serving's REST API, or a
//! `kiln train` run directory directly (its best checkpoint is exported to a graph first, in a
//! temporary repository).

use super::export::{checkpoint_of, export};
use clap::Args;
use kiln_serve::{serve, ServeOptions};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Options of `kiln serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// A `kiln train` run directory to serve directly (as model `<run name>`, version 1).
    pub run: Option<PathBuf>,
    /// A model repository: `REPO/<model>/<version>/model.kgraph` (+ optional
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
            return Err("give a run directory (kiln serve runs/digits-cnn) or \
                        --model-repository REPO"
                .into())
        }
    };
    let options = ServeOptions {
        repository,
        http: SocketAddr::new(args.host, args.http_port),
        grpc: (!args.no_grpc).then(|| SocketAddr::new(args.host, args.grpc_port)),
        poll: (args.poll_secs > 0.0).then(|| Duration::from_secs_f64(args.poll_secs)),
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
