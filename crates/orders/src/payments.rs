//! The client of the external payment provider: every call has a timeout, failures open a
//! circuit breaker, and retries back off exponentially with full jitter inside a retry
//! budget. Each charge carries an idempotency key (the order's), so a retry after a lost
//! response never charges twice.

use std::{sync::Arc, time::Duration};

use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;
use platform::{
    breaker::{Breaker, BreakerState},
    config::parse_duration,
};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use tower::retry::budget::{Budget, TpsBudget};

/// Where the provider is and how hard to try.
#[derive(Debug, Clone, clap::Args)]
pub struct PaymentsConfig {
    /// Base URL of the payment provider (`keel fake-payments` locally).
    #[arg(
        long,
        env = "KEEL_PAYMENTS_URL",
        default_value = "http://127.0.0.1:8090"
    )]
    pub payments_url: String,

    /// Timeout of one call to the provider.
    #[arg(long, env = "KEEL_PAYMENTS_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub payments_timeout: Duration,

    /// Retries after a failed call (timeouts, 5xx, refused connections).
    #[arg(long, env = "KEEL_PAYMENTS_RETRIES", default_value_t = 3)]
    pub payments_retries: usize,

    /// First retry's backoff ceiling; it doubles per retry (full jitter picks 0..ceiling).
    #[arg(long, env = "KEEL_PAYMENTS_BACKOFF", default_value = "100ms", value_parser = parse_duration)]
    pub payments_backoff: Duration,

    /// Largest backoff ceiling.
    #[arg(long, env = "KEEL_PAYMENTS_BACKOFF_MAX", default_value = "2s", value_parser = parse_duration)]
    pub payments_backoff_max: Duration,

    /// Retries allowed as a percentage of calls (over 10 s), so a struggling provider is not
    /// buried under retries.
    #[arg(long, env = "KEEL_PAYMENTS_RETRY_BUDGET", default_value_t = 20.0)]
    pub payments_retry_budget: f32,

    /// Consecutive failures that open the circuit.
    #[arg(long, env = "KEEL_PAYMENTS_BREAKER_FAILURES", default_value_t = 5)]
    pub payments_breaker_failures: u32,

    /// How long an open circuit fails fast before letting a probe through.
    #[arg(long, env = "KEEL_PAYMENTS_BREAKER_COOL_DOWN", default_value = "5s", value_parser = parse_duration)]
    pub payments_breaker_cool_down: Duration,
}

/// What a charge came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    Captured {
        charge_id: String,
    },
    /// The provider said no to the card (a definitive answer: nothing was charged).
    Declined {
        reason: String,
    },
    /// The provider refused the request itself (a 4xx other than a decline: bad
    /// credentials, a request it cannot read). Nothing was charged, and asking again will
    /// not help: it is Keel's or its configuration's fault, never the customer's.
    Refused {
        reason: String,
    },
    /// No answer within the timeouts, retries and budget, or the circuit is open. A charge
    /// may or may not have happened; a refund by the same key settles it.
    Unavailable {
        reason: String,
    },
}

/// What a refund came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundOutcome {
    Refunded,
    /// The provider holds no charge under the key: there is nothing to give back.
    NothingCharged,
}

/// The provider did not answer usably; try again later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("payment provider unavailable: {0}")]
pub struct Unavailable(pub String);

/// The payment provider's client; cheap to clone, one breaker and budget per process.
#[derive(Clone, Debug)]
pub struct PaymentClient {
    http: reqwest::Client,
    config: Arc<PaymentsConfig>,
    breaker: Arc<Breaker>,
    budget: Arc<TpsBudget>,
}

#[derive(Serialize)]
struct ChargeRequest<'a> {
    amount_cents: i64,
    reference: &'a str,
}

#[derive(Deserialize)]
struct ChargeResponse {
    id: String,
}

#[derive(Deserialize)]
struct DeclineResponse {
    reason: String,
}

/// One call's result: final, or worth another try (and whether it counts against the breaker).
enum Attempt<T> {
    Final(T),
    Retry { reason: String, failure: bool },
}

