//! `keel projections rebuild`: builds the next generation of the read models from the
//! partitioned event log while the service runs, then switches the API and the live
//! projector to it in one transaction and drops the old one.
//!
//! 1. The next generation's tables are created, empty.
//! 2. The event archive and the event log are applied to them in id order, a page per
//!    transaction. The live projector meanwhile keeps the active generation current.
//! 3. One transaction locks the active generation (live projection waits), applies every
//!    logged event the new generation still lacks — those whose transactions were not yet
//!    committed when step 2 passed their ids — and re-points the views at it.
//!
//! Step 3 looks back [`STRAGGLERS`] before the rebuild began: a transaction that writes an
//! event and stays open longer than that while step 2 runs would be missed. Months past the
//! log's retention are in the archive and replayed; only months dropped from the archive
//! (`KEEL_EVENT_ARCHIVE_RETENTION_MONTHS`) are gone, and their orders with them.

use std::time::{Duration, Instant};

use platform::db::Client;
use platform::{
    bus::event_log::{self, LoggedEvent},
    db::Db,
};
use time::OffsetDateTime;

use crate::{
    Error,
    project::{self, Applied, ApplyError, StoredEvent},
};

/// Events applied per transaction while the log is replayed.
const PAGE: i64 = 1000;

/// How far before the rebuild's start the final catch-up looks for events committed late.
const STRAGGLERS: Duration = Duration::from_secs(300);

/// Held for the whole rebuild, so two cannot run at once.
const REBUILD_LOCK: i64 = 0x6b65_656c_7270; // "keelrp"

/// What a rebuild did.
#[derive(Debug)]
pub struct Rebuilt {
    /// The generation now active.
    pub generation: i32,
    /// Events applied from the log, including the final catch-up.
    pub applied: u64,
    /// Of those, applied in the final, locking transaction.
    pub caught_up: u64,
    /// Step events whose order was placed in a month dropped from the archive: left out.
    pub orphaned: u64,
    /// Events this build cannot read (an unknown subject, a payload that does not parse):
    /// skipped, and counted in `keel_projection_unknown_events_total` too.
    pub unknown: u64,
    pub took: Duration,
}

/// Rebuilds the read models; see the module's description.
pub async fn rebuild(db: &Db) -> Result<Rebuilt, Error> {
    let started = Instant::now();
    // The advisory lock is a session's: a session on the primary itself.
    let mut lock = db.session().await?;
    let locked: bool = lock
        .query_one("SELECT pg_try_advisory_lock($1)", &[&REBUILD_LOCK])
        .await?
        .get(0);
    if !locked {
        return Err(Error::RebuildRunning);
    }
    let result = run(&mut lock).await;
    let _ = lock
        .execute("SELECT pg_advisory_unlock($1)", &[&REBUILD_LOCK])
        .await;
    let mut rebuilt = result?;
    rebuilt.took = started.elapsed();
    Ok(rebuilt)
}

async fn run(client: &mut platform::db::Connection) -> Result<Rebuilt, Error> {
    // A generation left half-built by a rebuild that died is dropped and started again.
    drop_generations(client, "building").await?;
    let row = client
        .query_one(
            "SELECT coalesce(max(generation), 0) + 1, now() FROM reports.generations",
            &[],
        )
        .await?;
    let (next, began): (i32, OffsetDateTime) = (row.get(0), row.get(1));
    client
        .execute("SELECT reports.create_generation($1)", &[&next])
        .await?;
    let schema = project::schema(next);
    tracing::info!(
        generation = next,
        "rebuilding the read models from the event log"
    );

    let mut totals = Rebuilt {
        generation: next,
        applied: 0,
        caught_up: 0,
        orphaned: 0,
        unknown: 0,
        took: Duration::ZERO,
    };
    let mut after = 0_i64;
    loop {
        let tx = client.transaction().await?;
        let events = event_log::page(&tx, after, PAGE).await?;
        let Some(last) = events.last() else { break };
        after = last.id;
        apply_events(&tx, &schema, &events, &mut totals).await?;
        tx.commit().await?;
    }

    let tx = client.transaction().await?;
    tx.query_one(
        "SELECT generation FROM reports.generations WHERE state = 'active' FOR UPDATE",
        &[],
    )
    .await?;
    let recent = event_log::ids_between(&tx, began - STRAGGLERS, OffsetDateTime::now_utc()).await?;
    let missing = project::unapplied(&tx, &schema, &recent).await?;
    let stragglers = event_log::by_ids(&tx, &missing).await?;
    let before = totals.applied;
    apply_events(&tx, &schema, &stragglers, &mut totals).await?;
    totals.caught_up = totals.applied - before;
    tx.execute("SELECT reports.switch_to($1)", &[&next]).await?;
    tx.commit().await?;
    drop_generations(client, "retired").await?;
    tracing::info!(
        generation = next,
        applied = totals.applied,
        caught_up = totals.caught_up,
        "read models switched to the rebuilt generation"
    );
    Ok(totals)
}

async fn apply_events(
    tx: &impl Client,
    schema: &str,
    events: &[LoggedEvent],
    totals: &mut Rebuilt,
) -> Result<(), Error> {
    for logged in events {
        match project::apply(tx, schema, &StoredEvent::from(logged)).await {
            Ok(Applied::Done) => totals.applied += 1,
            Ok(Applied::Already) => {}
            // In id order an order's OrderPlaced comes first: it went with an archived month
            // dropped for good.
            Ok(Applied::OrderUnknown) => totals.orphaned += 1,
            Err(unknown @ ApplyError::Unknown { .. }) => {
                totals.unknown += 1;
                tracing::warn!(error = %unknown, subject = logged.subject, "event skipped: not an order event this build knows");
            }
            Err(ApplyError::Infra(e)) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Drops every generation in `state` (never the active one), tables and all.
async fn drop_generations(client: &platform::db::Connection, state: &str) -> Result<(), Error> {
    let rows = client
        .query(
            "SELECT generation FROM reports.generations WHERE state = $1",
            &[&state],
        )
        .await?;
    for row in rows {
        let generation: i32 = row.get(0);
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {} CASCADE;
                 DELETE FROM reports.generations WHERE generation = {generation};",
                project::schema(generation)
            ))
            .await?;
    }
    Ok(())
}
