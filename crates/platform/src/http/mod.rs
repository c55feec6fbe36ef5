//! The HTTP edge every module shares: RFC 9457 problems, extractors whose rejections name
//! the field, and the middleware stack (request id, logs, timeout, body limit, panics).

mod extract;
mod middleware;
mod problem;

pub use extract::{IdPath, Json, Path, Query};
pub use middleware::{fallback, layer};
pub use problem::{FieldError, Problem};

/// The response header that carries a write's consistency token, and the request header a
/// client may send it back in, so its reads see that write.
pub const CONSISTENCY_TOKEN: axum::http::HeaderName =
    axum::http::HeaderName::from_static("x-consistency-token");
