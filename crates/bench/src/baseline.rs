//! `keel bench baseline`: the yardstick the benchmarks compare Keel against — a bare axum
//! handler returning a fixed body, with no database, middleware or serialization.

use std::net::SocketAddr;

use axum::{Router, http::header, routing::get};
use platform::http::JSON;
use tokio::net::TcpListener;

/// Serves `GET /*` with `size` bytes of JSON until `shutdown` completes.
pub async fn serve_baseline(
    listen: SocketAddr,
    size: usize,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let body = fixed_json(size);
    let router = Router::new().fallback(get(move || {
        let body = body.clone();
        async move { ([(header::CONTENT_TYPE, JSON)], body) }
    }));
    let listener = TcpListener::bind(listen).await?;
    tracing::info!(url = %format!("http://{}", listener.local_addr()?), size, "baseline serving");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// A JSON object of exactly `size` bytes (at least the 12 of `{"pad":""}` plus braces).
fn fixed_json(size: usize) -> bytes::Bytes {
    let pad = size.saturating_sub(r#"{"pad":""}"#.len());
    bytes::Bytes::from(format!(r#"{{"pad":"{}"}}"#, "x".repeat(pad)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_body_has_the_asked_size() {
        assert_eq!(super::fixed_json(263).len(), 263);
        let parsed: serde_json::Value = serde_json::from_slice(&super::fixed_json(100)).unwrap();
        assert!(parsed["pad"].is_string());
    }
}
