//! The outbox relay: publishes committed events to JetStream in outbox order, then deletes
//! them.
//!
//! A batch is claimed with `FOR UPDATE SKIP LOCKED`, so several relays (one per worker) share
//! the outbox without publishing a row twice at the same time; if a relay dies after
//! publishing but before its commit, the rows are published again with the same
//! `Nats-Msg-Id` and JetStream drops the duplicates.
//!
//! Relays poll (`KEEL_OUTBOX_POLL`, 10 ms) rather than wait for a NOTIFY: PostgreSQL holds one
//! database-wide lock on its notification queue from a notifying transaction's commit until
//! the commit is flushed, so a NOTIFY in every order's transaction made the orders commit one
//! at a time (in the fleet lab, 25 sessions at once waited on that lock in `COMMIT`). An idle
//! poll is one indexed `EXISTS`, a round trip without a transaction.

use std::{future::Future, time::Duration};

use async_nats::jetstream::message::PublishMessage as Publish;
use bytes::Bytes;

use crate::{ErrorChain, InfraError, backoff::Backoff, db::Db};

use super::Bus;

/// The header with the event's time of writing, in microseconds since the Unix epoch: how
/// consumers measure how far behind the writes they are.
pub const OCCURRED_AT: &str = "Keel-Occurred-At";

/// Rows published per transaction.
const BATCH: i64 = 256;

/// Relays until `shutdown` completes. Failures (PostgreSQL or NATS down) are logged and
/// retried with a capped backoff; nothing is lost, the rows wait in the outbox.
pub async fn run(db: Db, bus: Bus, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let poll = bus.config().outbox_poll;
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        let published = match waiting(&db).await {
            Ok(false) => Ok(0),
            Ok(true) => publish_batch(&db, &bus).await,
            Err(e) => Err(e),
        };
        let wait = match published {
            Ok(published) => {
                backoff.reset();
                if published as i64 == BATCH {
                    continue;
                }
                poll
            }
            Err(e) => {
                let wait = backoff.next_delay();
                tracing::warn!(error = %ErrorChain(&e), retry_in = ?wait, "outbox relay failed");
                // A new or restarted NATS server may not have the stream yet.
                if let Err(e) = bus.events_stream().await {
                    tracing::debug!(error = %e, "events stream not reachable");
                }
                wait
            }
        };
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Whether the outbox holds a row: the idle poll, one round trip outside any transaction.
async fn waiting(db: &Db) -> Result<bool, InfraError> {
    let client = db.write().await?;
    let statement = client
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM bus.outbox)")
        .await?;
    let row = crate::db::timed("bus.relay_poll", client.query_one(&statement, &[])).await?;
    Ok(row.get(0))
}

/// Publishes one batch of the oldest unclaimed rows and deletes them; returns how many.
pub async fn publish_batch(db: &Db, bus: &Bus) -> Result<usize, InfraError> {
    let mut client = db.write().await?;
    let tx = client.transaction().await?;
    let claim = tx
        .prepare_cached(
            "SELECT id, subject, payload::text,
                    (extract(epoch FROM occurred_at) * 1000000)::bigint
               FROM bus.outbox
              ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .await?;
    let rows = crate::db::timed("bus.relay_claim", tx.query(&claim, &[&BATCH])).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    // Publish the whole batch, then wait for every ack: one round trip of latency per batch,
    // and JetStream stores the messages in the order they were sent.
    let mut acks = Vec::with_capacity(rows.len());
    let mut ids = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: i64 = row.get(0);
        let subject: &str = row.get(1);
        let payload: String = row.get(2);
        let occurred_at: i64 = row.get(3);
        let publish = Publish::build()
            .payload(Bytes::from(payload))
            .message_id(id.to_string())
            .header(OCCURRED_AT, occurred_at.to_string());
        let ack = bus
            .jetstream()
            .send_publish(bus.subject(subject), publish)
            .await
            .map_err(|e| InfraError::unavailable("nats", e))?;
        acks.push(ack);
        ids.push(id);
    }
    for ack in acks {
        ack.await.map_err(|e| InfraError::unavailable("nats", e))?;
    }
    let delete = tx
        .prepare_cached("DELETE FROM bus.outbox WHERE id = ANY($1)")
        .await?;
    crate::db::timed("bus.relay_delete", tx.execute(&delete, &[&ids])).await?;
    tx.commit().await?;
    metrics::counter!("keel_outbox_published_total").increment(ids.len() as u64);
    Ok(ids.len())
}

/// Rows waiting in the outbox and the age of the oldest, in seconds; also set as the gauges
/// `keel_outbox_backlog` and `keel_outbox_oldest_seconds`.
pub async fn backlog(db: &Db) -> Result<(i64, f64), InfraError> {
    let client = db.write().await?;
    let row = client
        .query_one(
            "SELECT count(*), coalesce(extract(epoch FROM now() - min(occurred_at)), 0)::float8
               FROM bus.outbox",
            &[],
        )
        .await?;
    let (rows, oldest): (i64, f64) = (row.get(0), row.get(1));
    metrics::gauge!("keel_outbox_backlog").set(rows as f64);
    metrics::gauge!("keel_outbox_oldest_seconds").set(oldest);
    Ok((rows, oldest))
}
