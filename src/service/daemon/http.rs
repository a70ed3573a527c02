//! The HTTP endpoints: `/metrics`, `/healthz` and `/readyz`, the health
//! they report, and the accept loop that keeps them answering when many
//! clients connect slowly.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::service::clock::Clock;
use crate::service::metrics::Metrics;

/// What the readiness check looks at.
pub struct Health {
    pub(super) database_ok: AtomicBool,
    pub(super) last_tick: AtomicI64,
    pub(super) stale_after_seconds: AtomicI64,
    pub(super) clock: Arc<dyn Clock>,
}

impl Health {
    /// Ready: the database answered at the last tick, and ticks are not stale.
    pub fn ready(&self) -> Result<(), String> {
        if !self.database_ok.load(Ordering::SeqCst) {
            return Err("the case database did not answer at the last tick".into());
        }
        self.ticking()
    }

    /// Ticks keep coming: the scheduler has not stalled.
    pub fn ticking(&self) -> Result<(), String> {
        let last = self.last_tick.load(Ordering::SeqCst);
        let age = self.clock.now().timestamp() - last;
        let limit = self.stale_after_seconds.load(Ordering::SeqCst);
        if last == 0 || age > limit {
            return Err(format!(
                "no tick for {age} s (more than {limit} s): the scheduler has stalled"
            ));
        }
        Ok(())
    }
}

#[derive(Clone)]
struct HttpState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

pub fn router(metrics: Arc<Metrics>, health: Arc<Health>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(s): State<HttpState>| async move {
                (
                    [("content-type", "text/plain; version=0.0.4")],
                    s.metrics.render(),
                )
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|State(s): State<HttpState>| async move {
                match s.health.ready() {
                    Ok(()) => (StatusCode::OK, "ready\n".to_string()),
                    Err(why) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("not ready: {why}\n"),
                    ),
                }
            }),
        )
        .with_state(HttpState { metrics, health })
}

/// What keeps the endpoints answering under many slow or idle clients.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; more wait in the listen queue, not in
    /// file descriptors.
    pub max_connections: usize,
    /// A client must send its request's headers within this long.
    pub header_timeout: std::time::Duration,
    /// No connection lasts longer than this: a scrape needs a second.
    pub lifetime: std::time::Duration,
}

/// Serves `app` on `listener` until `stop` resolves, within `limits`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: Limits,
    stop: impl std::future::Future<Output = ()>,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            () = &mut stop => return,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let stream = tokio::select! {
            () = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_timeout);
            let conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            // A client that errs or lingers is dropped; there is nothing to report.
            let _ = tokio::time::timeout(limits.lifetime, conn).await;
            drop(permit);
        });
    }
}
