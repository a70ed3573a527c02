//! The HTTP endpoints: `/metrics`, `/healthz` and `/readyz`, and the health
//! they report.

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
