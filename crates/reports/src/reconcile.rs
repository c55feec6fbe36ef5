//! Reconciling the read models with the event log: PostgreSQL is the source of truth and the
//! broker only delivers, so an event the broker lost (acknowledged, then gone with a node)
//! delays a summary instead of dropping it. The worker applies, every sweep, the logged
//! events of a recent window that the active generation has not applied.

use platform::{
    InfraError,
    bus::event_log::{self, LoggedEvent},
    db::Db,
};
use time::OffsetDateTime;

use crate::{
    Error,
    project::{self, Applied, ApplyError, StoredEvent},
};

/// What a reconciliation did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Logged events in the window that the read models lacked, now applied.
    pub applied: u64,
    /// Of the ones they lacked, those they cannot apply (an unknown event, a step whose order
    /// was never placed): left for the dead-letter queue or an operator.
    pub skipped: u64,
}

/// Applies the events logged from `from` to `to` that the active generation lacks, in id
/// order, in one transaction that holds the active generation (a rebuild waits to switch).
pub async fn reconcile(
    db: &Db,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Reconciled, Error> {
    let mut client = db.write().await?;
    let tx = client.transaction().await.map_err(InfraError::from)?;
    let schema = project::active_schema(&tx).await?;
    let logged = event_log::ids_between(&tx, from, to).await?;
    let missing = project::unapplied(&tx, &schema, &logged).await?;
    let mut done = Reconciled::default();
    for logged in event_log::by_ids(&tx, &missing).await? {
        match apply(&tx, &schema, &logged).await? {
            true => done.applied += 1,
            false => done.skipped += 1,
        }
    }
    tx.commit().await?;
    if done.applied > 0 {
        tracing::warn!(
            applied = done.applied,
            "read models reconciled with the event log: the broker lost these events"
        );
        metrics::counter!("keel_projection_reconciled_total").increment(done.applied);
    }
    Ok(done)
}

/// Applies one logged event; one it cannot apply changes nothing and the rest go on.
async fn apply(
    tx: &platform::db::Transaction<'_>,
    schema: &str,
    logged: &LoggedEvent,
) -> Result<bool, Error> {
    match project::apply(tx, schema, &StoredEvent::from(logged)).await {
        Ok(Applied::Done) => Ok(true),
        Ok(Applied::Already | Applied::OrderUnknown) | Err(ApplyError::Unknown { .. }) => Ok(false),
        Err(ApplyError::Infra(e)) => Err(e.into()),
    }
}
