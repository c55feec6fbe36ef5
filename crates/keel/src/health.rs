//! Liveness and readiness: `/livez` says the process answers, `/readyz` that its
//! dependencies do too (a load balancer takes an instance out while it fails).

use std::time::Duration;

use axum::{
    Json,
    extract::{FromRef, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use platform::{
    db::Db,
    http::{Policy, Problem, Routes},
    redis::Redis,
};
use serde_json::json;

/// What readiness checks.
#[derive(Clone, Debug)]
pub(crate) struct Dependencies {
    pub(crate) db: Db,
    pub(crate) redis: Redis,
}

/// Never rate limited: an orchestrator's probe must always get an answer.
pub(crate) fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Dependencies: FromRef<S>,
{
    Routes::new()
        .get(
            "/livez",
            || async { Json(json!({ "status": "ok" })) },
            Policy::UNLIMITED,
        )
        .get("/readyz", ready, Policy::UNLIMITED)
}

async fn ready(State(deps): State<Dependencies>) -> Response {
    let limit = Duration::from_secs(1);
    let (postgres, redis) = tokio::join!(
        tokio::time::timeout(limit, deps.db.ping()),
        tokio::time::timeout(limit, deps.redis.ping()),
    );
    let failing: Vec<&str> = [
        ("postgres", postgres.is_ok_and(|r| r.is_ok())),
        ("redis", redis.is_ok_and(|r| r.is_ok())),
    ]
    .into_iter()
    .filter_map(|(name, ok)| (!ok).then_some(name))
    .collect();
    if failing.is_empty() {
        Json(json!({ "status": "ready", "checks": { "postgres": "ok", "redis": "ok" } }))
            .into_response()
    } else {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", "Not ready")
            .detail(format!("unreachable: {}", failing.join(", ")))
            .retry_after(1)
            .into_response()
    }
}
