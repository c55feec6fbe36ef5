//! The connection budget: how many connections this process may open to the primary, and
//! what every process connected to it claims, against what the server allows. Instances and
//! workers share one `max_connections`: a process whose pools alone cannot fit refuses to
//! start, with the settings to change; a fleet whose pools together cannot fit is reported
//! (logged, `keel_db_connections_claimed`) while it runs, since refusing the instance that
//! tipped it would fail a rolling deploy's surge as well as a mistake.

use std::time::Duration;

use crate::{ErrorChain, InfraError, config::DbConfig};

use super::{Db, Pooling, SESSIONS};

/// This process's connections to the primary, and the server's limit for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Pooled connections this process may open to the primary: the write pool, and the
    /// read pool when reads go to the primary too.
    pub pooled: usize,
    /// The primary's limit and the claims of every Keel process on it, this one included.
    pub fleet: Fleet,
}

/// Every Keel process with a connection to the primary, as the primary sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fleet {
    /// What the server lets ordinary roles open: `max_connections` less the connections it
    /// reserves.
    pub available: usize,
    /// Processes (API instances, workers) holding at least one connection.
    pub processes: usize,
    /// The connections they may open together: the sum of each one's `pooled`.
    pub claimed: usize,
}

impl Fleet {
    /// Whether the pools together may ask for more connections than the server allows: at
    /// full load some would meet "too many clients".
    pub fn overcommitted(&self) -> bool {
        self.claimed > self.available
    }
}

/// Why the pools cannot fit.
#[derive(Debug, thiserror::Error)]
#[error(
    "the pools may open {pooled} connections to the primary (KEEL_DB_WRITE_POOL {write} \
     + KEEL_DB_READ_POOL {read} when reads go to the primary), but it allows {available} \
     (max_connections less reserved): lower the pools, or put PgBouncer in front"
)]
pub struct OverBudget {
    pub pooled: usize,
    pub write: usize,
    pub read: usize,
    pub available: usize,
}

/// The connections `config`'s pools may open to the primary. Through a transaction-mode
/// pooler only the sessions and the statement describer reach it: the pooler's own
/// `default_pool_size` is what its clients share there.
fn pooled(config: &DbConfig) -> usize {
    if config.pooling == Pooling::Transaction {
        return SESSIONS + 1;
    }
    config.write_pool
        + if config.read_url.is_none() {
            config.read_pool
        } else {
            0
        }
}

/// How often a running process looks at the fleet's claims again.
pub const FLEET_CHECK: Duration = Duration::from_secs(15);

/// The `application_name` every connection of a process carries, `keel/<id>/<claim>`: a
/// random id per process and the connections it may open to the primary. Any session can
/// read every other's in `pg_stat_activity`, so each process can add up the fleet's claims
/// without a registry or a setting that says how many instances run.
pub(super) fn application_name(config: &DbConfig) -> String {
    format!("keel/{:08x}/{}", fastrand::u32(..), pooled(config))
}

