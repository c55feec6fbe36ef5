//! The HTTP edge every module shares: RFC 9457 problems, extractors whose rejections name
//! the field, and the middleware stack (request id, logs, timeout, body limit, panics).

mod extract;
mod middleware;
mod problem;

pub use extract::{IdPath, Json, Path, Query};
pub use middleware::{fallback, layer};
pub use problem::{FieldError, Problem};
