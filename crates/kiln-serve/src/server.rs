//! Running the server: bind, watch the repository, serve until SIGTERM or Ctrl-C, then drain.

use crate::registry::Registry;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How `serve` runs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The model repository.
    pub repository: PathBuf,
    /// Where HTTP listens (127.0.0.1:8000 by default: nothing outside the machine).
    pub http: SocketAddr,
    /// Where gRPC listens (127.0.0.1:8001 by default, as Triton; `None`: no gRPC).
    pub grpc: Option<SocketAddr>,
    /// How often the repository is scanned for new and removed versions (`None`: never).
    pub poll: Option<Duration>,
    /// How `model.onnx` versions are imported (the `kiln` command passes Kiln's graph
    /// passes as `optimize`).
    pub import: kiln_onnx::ImportOptions,
    /// Refuse to start when a model or version of the repository fails its first load (as
    /// Triton's `--exit-on-error`); else it is reported unavailable and the rest serve.
    pub exit_on_error: bool,
}

/// The addresses a running server listens on (port 0 in the options: the one picked).
#[derive(Clone, Copy, Debug)]
pub struct Bound {
    /// HTTP: the Open Inference Protocol, TF Serving REST and `/metrics`.
    pub http: SocketAddr,
    /// gRPC: the Open Inference Protocol, when enabled.
    pub grpc: Option<SocketAddr>,
}

/// Serves `options.repository` until SIGTERM or Ctrl-C; requests in flight finish first.
/// `ready` is called with the bound addresses once the server accepts connections.
pub fn serve(options: &ServeOptions, ready: impl FnOnce(Bound)) -> Result<(), String> {
    serve_until(options, ready, shutdown_signal())
}

/// [`serve`] that stops when `stop` resolves instead of on a signal (tests, embedding).
pub fn serve_until(
    options: &ServeOptions,
    ready: impl FnOnce(Bound),
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let registry = Arc::new(Registry::load_with(
        &options.repository,
        options.import.clone(),
    )?);
    let unavailable = registry.unavailable();
    if options.exit_on_error && !unavailable.is_empty() {
        let reasons: Vec<String> = unavailable
            .iter()
            .map(|u| format!("{}: {}", u.model, u.reason))
            .collect();
        return Err(reasons.join("; "));
    }
    for u in unavailable {
        eprintln!("kiln serve: {} unavailable: {}", u.model, u.reason);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("kiln-serve-io")
        .build()
        .map_err(|e| format!("cannot start the server's runtime: {e}"))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(options.http)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", options.http))?;
        let grpc_listener = match options.grpc {
            Some(at) => Some(
                tokio::net::TcpListener::bind(at)
                    .await
                    .map_err(|e| format!("cannot listen on {at}: {e}"))?,
            ),
            None => None,
        };
        let bound = Bound {
            http: listener.local_addr().map_err(|e| e.to_string())?,
            grpc: match &grpc_listener {
                Some(l) => Some(l.local_addr().map_err(|e| e.to_string())?),
                None => None,
            },
        };
        if let Some(every) = options.poll {
            tokio::spawn(watch_repository(Arc::clone(&registry), every));
        }
        // One stop for both protocols: each drains its own requests in flight.
        let (stopping, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            stop.await;
            let _ = stopping.send(true);
        });
        let until_stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|&s| s).await;
            }
        };
        let grpc = grpc_listener.map(|l| {
            let service = crate::grpc::service(Arc::clone(&registry));
            let signal = until_stopped();
            tokio::spawn(async move {
                tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming_shutdown(
                        // Small answers must leave at once, not wait on Nagle's algorithm
                        // for the peer's delayed ACK (≈40 ms stalls at concurrency 1).
                        tonic::transport::server::TcpIncoming::from(l).with_nodelay(Some(true)),
                        signal,
                    )
                    .await
            })
        });
        ready(bound);
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let http = axum::serve(listener, crate::http::router(registry))
            .with_graceful_shutdown(until_stopped())
            .await
            .map_err(|e| format!("HTTP server: {e}"));
        if let Some(grpc) = grpc {
            grpc.await
                .map_err(|e| format!("gRPC server: {e}"))?
                .map_err(|e| format!("gRPC server: {e}"))?;
        }
        http
    })
}

/// Reloads the repository every `every`: new versions load, removed ones unload.
async fn watch_repository(registry: Arc<Registry>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let r = Arc::clone(&registry);
        // Loading graphs is blocking work: off the async threads.
        match tokio::task::spawn_blocking(move || r.reload()).await {
            Ok(Err(e)) => eprintln!("kiln serve: reload: {e}"),
            Err(e) => eprintln!("kiln serve: reload failed: {e}"),
            Ok(Ok(())) => {}
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    eprintln!("kiln serve: shutting down; finishing requests in flight");
}
