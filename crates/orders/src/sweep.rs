//! The sweep for stuck sagas: PostgreSQL is the source of truth and the broker only
//! delivers, so an order that no message has moved for a while — its `OrderPlaced` lost by
//! the broker, or dead-lettered after its deliveries ran out — is re-driven from its row,
//! under its lease, exactly as a redelivery would run it.

use std::time::Duration;

use platform::{ErrorChain, InfraError, db::Db};

use crate::{
    OrderId,
    saga::{Progress, Runner, Saga},
};

/// How the sweep runs.
#[derive(Debug, Clone, clap::Args)]
pub struct SweepConfig {
    /// An order in flight that nothing moved for this long is re-driven by the worker's sweep
    /// (a saga takes well under a second; one waiting for a provider that is down is moved
    /// by its redeliveries every minute at most).
    #[arg(long, env = "KEEL_SWEEP_AFTER", default_value = "2m", value_parser = platform::config::parse_duration)]
    pub sweep_after: Duration,

    /// How often the worker sweeps (and reconciles the read models with the event log).
    #[arg(long, env = "KEEL_SWEEP_EVERY", default_value = "30s", value_parser = platform::config::parse_duration)]
    pub sweep_every: Duration,
}

/// Orders past `after` without a step and without a live runner, oldest first.
async fn stuck(db: &Db, after: Duration, limit: i64) -> Result<Vec<OrderId>, InfraError> {
    let client = db.write().await?;
    let statement = client
        .prepare_cached(
            "SELECT id FROM orders.orders
              WHERE status NOT IN ('confirmed', 'cancelled')
                AND updated_at < now() - $1::float8 * interval '1 second'
                AND (saga_lease_until IS NULL OR saga_lease_until < now())
              ORDER BY updated_at LIMIT $2",
        )
        .await?;
    let rows = platform::db::timed(
        "orders.stuck",
        client.query(&statement, &[&after.as_secs_f64(), &limit]),
    )
    .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Re-drives the orders stuck past `after`, up to a batch; returns how many it moved to
/// their end or onward.
pub async fn sweep(saga: &Saga, db: &Db, after: Duration) -> Result<usize, InfraError> {
    let runner = Runner {
        inline: false,
        delivery: None,
        last_attempt: false,
    };
    let stuck = stuck(db, after, 100).await?;
    for &id in &stuck {
        tracing::warn!(order = %id, ?after, "no message moved this order: re-driving its saga");
        metrics::counter!("keel_saga_redriven_total").increment(1);
        match saga.run(id, runner).await {
            Ok(Progress::Finished(status)) => {
                tracing::info!(order = %id, status = status.as_str(), "re-driven saga finished")
            }
            Ok(Progress::Waiting(_)) => {}
            Err(e) => {
                tracing::warn!(order = %id, error = %ErrorChain(&e), "re-driven saga stopped")
            }
        }
    }
    Ok(stuck.len())
}
