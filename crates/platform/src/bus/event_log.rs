//! Reading the permanent event log (`bus.event_log`, one partition per month, and the months
//! past its retention in `bus.event_archive`), for whoever rebuilds state from it. Writing
//! goes through [`super::outbox::append`] only.

use crate::db::Client;
use time::OffsetDateTime;

use crate::InfraError;

/// An event as the log keeps it.
#[derive(Debug, Clone)]
pub struct LoggedEvent {
    pub id: i64,
    /// Under the bus prefix: `orders.placed`.
    pub subject: String,
    pub payload: String,
    pub occurred_at: OffsetDateTime,
}

impl LoggedEvent {
    fn from_row(row: &tokio_postgres::Row) -> Self {
        Self {
            id: row.get(0),
            subject: row.get(1),
            payload: row.get(2),
            occurred_at: row.get(3),
        }
    }
}

/// Up to `limit` events after id `after`, in id order, from the archive and the log (a page
/// of a replay of every event).
pub async fn page(
    client: &impl Client,
    after: i64,
    limit: i64,
) -> Result<Vec<LoggedEvent>, InfraError> {
    let statement = client
        .prepare_cached(
            "SELECT id, subject, payload::text, occurred_at
               FROM (SELECT * FROM bus.event_archive UNION ALL SELECT * FROM bus.event_log) e
              WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .await?;
    let rows = client.query(&statement, &[&after, &limit]).await?;
    Ok(rows.iter().map(LoggedEvent::from_row).collect())
}

/// The ids of the events that occurred from `from` to `to` (a range of the log's primary
/// key, in no particular order).
pub async fn ids_between(
    client: &impl Client,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Vec<i64>, InfraError> {
    let statement = client
        .prepare_cached("SELECT id FROM bus.event_log WHERE occurred_at BETWEEN $1 AND $2")
        .await?;
    let rows = client.query(&statement, &[&from, &to]).await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// The events with these ids, in id order.
pub async fn by_ids(client: &impl Client, ids: &[i64]) -> Result<Vec<LoggedEvent>, InfraError> {
    let statement = client
        .prepare_cached(
            "SELECT id, subject, payload::text, occurred_at FROM bus.event_log
              WHERE id = ANY($1) ORDER BY id",
        )
        .await?;
    let rows = client.query(&statement, &[&ids]).await?;
    Ok(rows.iter().map(LoggedEvent::from_row).collect())
}
