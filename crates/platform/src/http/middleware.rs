//! The middleware stack every route runs behind.

use std::{any::Any, time::Duration};

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request, State},
    http::{Method, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::{DefaultOnResponse, TraceLayer},
};
use tracing::Level;

use super::Problem;
use crate::config::HttpConfig;

/// Wraps `router` in the stack, outermost first: request id, request log line, panic guard,
/// timeout, body limit; and answers unknown routes and methods with problems.
pub fn layer(router: Router, config: &HttpConfig) -> Router {
    router
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(request_span)
                        .on_request(())
                        .on_response(DefaultOnResponse::new().level(Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(CatchPanicLayer::custom(panic_to_problem))
                .layer(middleware::from_fn_with_state(
                    config.request_timeout,
                    timeout,
                ))
                .layer(DefaultBodyLimit::max(config.body_limit)),
        )
}

/// The span every log line of a request is written in: it carries the request id.
fn request_span(request: &Request) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or(request.uri().path(), |p| p.as_str());
    tracing::info_span!("request", method = %request.method(), route, request_id)
}

/// Answers 503 when a request outlives its budget; dropping the handler's future rolls back
/// any transaction it holds.
async fn timeout(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "Request timed out",
        )
        .detail(format!("the request took longer than {limit:?}"))
        .retry_after(1)
        .into_response(),
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
