//! What PostgreSQL says about the window: statement times from `pg_stat_statements`, scans
//! per table from `pg_stat_user_tables`, and sampled sessions from `pg_stat_activity` (who is
//! busy, who waits for a lock) — all for the application's database only.

use std::collections::HashMap;

use tokio_postgres::{Client, NoTls};

use super::{
    DiagnoseError,
    evidence::{Statement, TableScans},
};

/// A connection to the application's database for reading its statistics.
#[derive(Debug)]
pub(super) struct Probe {
    client: Client,
}

/// The cumulative counters at one moment.
#[derive(Debug, Default)]
pub(super) struct Counters {
    /// `None`: pg_stat_statements is not loaded or not readable.
    statements: Option<HashMap<i64, Statement>>,
    tables: HashMap<String, TableScans>,
}

/// Sessions seen over the window's samples.
#[derive(Debug, Default)]
pub(super) struct Activity {
    samples: u32,
    active: u32,
    waiting_for_locks: u32,
    blocked: HashMap<String, u32>,
}

impl Probe {
    pub(super) async fn connect(url: &str) -> Result<Self, DiagnoseError> {
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .map_err(DiagnoseError::Postgres)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "diagnose's database connection ended");
            }
        });
        Ok(Self { client })
    }

    pub(super) async fn counters(&self) -> Result<Counters, DiagnoseError> {
        let statements = self
            .client
            .query(
                "SELECT queryid, query, calls, total_exec_time, rows
                   FROM pg_stat_statements
                  WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                    AND queryid IS NOT NULL",
                &[],
            )
            .await
            .ok()
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        let statement = Statement {
                            query: r.get(1),
                            calls: r.get::<_, i64>(2) as f64,
                            time_secs: r.get::<_, f64>(3) / 1000.0,
                            rows: r.get::<_, i64>(4) as f64,
                        };
                        (r.get::<_, i64>(0), statement)
                    })
                    .collect()
            });
        let tables = self
            .client
            .query(
                "SELECT schemaname || '.' || relname, seq_scan, seq_tup_read,
                        coalesce(idx_scan, 0), n_live_tup
                   FROM pg_stat_user_tables",
                &[],
            )
            .await
            .map_err(DiagnoseError::Postgres)?
            .iter()
            .map(|r| {
                let table: String = r.get(0);
                let scans = TableScans {
                    table: table.clone(),
                    seq_scans: r.get::<_, i64>(1) as f64,
                    seq_rows: r.get::<_, i64>(2) as f64,
                    index_scans: r.get::<_, i64>(3) as f64,
                    live_rows: r.get::<_, i64>(4) as f64,
                };
                (table, scans)
            })
            .collect();
        Ok(Counters { statements, tables })
    }

    /// One look at the database's busy sessions (the active-session-history idea).
    pub(super) async fn sample(&self, activity: &mut Activity) -> Result<(), DiagnoseError> {
        let rows = self
            .client
            .query(
                "SELECT coalesce(wait_event_type, ''), query FROM pg_stat_activity
                  WHERE datname = current_database() AND pid <> pg_backend_pid()
                    AND state = 'active' AND backend_type = 'client backend'",
                &[],
            )
            .await
            .map_err(DiagnoseError::Postgres)?;
        activity.samples += 1;
        for row in rows {
            activity.active += 1;
            if row.get::<_, &str>(0) == "Lock" {
                activity.waiting_for_locks += 1;
                *activity.blocked.entry(row.get(1)).or_default() += 1;
            }
        }
        Ok(())
    }
}

/// The window's database evidence from the counters at its start and end, and the samples
/// taken `interval_secs` apart in between.
pub(super) fn database(
    start: &Counters,
    end: &Counters,
    activity: &Activity,
    interval_secs: f64,
) -> super::evidence::Database {
    let active_secs = f64::from(activity.active) * interval_secs;
    let lock_wait_secs = f64::from(activity.waiting_for_locks) * interval_secs;
    let most_blocked = activity
        .blocked
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(q, _)| q.clone());
    let statements = match (&start.statements, &end.statements) {
        (Some(before), Some(after)) => Some(
            after
                .iter()
                .filter_map(|(id, s)| {
                    let b = before.get(id);
                    let calls = s.calls - b.map_or(0.0, |b| b.calls);
                    (calls > 0.0).then(|| Statement {
                        query: s.query.clone(),
                        calls,
                        time_secs: s.time_secs - b.map_or(0.0, |b| b.time_secs),
                        rows: s.rows - b.map_or(0.0, |b| b.rows),
                    })
                })
                .collect::<Vec<_>>(),
        ),
        _ => None,
    };
    let mut seq_scans: Vec<TableScans> = end
        .tables
        .values()
        .filter_map(|t| {
            let b = start.tables.get(&t.table);
            let scans = TableScans {
                table: t.table.clone(),
                seq_scans: t.seq_scans - b.map_or(0.0, |b| b.seq_scans),
                seq_rows: t.seq_rows - b.map_or(0.0, |b| b.seq_rows),
                index_scans: t.index_scans - b.map_or(0.0, |b| b.index_scans),
                live_rows: t.live_rows,
            };
            (scans.seq_scans > 0.0).then_some(scans)
        })
        .collect();
    seq_scans.sort_by(|a, b| b.seq_rows.total_cmp(&a.seq_rows));
    let statements_available = statements.is_some();
    let mut statements = statements.unwrap_or_default();
    let time_secs = if statements_available {
        statements.iter().map(|s| s.time_secs).sum()
    } else {
        active_secs
    };
    statements.sort_by(|a, b| b.time_secs.total_cmp(&a.time_secs));
    statements.truncate(10);
    super::evidence::Database {
        statements_available,
        time_secs,
        statements,
        seq_scans,
        lock_wait_secs,
        most_blocked,
        active_secs,
    }
}
