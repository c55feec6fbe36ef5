//! The pools: how one is built from a URL, and how a connection is taken from it (timed,
//! and wrapped with the way its statements run).

use std::{sync::Arc, time::Duration};

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use super::{Connection, DbConfigError, client::Describer};
use crate::{InfraError, backoff::Backoff, config::DbConfig, metrics::HistogramFamily};

/// Connections in the session pool (migrations, advisory locks, `COPY`) beside a
/// transaction-mode pooler.
pub(super) const SESSIONS: usize = 2;

/// A pool and how its connections run statements.
#[derive(Debug)]
pub(super) struct Pooled {
    pub(super) pool: Pool,
    describer: Option<Arc<Describer>>,
    statement_timeout_ms: u128,
    /// How long a connection that cannot be opened is tried again (the acquire timeout).
    patience: Duration,
}

impl Pooled {
    pub(super) fn new(pool: Pool, describer: Option<Arc<Describer>>, config: &DbConfig) -> Self {
        Self {
            pool,
            describer,
            statement_timeout_ms: config.statement_timeout.as_millis(),
            patience: config.acquire_timeout,
        }
    }

    pub(super) async fn acquire(&self, name: &'static str) -> Result<Connection, InfraError> {
        acquire(
            &self.pool,
            name,
            self.describer.clone(),
            self.statement_timeout_ms,
            self.patience,
        )
        .await
    }
}

/// Takes a connection, recording the wait in `keel_db_pool_acquire_seconds{pool}`: a wait
/// that grows under load is the sign of an exhausted pool.
///
/// A connection the server (or the pooler in front of it) refuses to open is tried again
/// for up to `patience`: a restarting PgBouncer or a primary coming back is then a pause in
/// the requests, not errors. Nothing was sent yet, so writes may wait too.
pub(super) async fn acquire(
    pool: &Pool,
    name: &'static str,
    describer: Option<Arc<Describer>>,
    statement_timeout_ms: u128,
    patience: Duration,
) -> Result<Connection, InfraError> {
    let started = std::time::Instant::now();
    static ACQUIRE_SECONDS: HistogramFamily =
        HistogramFamily::new("keel_db_pool_acquire_seconds", "pool");
    let mut backoff = Backoff::new(Duration::from_millis(25), Duration::from_millis(400));
    let got = loop {
        match pool.get().await {
            Err(PoolError::Backend(e)) if e.code().is_none() => {
                let delay = backoff.next_delay();
                if started.elapsed() + delay > patience {
                    break Err(PoolError::Backend(e));
                }
                metrics::counter!("keel_db_connect_retries_total", "pool" => name).increment(1);
                tokio::time::sleep(delay).await;
            }
            got => break got,
        }
    };
    ACQUIRE_SECONDS.record(name, started.elapsed());
    Ok(Connection {
        inner: got?,
        describer,
        statement_timeout_ms,
    })
}

/// A pool on `url` whose connections carry `name`; `pooled` when it goes through a
/// transaction-mode pooler, which takes no startup `options` (the statement timeout is then
/// set per transaction).
pub(super) fn pool(
    url: &str,
    setting: &'static str,
    size: usize,
    config: &DbConfig,
    (name, pooled): (&str, bool),
) -> Result<Pool, DbConfigError> {
    let mut pg: tokio_postgres::Config =
        url.parse()
            .map_err(|e: tokio_postgres::Error| DbConfigError {
                setting,
                reason: e.to_string(),
            })?;
    if pg.get_dbname().is_none() {
        return Err(DbConfigError {
            setting,
            reason: "it names no database".into(),
        });
    }
    pg.application_name(name);
    if !pooled {
        pg.options(format!(
            "-c statement_timeout={}",
            config.statement_timeout.as_millis()
        ));
    }
    pg.connect_timeout(config.acquire_timeout);
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(config.acquire_timeout))
        .create_timeout(Some(config.acquire_timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| DbConfigError {
            setting,
            reason: e.to_string(),
        })
}
