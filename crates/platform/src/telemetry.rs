//! Structured logs and traces. Logs are one JSON object per line, each carrying the request's
//! span (its request id and trace id); `KEEL_LOG` filters them, e.g. `KEEL_LOG=warn` or
//! `KEEL_LOG=info,orders=debug`. Traces are exported over OTLP/HTTP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the standard OpenTelemetry variables apply), and cost
//! nothing but a random trace id per request otherwise.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use axum::http::{HeaderMap, HeaderName};
use opentelemetry::{
    propagation::{Extractor, TextMapPropagator},
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

/// The W3C Trace Context request header. A `&str` name would be parsed on every lookup.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Whether spans are exported (set once, by [`init`]).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Keeps the trace exporter running; dropping it flushes the spans still buffered.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                tracing::warn!(error = %e, "flushing traces failed");
            }
        }
    }
}

/// Installs the global subscriber: JSON logs, plus OTLP trace export when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Call once, at the start of the binary.
pub fn init(service: &'static str) -> Telemetry {
    let filter = EnvFilter::try_from_env("KEEL_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,tokio_postgres=warn"));
    let logs = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_writer(std::io::stderr);
    let (provider, failure) = match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => match exporter(service) {
            Ok(provider) => (Some(provider), None),
            Err(e) => (None, Some(e)),
        },
        _ => (None, None),
    };
    let traces = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service)));
    tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(traces)
        .init();
    if let Some(e) = failure {
        tracing::error!(error = %e, "cannot export traces (OTEL_EXPORTER_OTLP_ENDPOINT); logging only");
    }
    EXPORTING.store(provider.is_some(), Relaxed);
    Telemetry { provider }
}

fn exporter(
    service: &'static str,
) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    use opentelemetry_otlp::WithExportConfig as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service).build())
        .build())
}

/// Joins `span` to the trace the request's `traceparent` header names (W3C Trace Context),
/// or to a new one, and returns the trace id for the logs and the response.
pub fn join_trace(span: &tracing::Span, headers: &HeaderMap) -> TraceId {
    if EXPORTING.load(Relaxed) {
        let parent = TraceContextPropagator::new().extract(&Headers(headers));
        if let Err(e) = span.set_parent(parent) {
            tracing::debug!(error = %e, "span not joined to its parent trace");
        }
        let trace_id = span.context().span().span_context().trace_id();
        return TraceId(hex(u128::from_be_bytes(trace_id.to_bytes())));
    }
    let sent = headers
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(trace_id_of)
        .and_then(|id| id.as_bytes().try_into().ok());
    TraceId(sent.unwrap_or_else(|| hex(fastrand::u128(1..))))
}

/// A trace id: 32 lower-case hex digits, kept on the stack (one is made per request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceId([u8; 32]);

impl TraceId {
    pub fn as_str(&self) -> &str {
        // Only ever hex digits: from `hex`, or a `traceparent` checked by `trace_id_of`.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    pub fn header(&self) -> axum::http::HeaderValue {
        axum::http::HeaderValue::from_bytes(&self.0)
            .unwrap_or_else(|_| axum::http::HeaderValue::from_static("unknown"))
    }
}

/// `value`'s lowest `N` hex digits, lower case: ids are made on every request, and this is
/// several times cheaper than `format!` (a byte, two digits, at a time: shifting a `u128`
/// by a nibble costs a handful of instructions per digit).
pub(crate) fn hex<const N: usize>(value: u128) -> [u8; N] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    const {
        assert!(
            N <= 32 && N % 2 == 0,
            "an even count of a u128's 32 hex digits"
        )
    };
    let bytes = value.to_be_bytes();
    let mut out = [0; N];
    for (pair, byte) in out.chunks_exact_mut(2).zip(&bytes[16 - N / 2..]) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0xf)];
    }
    out
}

/// The trace id of a `traceparent` value (`00-<32 hex>-<16 hex>-<2 hex>`), if well formed.
fn trace_id_of(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    let valid = hex(version, 2)
        && version != "ff"
        && hex(trace, 32)
        && trace.bytes().any(|b| b != b'0')
        && hex(parent, 16)
        && hex(flags, 2);
    valid.then_some(trace)
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_checked_before_it_is_believed() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(
            trace_id_of(&format!("00-{id}-00f067aa0ba902b7-01")),
            Some(id)
        );
        assert_eq!(trace_id_of(&format!("00-{id}-00f067aa0ba902b7")), None);
        assert_eq!(
            trace_id_of("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(trace_id_of(&format!("00-{id}x-00f067aa0ba902b7-01")), None);
        assert_eq!(trace_id_of(&format!("ff-{id}-00f067aa0ba902b7-01")), None);
    }

    #[test]
    fn hex_matches_the_formatter() {
        for value in [
            0,
            1,
            0xabc,
            u64::MAX as u128,
            u128::MAX,
            0x0123_4567_89ab_cdef,
        ] {
            assert_eq!(&hex::<32>(value), format!("{value:032x}").as_bytes());
            let low = value as u64;
            assert_eq!(&hex::<16>(value), format!("{low:016x}").as_bytes());
        }
    }

    #[test]
    fn without_an_exporter_a_request_gets_a_fresh_trace_id() {
        let id = join_trace(&tracing::Span::none(), &HeaderMap::new());
        assert_eq!(id.as_str().len(), 32);
        assert!(id.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(id, join_trace(&tracing::Span::none(), &HeaderMap::new()));
    }

    #[test]
    fn a_valid_traceparent_names_the_trace() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        let id = join_trace(&tracing::Span::none(), &headers);
        assert_eq!(id.as_str(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(id.header(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }
}
