//! Structured logs: one JSON object per line, each carrying the request's span (and so its
//! request id). `KEEL_LOG` filters them, e.g. `KEEL_LOG=warn` or `KEEL_LOG=info,orders=debug`.

use tracing_subscriber::EnvFilter;

/// Installs the global JSON log subscriber; call once, at the start of the binary.
pub fn init_logs() {
    let filter = EnvFilter::try_from_env("KEEL_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,tokio_postgres=warn"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_writer(std::io::stderr)
        .init();
}
