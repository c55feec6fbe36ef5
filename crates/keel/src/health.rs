//! Liveness and readiness: `/livez` says the process answers, `/readyz` that its
//! dependencies do too (a load balancer takes an instance out while it fails).

use std::time::Duration;

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use platform::{db::Db, http::Problem, redis::Redis};
use serde_json::json;

#[derive(Clone, Debug)]
struct Dependencies {
    db: Db,
    redis: Redis,
}

pub(crate) fn router(db: Db, redis: Redis) -> Router {
    Router::new()
        .route("/livez", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/readyz", get(ready))
        .with_state(Dependencies { db, redis })
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
