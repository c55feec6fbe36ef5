//! The middleware stack every route runs behind.

use std::{
    any::Any,
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request, State},
    http::{HeaderValue, Method, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use super::Problem;
use crate::config::HttpConfig;

/// Wraps `router` in the stack, outermost first: the request's edge (id, span, access log,
/// timeout), the panic guard, the body limit; and answers unknown routes and methods with
/// problems.
pub fn layer(router: Router, config: &HttpConfig) -> Router {
    let edge = Edge {
        ids: SequentialIds::new(),
        timeout: config.request_timeout,
    };
    router
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(
            ServiceBuilder::new()
                .layer(middleware::from_fn_with_state(edge, request_edge))
                .layer(CatchPanicLayer::custom(panic_to_problem))
                .layer(DefaultBodyLimit::max(config.body_limit)),
        )
}

#[derive(Clone, Debug)]
struct Edge {
    ids: SequentialIds,
    timeout: Duration,
}

/// One middleware for what every request needs at the edge, instead of five layers: its id
/// (the client's `x-request-id` or a new one, echoed in the response), the span that puts
/// the id and the trace id (`x-trace-id` in the response) in every log line, the access log line, the RED metrics, and the timeout (503 past
/// it; dropping the handler's future rolls back any transaction it holds).
async fn request_edge(State(edge): State<Edge>, mut request: Request, next: Next) -> Response {
    let id = match request.headers().get(REQUEST_ID) {
        Some(id) => id.clone(),
        None => {
            let id = edge.ids.next();
            request.headers_mut().insert(REQUEST_ID, id.clone());
            id
        }
    };
    let matched = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let route = matched
        .clone()
        .unwrap_or_else(|| request.uri().path().to_owned());
    let method = method_label(request.method());
    // A path that matched no route is one label, not one per path a client makes up.
    let in_flight = InFlight::start(method, matched.unwrap_or_else(|| "unmatched".into()));
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        request_id = id.to_str().unwrap_or_default(),
        trace_id = tracing::field::Empty,
    );
    let trace_id = crate::telemetry::join_trace(&span, request.headers());
    span.record("trace_id", trace_id.as_str());
    let started = Instant::now();
    let handled = tokio::time::timeout(edge.timeout, next.run(request))
        .instrument(span.clone())
        .await;
    let mut response = handled.unwrap_or_else(|_| {
        metrics::counter!("keel_http_shed_total", "reason" => "timeout").increment(1);
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "Request timed out",
        )
        .detail(format!("the request took longer than {:?}", edge.timeout))
        .retry_after(1)
        .into_response()
    });
    let took = started.elapsed();
    in_flight.finish(response.status().as_u16(), took);
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            latency_ms = took.as_secs_f64() * 1000.0,
            "request finished"
        );
    });
    response.headers_mut().insert(REQUEST_ID, id);
    if let Ok(trace_id) = HeaderValue::from_str(&trace_id) {
        response.headers_mut().insert(TRACE_ID, trace_id);
    }
    response
}

const REQUEST_ID: &str = "x-request-id";
/// The trace the request belongs to (its `traceparent`'s, or a new one), for finding its
/// spans in the tracing backend and its log lines.
const TRACE_ID: &str = "x-trace-id";

/// A request being served, counted in `keel_http_requests_in_flight` until it finishes or
/// is dropped (a client that hangs up).
struct InFlight {
    method: &'static str,
    route: String,
}

impl InFlight {
    fn start(method: &'static str, route: String) -> Self {
        metrics::gauge!("keel_http_requests_in_flight").increment(1.0);
        Self { method, route }
    }

    /// Records the request in `keel_http_requests_total{method, route, status}` (status by
    /// class) and `keel_http_request_duration_seconds{method, route}`.
    fn finish(self, status: u16, took: Duration) {
        let route = self.route.clone();
        metrics::counter!("keel_http_requests_total",
            "method" => self.method, "route" => route.clone(), "status" => crate::metrics::status_class(status))
        .increment(1);
        metrics::histogram!("keel_http_request_duration_seconds", "method" => self.method, "route" => route)
            .record(took);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!("keel_http_requests_in_flight").decrement(1.0);
    }
}

/// Methods as static labels (no allocation per request); anything unusual is `OTHER`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Request ids unique across instances without a syscall per request: a random prefix
/// drawn once per process, then a counter (UUIDs cost a `getrandom` call each).
#[derive(Clone, Debug)]
struct SequentialIds {
    prefix: u64,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl SequentialIds {
    fn new() -> Self {
        use std::hash::{BuildHasher, RandomState};
        Self {
            prefix: RandomState::new().hash_one(std::time::SystemTime::now()),
            next: Default::default(),
        }
    }
}

impl SequentialIds {
    fn next(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        HeaderValue::from_str(&format!("{:016x}-{n:x}", self.prefix))
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
    }
}

fn panic_to_problem(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned());
    Problem::internal(message).into_response()
}

/// The answer for a route that does not exist.
pub async fn fallback(method: Method) -> Problem {
    Problem::not_found("Route").detail(format!("no route for this {method} path"))
}

async fn method_not_allowed(method: Method) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
    )
    .detail(format!("this path does not accept {method}"))
}
