//! The connection budget: how many connections this process may open to the primary, against
//! what the server allows. Several instances and workers share one `max_connections`; a
//! process whose pools alone cannot fit refuses to start, with the settings to change,
//! rather than meet "too many clients" under load.

use crate::{InfraError, config::DbConfig};

use super::{Db, Pooling, SESSIONS};

/// This process's connections to the primary, and the server's limit for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Pooled connections this process may open to the primary: the write pool, and the
    /// read pool when reads go to the primary too.
    pub pooled: usize,
    /// What the server lets ordinary roles open: `max_connections` less the connections it
    /// reserves.
    pub available: usize,
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

impl Db {
    /// Checks that `config`'s pools fit in what the primary allows, and logs and exports
    /// both (`keel_db_connections_max`, `keel_db_connections_allowed`). `None` when the
    /// server does not say (a pooler in front of it answers for itself).
    pub async fn check_budget(&self, config: &DbConfig) -> Result<Option<Budget>, OverBudget> {
        let pooled = pooled(config);
        // Which way statements reach the primary, for whoever reads the logs or the metrics.
        let pooling: &'static str = config.pooling.into();
        metrics::gauge!("keel_db_pooling", "mode" => pooling).set(1.0);
        metrics::gauge!("keel_db_connections_max").set(pooled as f64);
        let available = match self.allowed().await {
            Ok(available) => available,
            Err(e) => {
                tracing::warn!(error = %e, pooling, pooled, "the primary's max_connections is unknown; pools not checked against it");
                return Ok(None);
            }
        };
        metrics::gauge!("keel_db_connections_allowed").set(available as f64);
        tracing::info!(
            pooling,
            pooled,
            write = config.write_pool,
            read = if config.read_url.is_none() {
                config.read_pool
            } else {
                0
            },
            available,
            "connection budget: this process's pools against what the primary allows"
        );
        if pooled > available {
            return Err(OverBudget {
                pooled,
                write: config.write_pool,
                read: config.read_pool,
                available,
            });
        }
        Ok(Some(Budget { pooled, available }))
    }

    /// `max_connections` less what the server keeps for superusers and roles granted
    /// `pg_use_reserved_connections` (PostgreSQL 16; absent before, read as 0).
    async fn allowed(&self) -> Result<usize, InfraError> {
        let client = self.session().await?;
        let row = client
            .query_one(
                "SELECT current_setting('max_connections')::int
                      - current_setting('superuser_reserved_connections')::int
                      - coalesce(current_setting('reserved_connections', true)::int, 0)",
                &[],
            )
            .await?;
        Ok(usize::try_from(row.get::<_, i32>(0)).unwrap_or(0))
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
    fn through_a_transaction_pooler_only_the_sessions_reach_the_primary() {
        let mut config: DbConfig = crate::config::defaults().unwrap();
        config.pooling = Pooling::Transaction;
        config.write_pool = 500;
        config.read_pool = 500;
        assert_eq!(pooled(&config), SESSIONS + 1);
    }
}
