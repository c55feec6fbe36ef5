//! The HTTP edge every module shares: RFC 9457 problems, extractors whose rejections name
//! the field, and the middleware stack (request id, logs, timeout, body limit, panics).

mod deadline;
mod edge;
mod extract;
mod middleware;
mod problem;
mod problem_type;
pub(crate) mod red;
mod route;
mod scrape;
mod selective;
mod serve;

pub use extract::{IdPath, Json, Object, Path, Query};
pub use middleware::{fallback, layer};
pub use problem::{FieldError, Problem};
pub use problem_type::{ProblemType, edge as problems};
pub use route::{Feature, Policy, RateClass, Routes};
pub use scrape::metrics_routes;
pub use selective::{Selective, SelectiveLayer, SelectiveService, call_next};
pub use serve::{Draining, Serving, serve};

/// The response header that carries a write's consistency token, and the request header a
/// client may send it back in, so its reads see that write.
pub const CONSISTENCY_TOKEN: axum::http::HeaderName =
    axum::http::HeaderName::from_static("x-consistency-token");

/// `Content-Type: application/json` for bodies serialized ahead of time (a `&str` would be
/// parsed and copied on every response).
pub const JSON: axum::http::HeaderValue = axum::http::HeaderValue::from_static("application/json");

/// A `200 OK` carrying JSON serialized ahead of time (a cached body): built directly, where
/// `([(CONTENT_TYPE, JSON)], body)` would set `application/octet-stream` and then replace it.
pub fn json_body(body: bytes::Bytes) -> axum::response::Response {
    let mut response = axum::response::Response::new(axum::body::Body::from(body));
    response
        .headers_mut()
        .insert(axum::http::header::CONTENT_TYPE, JSON);
    response
}
