//! `keel fake-payments`: a small payment provider standing in for the external world (the
//! system's only test double). It charges and refunds by idempotency key like a real
//! provider, records every charge, and misbehaves on request: latency, errors, hangs, and
//! declines above an amount, set by flags or at runtime with `PUT /behaviour`.

use std::{
    collections::HashMap,
    future::Future,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use platform::{config::parse_duration, idempotency::IdempotencyKey};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::net::TcpListener;

/// How the provider behaves; every field can be changed while it runs.
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
#[serde(default)]
pub struct Behaviour {
    /// Added to every call before it is answered.
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    #[serde(with = "millis")]
    pub latency: Duration,
    /// Share of calls answered 503 before anything is charged (0.0 to 1.0).
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Share of charges that are made and then never answered (the client must time out).
    #[arg(long, default_value_t = 0.0)]
    pub hang_rate: f64,
    /// Charges above this amount are declined (402), like a card over its limit.
    #[arg(long, default_value_t = i64::MAX)]
    pub decline_over_cents: i64,
}

/// A provider that answers at once and never fails: the flags' declared defaults.
impl Default for Behaviour {
    fn default() -> Self {
        // The declared defaults parse: the test below runs them.
        platform::config::defaults().expect("the declared defaults parse")
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// A charge as the provider records it.
#[derive(Debug, Clone, Serialize)]
pub struct Charge {
    pub id: String,
    pub key: String,
    pub reference: String,
    pub amount_cents: i64,
    pub status: &'static str,
}

#[derive(Debug, Default)]
struct Ledger {
    charges: HashMap<String, Charge>,
    /// Every call, for tests that count retries.
    calls: u64,
}

#[derive(Debug, Clone)]
struct Provider {
    behaviour: Arc<Mutex<Behaviour>>,
    ledger: Arc<Mutex<Ledger>>,
}

/// A running fake provider.
#[derive(Debug)]
pub struct FakePayments {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl FakePayments {
    /// Serves on `addr` (port 0 picks one) until dropped.
    pub async fn start(addr: SocketAddr, behaviour: Behaviour) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(serve(listener, behaviour, std::future::pending()));
        Ok(Self { addr, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for FakePayments {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves the provider on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    behaviour: Behaviour,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let provider = Provider {
        behaviour: Arc::new(Mutex::new(behaviour)),
        ledger: Arc::default(),
    };
    let app = Router::new()
        .route("/charges", post(charge).get(list_charges))
        .route("/refunds", post(refund))
        .route("/behaviour", put(set_behaviour).get(get_behaviour))
        .route("/stats", get(stats))
        .with_state(provider);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[derive(Deserialize)]
struct ChargeRequest {
    amount_cents: i64,
    reference: String,
}

impl Provider {
    fn behaviour(&self) -> Behaviour {
        self.behaviour
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The latency and injected errors every call goes through.
    async fn misbehave(&self) -> Result<Behaviour, Response> {
        let behaviour = self.behaviour();
        self.ledger().calls += 1;
        tokio::time::sleep(behaviour.latency).await;
        if fastrand::f64() < behaviour.error_rate {
            return Err((StatusCode::SERVICE_UNAVAILABLE, "injected failure").into_response());
        }
        Ok(behaviour)
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<String, Response> {
    headers
        .get(&IdempotencyKey::HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| (StatusCode::BAD_REQUEST, "Idempotency-Key required").into_response())
}

async fn charge(
    State(provider): State<Provider>,
    headers: HeaderMap,
    Json(request): Json<ChargeRequest>,
) -> Response {
    let key = match idempotency_key(&headers) {
        Ok(key) => key,
        Err(response) => return response,
    };
    let behaviour = match provider.misbehave().await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let (charge, fresh) = {
        let mut ledger = provider.ledger();
        let count = ledger.charges.len();
        let mut fresh = false;
        let charge = ledger
            .charges
            .entry(key.clone())
            .or_insert_with(|| {
                fresh = true;
                Charge {
                    id: format!("ch_{:08}", count + 1),
                    key,
                    reference: request.reference,
                    amount_cents: request.amount_cents,
                    status: if request.amount_cents > behaviour.decline_over_cents {
                        "declined"
                    } else {
                        "captured"
                    },
                }
            })
            .clone();
        (charge, fresh)
    };
    if fresh && charge.status == "captured" && fastrand::f64() < behaviour.hang_rate {
        // Charged, but the answer never comes: the client cannot tell whether it was.
        std::future::pending::<()>().await;
    }
    match charge.status {
        "declined" => (
            StatusCode::PAYMENT_REQUIRED,
            Json(json!({ "id": charge.id, "reason": "insufficient funds" })),
        )
            .into_response(),
        _ => {
            let status = if fresh {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, Json(charge)).into_response()
        }
    }
}

async fn refund(State(provider): State<Provider>, headers: HeaderMap) -> Response {
    let key = match idempotency_key(&headers) {
        Ok(key) => key,
        Err(response) => return response,
    };
    if let Err(response) = provider.misbehave().await {
        return response;
    }
    let mut ledger = provider.ledger();
    match ledger.charges.get_mut(&key) {
        Some(charge) if charge.status != "declined" => {
            charge.status = "refunded";
            (StatusCode::OK, Json(charge.clone())).into_response()
        }
        _ => (StatusCode::NOT_FOUND, "no charge under this key").into_response(),
    }
}

#[derive(Deserialize)]
struct ChargeFilter {
    reference: Option<String>,
}

async fn list_charges(
    State(provider): State<Provider>,
    Query(filter): Query<ChargeFilter>,
) -> Json<Vec<Charge>> {
    let ledger = provider.ledger();
    let mut charges: Vec<Charge> = ledger
        .charges
        .values()
        .filter(|c| filter.reference.as_ref().is_none_or(|r| *r == c.reference))
        .cloned()
        .collect();
    charges.sort_by(|a, b| a.id.cmp(&b.id));
    Json(charges)
}

async fn stats(State(provider): State<Provider>) -> Json<serde_json::Value> {
    let ledger = provider.ledger();
    let count = |status: &str| {
        ledger
            .charges
            .values()
            .filter(|c| c.status == status)
            .count()
    };
    Json(json!({
        "calls": ledger.calls,
        "captured": count("captured"),
        "refunded": count("refunded"),
        "declined": count("declined"),
    }))
}

async fn get_behaviour(State(provider): State<Provider>) -> Json<Behaviour> {
    Json(provider.behaviour())
}

async fn set_behaviour(
    State(provider): State<Provider>,
    Json(behaviour): Json<Behaviour>,
) -> Json<Behaviour> {
    *provider.behaviour.lock().unwrap_or_else(|e| e.into_inner()) = behaviour.clone();
    tracing::info!(?behaviour, "fake payment provider behaviour changed");
    Json(behaviour)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_provider_behaves() {
        let behaviour = Behaviour::default();
        assert_eq!(behaviour.latency, Duration::ZERO);
        assert_eq!(behaviour.error_rate, 0.0);
        assert_eq!(behaviour.hang_rate, 0.0);
        assert_eq!(behaviour.decline_over_cents, i64::MAX);
    }
}
