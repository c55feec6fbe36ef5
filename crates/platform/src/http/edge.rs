//! What every request needs at the edge, in one service instead of six layers: its id (the
//! client's `x-request-id` or a new one, echoed in the response), the span that puts the id
//! and the trace id (`x-trace-id` in the response) in every log line, the access log line,
//! the RED metrics, the timeout (503 past it; dropping the handler's future rolls back any
//! transaction it holds), and the panic guard (a 500 problem; the panic is logged, not sent).
//!
//! A hand-written tower service rather than `from_fn`: a cached read runs through all of
//! this, and `from_fn` costs three allocations and a clone of the inner stack per request.

use std::{
    any::Any,
    convert::Infallible,
    panic::AssertUnwindSafe,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    body::{Body, HttpBody as _},
    extract::{MatchedPath, Request},
    http::{HeaderName, HeaderValue},
    response::{IntoResponse, Response},
};
use futures_util::{FutureExt, future::BoxFuture};
use http_body_util::Limited;
use tower::{Layer, Service};
use tracing::Instrument;

use super::{
    Problem,
    deadline::within,
    red::{self, RouteSlot},
};
use crate::telemetry::{self, hex};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The trace the request belongs to (its `traceparent`'s, or a new one), for finding its
/// spans in the tracing backend and its log lines.
const TRACE_ID: HeaderName = HeaderName::from_static("x-trace-id");

/// Makes every route's [`Edge`]; what they share, one per application.
#[derive(Clone, Debug)]
pub(super) struct EdgeLayer(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    ids: SequentialIds,
    timeout: Duration,
    body_limit: usize,
}

impl EdgeLayer {
    pub(super) fn new(timeout: Duration, body_limit: usize) -> Self {
        Self(Arc::new(Shared {
            ids: SequentialIds::new(),
            timeout,
            body_limit,
        }))
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            route: Arc::new(RouteEdge {
                shared: self.0.clone(),
                red: RouteSlot::default(),
            }),
        }
    }
}

/// The edge of one route and method (axum layers each separately). axum clones it for every
/// request, so all it holds is one `Arc`.
#[derive(Clone, Debug)]
pub(super) struct Edge<S> {
    inner: S,
    route: Arc<RouteEdge>,
}

#[derive(Debug)]
struct RouteEdge {
    shared: Arc<Shared>,
    /// This route's metric handles, remembered from its first request.
    red: RouteSlot,
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let route = &*self.route;
        let edge = &*route.shared;
        // The limit wraps only a body that exists: most requests have none, and axum's own
        // `DefaultBodyLimit` would box an extension into every request's map.
        let request = if request.body().is_end_stream() {
            request
        } else {
            request.map(|body| Body::new(Limited::new(body, edge.body_limit)))
        };
        // Only the response carries the id: nothing downstream reads it from the request.
        let id = match request.headers().get(REQUEST_ID) {
            Some(id) => id.clone(),
            None => edge.ids.next(),
        };
        let matched = request.extensions().get::<MatchedPath>();
        // A path that matched no route is one label, not one per path a client makes up.
        let in_flight = red::start(
            &route.red,
            request.method(),
            matched.map_or("unmatched", MatchedPath::as_str),
        );
        let span = tracing::info_span!(
            "request",
            method = %request.method(),
            route = matched.map_or_else(|| request.uri().path(), MatchedPath::as_str),
            request_id = id.to_str().unwrap_or_default(),
            trace_id = tracing::field::Empty,
        );
        let trace_id = telemetry::join_trace(&span, request.headers());
        if !span.is_disabled() {
            span.record("trace_id", trace_id.as_str());
        }
        let timeout = edge.timeout;
        let started = Instant::now();
        let inner = &mut self.inner;
        let handled =
            std::panic::catch_unwind(AssertUnwindSafe(|| span.in_scope(|| inner.call(request))));
        Box::pin(async move {
            let handled = match handled {
                Ok(handling) => {
                    let guarded = AssertUnwindSafe(handling).catch_unwind();
                    within(started + timeout, guarded)
                        .instrument(span.clone())
                        .await
                }
                Err(panic) => Ok(Err(panic)),
            };
            let mut response = match handled {
                Ok(Ok(Ok(response))) => response,
                Ok(Ok(Err(never))) => match never {},
                Ok(Err(panic)) => panicked(panic),
                Err(_) => timed_out(timeout),
            };
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
            response.headers_mut().insert(TRACE_ID, trace_id.header());
            Ok(response)
        })
    }
}

