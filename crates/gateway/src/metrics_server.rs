//! The `/metrics` endpoint: [`Metrics::encode`] over HTTP/1.1 for Prometheus, at the
//! configuration's `metrics_listen` address.
//!
//! ```text
//! GET /metrics  -> 200, Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8
//! anything else -> 404
//! ```
//!
//! The body is the OpenMetrics text that prometheus-client's text encoder writes (ending in
//! `# EOF`), hence its content type, the one prometheus-client's own server examples send.
//! The caller binds the listener, so the address (and port 0 in tests) is its choice, and a
//! bind error is reported where the configuration is known.

use std::io;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tracing::info;

use crate::metrics::Metrics;

/// The content type of the OpenMetrics text format, version 1.0.0.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The path the metrics are served at.
pub const METRICS_PATH: &str = "/metrics";

/// Serves `metrics` at `/metrics` on `listener` until the listener fails.
pub async fn serve_metrics(listener: TcpListener, metrics: Arc<Metrics>) -> io::Result<()> {
    if let Ok(address) = listener.local_addr() {
        info!(%address, "metrics served at http://{address}{METRICS_PATH}");
    }
    axum::serve(listener, router(metrics)).await
}

/// The routes: `/metrics`, and 404 for everything else (axum's fallback).
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route(METRICS_PATH, get(metrics_page))
        .with_state(metrics)
}

async fn metrics_page(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], metrics.encode())
}
