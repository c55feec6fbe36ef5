//! The middleware stack every route runs behind.

use std::convert::Infallible;

use axum::{Router, extract::Request, http::Method, response::Response, routing::Route};
use tower::{Layer, Service, ServiceBuilder};

use super::{Problem, edge::EdgeLayer};
use crate::config::HttpConfig;

/// Wraps every route of `router` in the stack, outermost first: the request's edge (id,
/// span, access log, metrics, timeout, panic guard), the body limit, then `inner` (the
/// application's own layers); and answers unknown routes and methods with problems.
///
/// One `Router::layer` call for all of it: axum clones each call's stack per request.
pub fn layer<L>(router: Router, config: &HttpConfig, inner: L) -> Router
where
    L: Layer<Route> + Clone + Send + Sync + 'static,
    L::Service:
        Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    <L::Service as Service<Request>>::Future: Send + 'static,
{
    router
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(
            ServiceBuilder::new()
                .layer(EdgeLayer::new(config.request_timeout, config.body_limit))
                .layer(inner),
        )
}

/// The answer for a route that does not exist.
pub async fn fallback(method: Method) -> Problem {
    Problem::not_found("Route").detail(format!("no route for this {method} path"))
}

async fn method_not_allowed(method: Method) -> Problem {
    Problem::new(super::problems::METHOD_NOT_ALLOWED)
        .detail(format!("this path does not accept {method}"))
}
