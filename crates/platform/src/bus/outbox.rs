//! Appending events in the caller's transaction: to the outbox the relay drains, and to the
//! permanent, month-partitioned event log.

use crate::db::Client;
use serde::Serialize;
use tokio_postgres::types::Json;

use crate::InfraError;

/// A domain event: where it goes (`orders.placed`) and what it says.
pub trait Event: Serialize + std::fmt::Debug + Sync {
    /// The subject under the bus's prefix, e.g. `orders.placed`.
    const SUBJECT: &'static str;
}

/// Writes `event` inside `tx`; it is published after the transaction commits, never if it
/// rolls back. Returns the event's id (also its `Nats-Msg-Id`).
pub async fn append<E: Event>(tx: &impl Client, event: &E) -> Result<i64, InfraError> {
    let statement = tx
        .prepare_cached(
            "WITH e AS (
                INSERT INTO bus.outbox (subject, payload) VALUES ($1, $2)
                RETURNING id, subject, payload, occurred_at
             )
             INSERT INTO bus.event_log (id, subject, payload, occurred_at)
             SELECT id, subject, payload, occurred_at FROM e
             RETURNING id",
        )
        .await?;
    let row = crate::db::timed(
        "bus.outbox_append",
        tx.query_one(&statement, &[&E::SUBJECT, &Json(event)]),
    )
    .await?;
    Ok(row.get(0))
}
