//! `GET /metrics`: the recorder's text, then the RED series the edge counts itself.

use axum::{http::header, response::IntoResponse};

use super::{Policy, Routes, red};

/// `GET /metrics` in the Prometheus text format, never rate limited (a scraper must always
/// get through).
pub fn metrics_routes<S: Clone + Send + Sync + 'static>() -> Routes<S> {
    crate::metrics::handle();
    Routes::new().get("/metrics", render, Policy::UNLIMITED)
}

async fn render() -> impl IntoResponse {
    let handle = crate::metrics::handle();
    handle.run_upkeep();
    let mut text = handle.render();
    red::render(&mut text);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
