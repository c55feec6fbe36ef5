//! The order saga, orchestrated: one runner drives an order through its steps, its state
//! persisted on the order after each one, so any runner can resume it after a crash.
//!
//! ```text
//! placed → stock_reserved → payment_captured → shipment_created → confirmed
//!                 └──────────────┴── cancelled (stock released, payment refunded)
//! ```
//!
//! The same [`Saga::run`] serves both designs: the worker calls it for each `OrderPlaced`
//! event (async mode), and `POST /orders` calls it inline (sync mode). A lease on the order
//! keeps two runners (a redelivery, the worker and a sync request) from working at once;
//! each step's compare-and-set keeps a runner that lost its lease from repeating a step; the
//! charge's idempotency key keeps a repeated charge from charging twice.

mod steps;

use std::time::Duration;

use catalog::ProductCache;
use platform::{InfraError, config::parse_duration, db::Db};
use time::OffsetDateTime;

use contract::{OrderCancelled, OrderConfirmed, PaymentCaptured};

use crate::{
    OrderId, OrderStatus,
    payments::{ChargeOutcome, PaymentClient, Unavailable},
    shipping,
};

pub(crate) use steps::CONSUMER;
use steps::{Claim, SagaOrder};

/// How orders run their saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OrderMode {
    /// `POST /orders` answers 202 once the order is stored; the worker runs the saga.
    Async,
    /// `POST /orders` runs the saga inline and answers with its outcome (the monolith).
    Sync,
}

/// The saga's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct SagaConfig {
    /// Whether `POST /orders` runs the saga itself (`sync`) or leaves it to the worker.
    #[arg(long, env = "KEEL_ORDER_MODE", value_enum, default_value = "async")]
    pub order_mode: OrderMode,

    /// How long a runner owns an order; a crashed runner's orders are resumed after it.
    #[arg(long, env = "KEEL_SAGA_LEASE", default_value = "30s", value_parser = parse_duration)]
    pub saga_lease: Duration,

    /// How long the worker keeps an order waiting for an unavailable payment provider
    /// before cancelling it. Keep it under the time the consumer's deliveries span
    /// (about five minutes with the default ten), or the order is dead-lettered first.
    #[arg(long, env = "KEEL_PAYMENT_DEADLINE", default_value = "4m", value_parser = parse_duration)]
    pub payment_deadline: Duration,
}

/// Where a run left the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The saga is over: confirmed or cancelled.
    Finished(OrderStatus),
    /// It cannot go on now (provider unavailable, or another runner on it): try again
    /// after this long.
    Waiting(Duration),
}

/// Runs order sagas.
#[derive(Clone, Debug)]
pub struct Saga {
    db: Db,
    payments: PaymentClient,
    products: ProductCache,
    config: SagaConfig,
}

/// Who is running the saga, which decides how an unavailable provider is met.
#[derive(Debug, Clone, Copy)]
pub struct Runner {
    /// The request that placed the order (sync mode): it already holds the lease, and it
    /// fails fast rather than keep the client waiting.
    pub inline: bool,
    /// The event delivery driving the run, recorded as processed when the saga ends.
    pub delivery: Option<i64>,
    /// The delivery's last attempt: end the saga rather than wait again.
    pub last_attempt: bool,
}

impl Saga {
    pub fn new(
        db: Db,
        payments: PaymentClient,
        products: ProductCache,
        config: SagaConfig,
    ) -> Self {
        Self {
            db,
            payments,
            products,
            config,
        }
    }

    pub fn config(&self) -> &SagaConfig {
        &self.config
    }

    /// Takes order `id` as far as it can go now.
    pub async fn run(&self, id: OrderId, runner: Runner) -> Result<Progress, InfraError> {
        if !runner.inline {
            match steps::claim(&self.db, id, self.config.saga_lease).await? {
                Claim::Claimed => {}
                Claim::Finished(status) => return Ok(Progress::Finished(status)),
                Claim::Busy(left) => {
                    return Ok(Progress::Waiting(left.min(Duration::from_secs(5))));
                }
            }
        }
        loop {
            let order = steps::load(&self.db, id).await?;
            let next = match order.status {
                OrderStatus::Confirmed | OrderStatus::Cancelled => {
                    return Ok(Progress::Finished(order.status));
                }
                OrderStatus::Placed | OrderStatus::StockReserved => {
                    match &order.cancel_reason {
                        // A charge may have gone through before the cancellation: refund by
                        // the key (a no-op at the provider when nothing was charged).
                        Some(reason) => self.cancel(&order, reason, true, runner).await?,
                        None => self.capture_payment(&order, runner).await?,
                    }
                }
                OrderStatus::PaymentCaptured => match &order.cancel_reason {
                    Some(reason) => self.cancel(&order, reason, true, runner).await?,
                    None => self.ship(&order).await?,
                },
                OrderStatus::ShipmentCreated => self.confirm(&order, runner).await?,
            };
            if let Some(progress) = next {
                return Ok(progress);
            }
        }
    }