impl PaymentClient {
    pub fn new(config: &PaymentsConfig) -> Self {
        Self {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .unwrap_or_default(),
            breaker: Arc::new(Breaker::new(
                "payments",
                config.payments_breaker_failures,
                config.payments_breaker_cool_down,
            )),
            budget: Arc::new(TpsBudget::new(
                Duration::from_secs(10),
                10,
                config.payments_retry_budget / 100.0,
            )),
            config: Arc::new(config.clone()),
        }
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// Charges `amount_cents` once per `key`, however many times it is called.
    pub async fn charge(&self, key: &str, amount_cents: i64, reference: &str) -> ChargeOutcome {
        let url = format!("{}/charges", self.config.payments_url);
        let body = ChargeRequest {
            amount_cents,
            reference,
        };
        let result = self
            .call(
                "charge",
                || {
                    self.http
                        .post(&url)
                        .header("Idempotency-Key", key)
                        .json(&body)
                },
                |status, body| match status {
                    s if s.is_success() => match serde_json::from_slice::<ChargeResponse>(&body) {
                        Ok(charge) => Attempt::Final(ChargeOutcome::Captured {
                            charge_id: charge.id,
                        }),
                        Err(e) => Attempt::Retry {
                            reason: format!("unreadable charge: {e}"),
                            failure: true,
                        },
                    },
                    StatusCode::PAYMENT_REQUIRED => Attempt::Final(ChargeOutcome::Declined {
                        reason: serde_json::from_slice::<DeclineResponse>(&body)
                            .map_or_else(|_| "declined".to_owned(), |d| d.reason),
                    }),
                    other => {
                        retry_or_reject(other, &body, |reason| ChargeOutcome::Refused { reason })
                    }
                },
            )
            .await;
        result.unwrap_or_else(|Unavailable(reason)| ChargeOutcome::Unavailable { reason })
    }

    /// Refunds whatever was charged under `key`; calling it again is harmless.
    pub async fn refund(&self, key: &str) -> Result<RefundOutcome, Unavailable> {
        let url = format!("{}/refunds", self.config.payments_url);
        self.call(
            "refund",
            || self.http.post(&url).header("Idempotency-Key", key),
            |status, body| match status {
                s if s.is_success() => Attempt::Final(Ok(RefundOutcome::Refunded)),
                StatusCode::NOT_FOUND => Attempt::Final(Ok(RefundOutcome::NothingCharged)),
                other => retry_or_reject(other, &body, |reason| Err(Unavailable(reason))),
            },
        )
        .await?
    }

    /// Runs one request with the timeout, breaker, backoff and budget around it. Each
    /// attempt's time is recorded in `keel_payments_call_seconds{operation, outcome}`.
    async fn call<T>(
        &self,
        operation: &'static str,
        request: impl Fn() -> reqwest::RequestBuilder,
        classify: impl Fn(StatusCode, Bytes) -> Attempt<T>,
    ) -> Result<T, Unavailable> {
        self.budget.deposit();
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(self.config.payments_backoff)
            .with_max_delay(self.config.payments_backoff_max)
            .with_max_times(self.config.payments_retries)
            .build();
        loop {
            if !self.breaker.allow() {
                metrics::counter!("keel_payments_rejected_total", "operation" => operation, "reason" => "circuit_open").increment(1);
                return Err(Unavailable("circuit open".into()));
            }
            let started = std::time::Instant::now();
            let sent = tokio::time::timeout(self.config.payments_timeout, async {
                let response = request().send().await?;
                let status = response.status();
                Ok::<_, reqwest::Error>((status, response.bytes().await?))
            })
            .await;
            let took = started.elapsed();
            let record = |outcome: &'static str| {
                metrics::histogram!("keel_payments_call_seconds", "operation" => operation, "outcome" => outcome)
                    .record(took);
            };
            let (reason, failure) = match sent {
                Ok(Ok((status, body))) => match classify(status, body) {
                    Attempt::Final(result) => {
                        record("answered");
                        self.breaker.record_success();
                        return Ok(result);
                    }
                    Attempt::Retry { reason, failure } => {
                        record("retryable");
                        (reason, failure)
                    }
                },
                Ok(Err(e)) => {
                    record("error");
                    (format!("request failed: {e}"), true)
                }
                Err(_) => {
                    record("timeout");
                    (
                        format!("no answer in {:?}", self.config.payments_timeout),
                        true,
                    )
                }
            };
            if failure {
                self.breaker.record_failure();
            }
            let Some(ceiling) = backoff.next() else {
                return Err(Unavailable(format!("gave up after retries: {reason}")));
            };
            if !self.budget.withdraw() {
                metrics::counter!("keel_payments_rejected_total", "operation" => operation, "reason" => "retry_budget").increment(1);
                return Err(Unavailable(format!("retry budget spent: {reason}")));
            }
            // Full jitter: anywhere between no wait and the ceiling, so clients that failed
            // together do not retry together.
            tokio::time::sleep(ceiling.mul_f64(fastrand::f64())).await;
        }
    }
}

/// 409 (the same key still in flight at the provider), 429 and 5xx are worth retrying; any
/// other status is the provider refusing this request for good.
fn retry_or_reject<T>(status: StatusCode, body: &[u8], reject: impl Fn(String) -> T) -> Attempt<T> {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    match status {
        StatusCode::CONFLICT | StatusCode::TOO_MANY_REQUESTS => Attempt::Retry {
            reason: format!("{status}"),
            failure: false,
        },
        s if s.is_server_error() => Attempt::Retry {
            reason: format!("{status}: {text}"),
            failure: true,
        },
        s => Attempt::Final(reject(format!(
            "provider refused the request ({s}): {text}"
        ))),
    }
}