impl Db {
    /// Checks that `config`'s pools fit in what the primary allows, and logs and exports
    /// both (`keel_db_connections_max`, `keel_db_connections_allowed`), with what the whole
    /// fleet claims. `None` when the server does not say (a pooler in front of it answers
    /// for itself).
    pub async fn check_budget(&self, config: &DbConfig) -> Result<Option<Budget>, OverBudget> {
        let pooled = pooled(config);
        // Which way statements reach the primary, for whoever reads the logs or the metrics.
        let pooling: &'static str = config.pooling.into();
        metrics::gauge!("keel_db_pooling", "mode" => pooling).set(1.0);
        metrics::gauge!("keel_db_connections_max").set(pooled as f64);
        let fleet = match self.fleet().await {
            Ok(fleet) => fleet,
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), pooling, pooled, "the primary's max_connections is unknown; pools not checked against it");
                return Ok(None);
            }
        };
        tracing::info!(
            pooling,
            pooled,
            write = config.write_pool,
            read = if config.read_url.is_none() {
                config.read_pool
            } else {
                0
            },
            available = fleet.available,
            processes = fleet.processes,
            claimed = fleet.claimed,
            "connection budget: this process's pools, and every process's, against what the \
             primary allows"
        );
        if pooled > fleet.available {
            return Err(OverBudget {
                pooled,
                write: config.write_pool,
                read: config.read_pool,
                available: fleet.available,
            });
        }
        report(fleet, None);
        Ok(Some(Budget { pooled, fleet }))
    }

    /// Looks at the fleet's claims every [`FLEET_CHECK`], for as long as it runs: processes
    /// come and go, and the one whose arrival overcommits the primary is not the only one to
    /// say so.
    pub async fn watch_budget(self) {
        let mut tick = tokio::time::interval(FLEET_CHECK);
        tick.tick().await;
        let mut before = None;
        loop {
            tick.tick().await;
            if let Ok(fleet) = self.fleet().await {
                report(fleet, before);
                before = Some(fleet);
            }
        }
    }

    /// What the primary allows, and the processes whose connections name their claim.
    pub async fn fleet(&self) -> Result<Fleet, InfraError> {
        let client = self.session().await?;
        let row = client
            .query_one(
                // `max_connections` less what the server keeps for superusers and roles
                // granted `pg_use_reserved_connections` (PostgreSQL 16; absent before, 0).
                "SELECT current_setting('max_connections')::int8
                      - current_setting('superuser_reserved_connections')::int8
                      - coalesce(current_setting('reserved_connections', true)::int8, 0),
                        count(*), coalesce(sum(claim), 0)::int8
                   FROM (SELECT DISTINCT split_part(application_name, '/', 2),
                                split_part(application_name, '/', 3)::int8 AS claim
                           FROM pg_stat_activity
                          WHERE application_name ~ '^keel/[0-9a-f]{8}/[0-9]{1,9}$') AS fleet",
                &[],
            )
            .await?;
        let count = |i| usize::try_from(row.get::<_, i64>(i)).unwrap_or(0);
        Ok(Fleet {
            available: count(0),
            processes: count(1),
            claimed: count(2),
        })
    }
}

/// Exports `fleet` and warns when the fleet's claims first exceed what the server allows.
fn report(fleet: Fleet, before: Option<Fleet>) {
    metrics::gauge!("keel_db_connections_allowed").set(fleet.available as f64);
    metrics::gauge!("keel_db_connections_claimed").set(fleet.claimed as f64);
    metrics::gauge!("keel_db_fleet_processes").set(fleet.processes as f64);
    if fleet.overcommitted() && before.is_none_or(|before| !before.overcommitted()) {
        tracing::warn!(
            processes = fleet.processes,
            claimed = fleet.claimed,
            available = fleet.available,
            "the pools of every Keel process on the primary may open more connections than \
             it allows: under full load some meet \"too many clients\"; lower the pools \
             (KEEL_DB_WRITE_POOL, KEEL_DB_READ_POOL), raise max_connections, or put \
             PgBouncer in front"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_count_against_the_primary_only_when_they_go_there() {
        let mut config: DbConfig = crate::config::defaults().unwrap();
        config.write_pool = 10;
        config.read_pool = 6;
        assert_eq!(pooled(&config), 16);
        config.read_url = Some("postgres://replica/keel".into());
        assert_eq!(pooled(&config), 10);
        let message = OverBudget {
            pooled: 120,
            write: 60,
            read: 60,
            available: 97,
        }
        .to_string();
        assert!(
            message.contains("KEEL_DB_WRITE_POOL 60") && message.contains("allows 97"),
            "{message}"
        );
    }

    #[test]
    fn a_process_names_its_claim_in_its_connections() {
        let mut config: DbConfig = crate::config::defaults().unwrap();
        config.write_pool = 12;
        config.read_pool = 8;
        let name = application_name(&config);
        let parts: Vec<&str> = name.split('/').collect();
        assert_eq!(parts.len(), 3, "{name}");
        assert_eq!((parts[0], parts[2]), ("keel", "20"));
        assert_eq!(parts[1].len(), 8, "{name}");
        assert!(parts[1].chars().all(|c| c.is_ascii_hexdigit()), "{name}");
        // PostgreSQL keeps 63 bytes of it.
        assert!(name.len() <= 63);
        assert_ne!(application_name(&config), name, "each process its own id");
    }

    #[test]
    fn through_a_transaction_pooler_only_the_sessions_reach_the_primary() {
        let mut config: DbConfig = crate::config::defaults().unwrap();
        config.pooling = Pooling::Transaction;
        config.write_pool = 500;
        config.read_pool = 500;
        assert_eq!(pooled(&config), SESSIONS + 1);
    }
}