    async fn capture_payment(
        &self,
        order: &SagaOrder,
        runner: Runner,
    ) -> Result<Option<Progress>, InfraError> {
        let key = charge_key(order.id);
        match self
            .payments
            .charge(&key, order.total_cents, &order.id.to_string())
            .await
        {
            ChargeOutcome::Captured { charge_id } => {
                let mut client = self.db.write().await?;
                let moved = steps::advance(
                    &mut client,
                    order.id,
                    order.status,
                    OrderStatus::PaymentCaptured,
                    Some(&charge_id),
                    self.config.saga_lease,
                )
                .await?;
                if let Some(tx) = moved {
                    steps::set_charge(&tx, order.id, &charge_id).await?;
                    let event = PaymentCaptured {
                        order_id: order.id,
                        charge_id,
                        amount_cents: order.total_cents,
                    };
                    steps::finish_step(&tx, &event, None).await?;
                    tx.commit().await?;
                }
                Ok(None)
            }
            ChargeOutcome::Declined { reason } => {
                let reason = format!("payment declined: {reason}");
                steps::request_cancel(&self.db, order.id, &reason).await?;
                // A decline is definitive: nothing was charged, nothing to refund.
                self.cancel(order, &reason, false, runner).await
            }
            ChargeOutcome::Refused { reason } => {
                // Not the customer's doing: an operator must look (credentials, a contract
                // change at the provider).
                tracing::error!(order = %order.id, reason, "the payment provider refused the charge request");
                let reason = format!("payment could not be taken: {reason}");
                steps::request_cancel(&self.db, order.id, &reason).await?;
                self.cancel(order, &reason, false, runner).await
            }
            ChargeOutcome::Unavailable { reason } => {
                let age = OffsetDateTime::now_utc() - order.created_at;
                let give_up =
                    runner.inline || runner.last_attempt || age > self.config.payment_deadline;
                if give_up {
                    let reason = format!("payment provider unavailable: {reason}");
                    steps::request_cancel(&self.db, order.id, &reason).await?;
                    self.cancel(order, &reason, true, runner).await
                } else {
                    tracing::info!(
                        order = %order.id,
                        reason,
                        "payment provider unavailable; the order waits"
                    );
                    steps::release_lease(&self.db, order.id).await?;
                    Ok(Some(Progress::Waiting(Duration::from_secs(2))))
                }
            }
        }
    }

    async fn ship(&self, order: &SagaOrder) -> Result<Option<Progress>, InfraError> {
        let mut client = self.db.write().await?;
        if let Some(tx) = steps::advance(
            &mut client,
            order.id,
            OrderStatus::PaymentCaptured,
            OrderStatus::ShipmentCreated,
            None,
            self.config.saga_lease,
        )
        .await?
        {
            let event = shipping::create_shipment(&tx, order.id).await?;
            steps::finish_step(&tx, &event, None).await?;
            tx.commit().await?;
        }
        Ok(None)
    }

    async fn confirm(
        &self,
        order: &SagaOrder,
        runner: Runner,
    ) -> Result<Option<Progress>, InfraError> {
        let mut client = self.db.write().await?;
        if let Some(tx) = steps::advance(
            &mut client,
            order.id,
            OrderStatus::ShipmentCreated,
            OrderStatus::Confirmed,
            None,
            self.config.saga_lease,
        )
        .await?
        {
            let event = OrderConfirmed { order_id: order.id };
            steps::finish_step(&tx, &event, runner.delivery).await?;
            tx.commit().await?;
            record_finished(order, "confirmed");
        }
        Ok(None)
    }

    /// Compensates what the saga did (refund, stock) and ends the order cancelled. A refund
    /// the provider cannot take now leaves the order waiting, its cancellation recorded.
    async fn cancel(
        &self,
        order: &SagaOrder,
        reason: &str,
        refund: bool,
        runner: Runner,
    ) -> Result<Option<Progress>, InfraError> {
        if refund {
            if let Err(Unavailable(why)) = self.payments.refund(&charge_key(order.id)).await {
                tracing::warn!(
                    order = %order.id,
                    why,
                    "refund failed; the cancellation waits"
                );
                steps::release_lease(&self.db, order.id).await?;
                return Ok(Some(Progress::Waiting(Duration::from_secs(2))));
            }
        }
        let mut client = self.db.write().await?;
        if let Some(tx) = steps::advance(
            &mut client,
            order.id,
            order.status,
            OrderStatus::Cancelled,
            Some(reason),
            self.config.saga_lease,
        )
        .await?
        {
            steps::release_stock(&tx, &order.lines).await?;
            let event = OrderCancelled {
                order_id: order.id,
                reason: reason.to_owned(),
                refunded: refund,
                lines: order.lines.clone(),
            };
            steps::finish_step(&tx, &event, runner.delivery).await?;
            tx.commit().await?;
            record_finished(order, "cancelled");
        } else {
            return Ok(None);
        }
        let written_at = self.db.written_at(&client).await;
        self.products
            .invalidate(written_at, order.lines.iter().map(|l| l.product_id))
            .await;
        Ok(None)
    }
}

/// Counts a saga's end in `keel_saga_finished_total{outcome}` and its length, placed to
/// final, in `keel_saga_duration_seconds{outcome}`.
fn record_finished(order: &SagaOrder, outcome: &'static str) {
    metrics::counter!("keel_saga_finished_total", "outcome" => outcome).increment(1);
    let took = (OffsetDateTime::now_utc() - order.created_at).as_seconds_f64();
    metrics::histogram!("keel_saga_duration_seconds", "outcome" => outcome).record(took.max(0.0));
}

/// The idempotency key of an order's charge: one per order, so every retry, redelivery and
/// resumed saga asks for the same charge.
pub fn charge_key(id: OrderId) -> String {
    format!("order-{id}")
}
