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
    /// How often the repository is scanned for new and removed versions (`None`: never).
    pub poll: Option<Duration>,
}

/// Serves `options.repository` until SIGTERM or Ctrl-C; requests in flight finish first.
/// `ready` is called with the bound address once the server accepts connections.
pub fn serve(options: &ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<(), String> {
    serve_until(options, ready, shutdown_signal())
}

/// [`serve`] that stops when `stop` resolves instead of on a signal (tests, embedding).
pub fn serve_until(
    options: &ServeOptions,
    ready: impl FnOnce(SocketAddr),
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let registry = Arc::new(Registry::load(&options.repository)?);
    for u in registry.unavailable() {
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
        let bound = listener.local_addr().map_err(|e| e.to_string())?;
        if let Some(every) = options.poll {
            let registry = Arc::clone(&registry);
            tokio::spawn(async move {
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
            });
        }
        ready(bound);
        axum::serve(listener, crate::http::router(registry))
            .with_graceful_shutdown(stop)
            .await
            .map_err(|e| format!("server: {e}"))
    })
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