fn panicked(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned());
    Problem::internal(message).into_response()
}

fn timed_out(timeout: Duration) -> Response {
    metrics::counter!("keel_http_shed_total", "reason" => "timeout").increment(1);
    Problem::new(super::problems::TIMEOUT)
        .detail(format!("the request took longer than {timeout:?}"))
        .retry_after(1)
        .into_response()
}

/// Request ids unique across instances without a syscall per request: a random prefix
/// drawn once per process, then a counter (UUIDs cost a `getrandom` call each).
#[derive(Clone, Debug)]
struct SequentialIds {
    /// The prefix's 16 hex digits and the dash, rendered once.
    prefix: [u8; 17],
    next: Arc<AtomicU64>,
}

impl SequentialIds {
    fn new() -> Self {
        use std::hash::{BuildHasher, RandomState};
        Self::with_prefix(RandomState::new().hash_one(std::time::SystemTime::now()))
    }

    fn with_prefix(prefix: u64) -> Self {
        let mut rendered = [b'-'; 17];
        rendered[..16].copy_from_slice(&hex::<16>(prefix.into()));
        Self {
            prefix: rendered,
            next: Default::default(),
        }
    }

    /// `<prefix, 16 hex digits>-<counter in hex>`.
    fn next(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Relaxed);
        let counter = hex::<16>(n.into());
        let digits = counter.iter().position(|&d| d != b'0').unwrap_or(15);
        let mut id = [0u8; 33];
        id[..17].copy_from_slice(&self.prefix);
        let len = 17 + 16 - digits;
        id[17..len].copy_from_slice(&counter[digits..]);
        HeaderValue::from_bytes(&id[..len]).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
    }
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, http::StatusCode};
    use tower::ServiceExt;

    use super::*;

    async fn through_edge<F>(timeout: Duration, handler: F) -> (Response, String)
    where
        F: Future<Output = Result<Response, Infallible>> + Send + 'static,
    {
        let mut handler = Some(handler);
        let service = tower::service_fn(move |_: Request| handler.take().expect("one request"));
        let response = EdgeLayer::new(timeout, 1 << 20)
            .layer(service)
            .oneshot(Request::new(Body::empty()))
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        (
            Response::from_parts(parts, Body::empty()),
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    #[tokio::test]
    async fn a_panicking_handler_is_a_500_problem_that_keeps_its_secret() {
        let (response, body) = through_edge(Duration::from_secs(5), async {
            panic!("the secret internals");
        })
        .await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(response.headers().contains_key(REQUEST_ID));
        assert_eq!(response.headers()[TRACE_ID].len(), 32);
        assert!(body.contains("urn:keel:problem:internal"), "{body}");
        assert!(!body.contains("secret"), "{body}");
    }

    #[tokio::test]
    async fn a_service_panicking_before_its_future_is_a_500_problem_too() {
        let service = tower::service_fn(
            |_: Request| -> std::future::Ready<Result<Response, Infallible>> {
                panic!("the secret internals, before any future")
            },
        );
        let response = EdgeLayer::new(Duration::from_secs(5), 1 << 20)
            .layer(service)
            .oneshot(Request::new(Body::empty()))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(response.headers().contains_key(REQUEST_ID));
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("urn:keel:problem:internal"), "{body}");
        assert!(!body.contains("secret"), "{body}");
    }

    #[tokio::test]
    async fn a_handler_past_the_timeout_is_a_503_problem() {
        let (response, body) = through_edge(Duration::from_millis(50), async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(Response::new(Body::empty()))
        })
        .await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], "1");
        assert!(body.contains("urn:keel:problem:timeout"), "{body}");
    }

    #[test]
    fn request_ids_are_the_prefix_then_a_counter() {
        let ids = SequentialIds::with_prefix(0x00ab_cdef_0123_4567);
        assert_eq!(ids.next(), "00abcdef01234567-0");
        assert_eq!(ids.next(), "00abcdef01234567-1");
        ids.next.store(0x1_0000, Relaxed);
        assert_eq!(ids.next(), "00abcdef01234567-10000");
        ids.next.store(u64::MAX, Relaxed);
        assert_eq!(ids.next(), "00abcdef01234567-ffffffffffffffff");
    }
}
