//! The event log's monthly partitions: created ahead of time, and after the retention moved
//! to the archive (`bus.event_archive`, which rebuilds read too) — a `DETACH` and an
//! `ATTACH`, not a mass `DELETE`; the archive's months are dropped only past a retention of
//! their own, when one is set.

use std::future::Future;

use time::{Date, Month, OffsetDateTime};

use crate::{
    InfraError,
    db::{Connection, Db},
};

/// What a maintenance run did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Maintained {
    pub created: Vec<String>,
    /// Moved from the log to the archive.
    pub archived: Vec<String>,
    /// Dropped from the archive, for good.
    pub dropped: Vec<String>,
}

/// Keel's advisory lock id for changing the log's partitions ("keelprt"): instances and
/// workers starting together would otherwise race to create the same partition.
const PARTITIONS_LOCK: i64 = 0x006b_6565_6c70_7274;

/// Runs `work` holding the partitions lock on `session` (a session's lock: `session` comes
/// from [`Db::session`], and the work uses that same connection).
async fn locked<T>(
    session: &Connection,
    work: impl Future<Output = Result<T, InfraError>>,
) -> Result<T, InfraError> {
    session
        .execute("SELECT pg_advisory_lock($1)", &[&PARTITIONS_LOCK])
        .await?;
    let result = work.await;
    let _ = session
        .execute("SELECT pg_advisory_unlock($1)", &[&PARTITIONS_LOCK])
        .await;
    result
}

/// Creates the partitions from the current month through `months_ahead` months from now.
pub async fn ensure(db: &Db, months_ahead: u32) -> Result<Vec<String>, InfraError> {
    let session = db.session().await?;
    locked(&session, ensure_on(&session, months_ahead)).await
}

async fn ensure_on(client: &Connection, months_ahead: u32) -> Result<Vec<String>, InfraError> {
    let mut month = first_of_month(OffsetDateTime::now_utc().date());
    let mut created = Vec::new();
    for _ in 0..=months_ahead {
        let next = next_month(month);
        let name = partition_name(month);
        let exists: bool = client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&format!("bus.{name}")],
            )
            .await?
            .get(0);
        if !exists {
            // Two processes may race here at startup; IF NOT EXISTS makes the loser a no-op.
            client
                .batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS bus.{name} PARTITION OF bus.event_log
                     FOR VALUES FROM ('{month}') TO ('{next}')"
                ))
                .await?;
            created.push(name);
        }
        month = next;
    }
    Ok(created)
}

/// The partitions of `parent` whose whole month ended more than `retention_months` months
/// before the current one, with their months.
async fn expired(
    client: &Connection,
    parent: &str,
    retention_months: u32,
) -> Result<Vec<(String, Date)>, InfraError> {
    let mut cutoff = first_of_month(OffsetDateTime::now_utc().date());
    for _ in 0..retention_months {
        cutoff = previous_month(cutoff);
    }
    let rows = client
        .query(
            "SELECT c.relname FROM pg_inherits i
               JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = $1::text::regclass
              ORDER BY c.relname",
            &[&parent],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let name: String = row.get(0);
            let month = parse_partition_name(&name)?;
            (next_month(month) <= cutoff).then_some((name, month))
        })
        .collect())
}

/// Moves the log's partitions past `retention_months` to the archive, each in one
/// transaction (the events are in the log or in the archive, never in neither).
async fn archive_expired(
    client: &Connection,
    retention_months: u32,
) -> Result<Vec<String>, InfraError> {
    let mut archived = Vec::new();
    for (name, month) in expired(client, "bus.event_log", retention_months).await? {
        let next = next_month(month);
        client
            .batch_execute(&format!(
                "BEGIN;
                 ALTER TABLE bus.event_log DETACH PARTITION bus.{name};
                 ALTER TABLE bus.event_archive ATTACH PARTITION bus.{name}
                     FOR VALUES FROM ('{month}') TO ('{next}');
                 COMMIT;"
            ))
            .await?;
        archived.push(name);
    }
    Ok(archived)
}

/// Drops the archive's partitions past `retention_months`; none when it is 0 (kept for
/// good).
async fn drop_archived(
    client: &Connection,
    retention_months: u32,
) -> Result<Vec<String>, InfraError> {
    if retention_months == 0 {
        return Ok(Vec::new());
    }
    let mut dropped = Vec::new();
    for (name, _) in expired(client, "bus.event_archive", retention_months).await? {
        client
            .batch_execute(&format!(
                "ALTER TABLE bus.event_archive DETACH PARTITION bus.{name};
                 DROP TABLE bus.{name};"
            ))
            .await?;
        dropped.push(name);
    }
    Ok(dropped)
}

/// Creates upcoming partitions, archives the log's expired ones and drops the archive's, on
/// one session holding the partitions lock.
pub async fn maintain(
    db: &Db,
    months_ahead: u32,
    retention_months: u32,
    archive_retention_months: u32,
) -> Result<Maintained, InfraError> {
    let session = db.session().await?;
    locked(&session, async {
        Ok(Maintained {
            created: ensure_on(&session, months_ahead).await?,
            archived: archive_expired(&session, retention_months).await?,
            dropped: drop_archived(&session, archive_retention_months).await?,
        })
    })
    .await
}

fn partition_name(month: Date) -> String {
    format!("event_log_y{}m{:02}", month.year(), u8::from(month.month()))
}

fn parse_partition_name(name: &str) -> Option<Date> {
    let rest = name.strip_prefix("event_log_y")?;
    let (year, month) = rest.split_once('m')?;
    let month = Month::try_from(month.parse::<u8>().ok()?).ok()?;
    Date::from_calendar_date(year.parse().ok()?, month, 1).ok()
}

fn first_of_month(day: Date) -> Date {
    day.replace_day(1).unwrap_or(day)
}

fn next_month(first: Date) -> Date {
    let (year, month) = match first.month() {
        Month::December => (first.year() + 1, Month::January),
        m => (first.year(), m.next()),
    };
    Date::from_calendar_date(year, month, 1).unwrap_or(first)
}

fn previous_month(first: Date) -> Date {
    let (year, month) = match first.month() {
        Month::January => (first.year() - 1, Month::December),
        m => (first.year(), m.previous()),
    };
    Date::from_calendar_date(year, month, 1).unwrap_or(first)
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn partitions_are_named_by_month_and_parsed_back() {
        assert_eq!(partition_name(date!(2026 - 11 - 01)), "event_log_y2026m11");
        assert_eq!(
            parse_partition_name("event_log_y2026m11"),
            Some(date!(2026 - 11 - 01))
        );
        assert_eq!(parse_partition_name("event_log_default"), None);
    }

    #[test]
    fn months_roll_over_years() {
        assert_eq!(next_month(date!(2026 - 12 - 01)), date!(2027 - 01 - 01));
        assert_eq!(previous_month(date!(2026 - 01 - 01)), date!(2025 - 12 - 01));
        assert_eq!(first_of_month(date!(2026 - 11 - 23)), date!(2026 - 11 - 01));
    }
}
