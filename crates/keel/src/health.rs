//! Liveness and readiness, for an orchestrator or a load balancer to act on.
//!
//! - `/livez` says the process answers; it asks no dependency, so an outage elsewhere never
//!   gets healthy instances restarted.
//! - `/readyz` says whether to send this instance traffic: not from the moment it was told
//!   to stop (it drains what it has), not while PostgreSQL is unreachable (no order, no
//!   uncached read could be served). Redis away leaves it ready but degraded — cached reads
//!   come from L1 and PostgreSQL, limits from each instance, sessions only those checked
//!   lately — said in the body and in `keel_degraded`: pulling every instance for it would
//!   turn a degraded service into none.
//! - `keel probe URL` asks either from inside an image that has no curl.

use std::time::Duration;

use axum::{
    Json,
    extract::{FromRef, State},
    response::{IntoResponse, Response},
};
use platform::{
    db::Db,
    http::{Draining, Policy, Problem, Routes},
    redis::Redis,
};
use serde_json::json;

/// What readiness checks, and whether the instance is draining.
#[derive(Clone, Debug)]
pub(crate) struct Dependencies {
    pub(crate) db: Db,
    pub(crate) redis: Redis,
    pub(crate) draining: Draining,
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

platform::problem_types! {
    /// GET /readyz: the instance got SIGTERM; it finishes what it has and takes nothing new,
    /// so a balancer should send requests elsewhere.
    DRAINING = (SERVICE_UNAVAILABLE, "draining", "Draining");
    /// GET /readyz: PostgreSQL does not answer, so the instance cannot serve.
    NOT_READY = (SERVICE_UNAVAILABLE, "not-ready", "Not ready");
}

async fn ready(State(deps): State<Dependencies>) -> Response {
    if deps.draining.is_on() {
        return Problem::new(DRAINING)
            .detail("this instance is stopping: it finishes what it has and takes nothing new")
            .into_response();
    }
    let limit = Duration::from_secs(1);
    let (postgres, redis) = tokio::join!(
        tokio::time::timeout(limit, deps.db.ping()),
        tokio::time::timeout(limit, deps.redis.ping()),
    );
    let postgres = postgres.is_ok_and(|r| r.is_ok());
    let redis = redis.is_ok_and(|r| r.is_ok());
    metrics::gauge!("keel_degraded").set(f64::from(u8::from(!redis)));
    let check = |ok| if ok { "ok" } else { "unreachable" };
    if !postgres {
        return Problem::new(NOT_READY)
            .detail("unreachable: postgres")
            .retry_after(1)
            .into_response();
    }
    Json(json!({
        "status": if redis { "ready" } else { "degraded" },
        "checks": { "postgres": check(postgres), "redis": check(redis) },
    }))
    .into_response()
}

/// `keel probe`: asks `url` and succeeds on a 2xx answer within `timeout`.
pub async fn probe(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().timeout(timeout).build()?;
    let status = client.get(url).send().await?.status();
    anyhow::ensure!(status.is_success(), "{url} answered {status}");
    Ok(())
}
