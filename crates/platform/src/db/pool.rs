//! The pools: how one is built from a URL, and how a connection is taken from it (timed,
//! bounded, and wrapped with the way its statements run).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use deadpool::managed::{self, Metrics, PoolError, RecycleError, RecycleResult, TimeoutType};
use deadpool_postgres::{ClientWrapper, ManagerConfig, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use super::{Connection, DbConfigError, deadline::Watch, describer::Describer};
use crate::{InfraError, backoff::Backoff, config::DbConfig, metrics::HistogramFamily};

/// Connections in the session pool (migrations, advisory locks, `COPY`) beside a
/// transaction-mode pooler.
pub(super) const SESSIONS: usize = 2;

/// A pool of [`Conn`]s.
pub(super) type Pool = managed::Pool<Manager>;

/// A pooled connection, and whether a statement on it went unanswered.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) client: ClientWrapper,
    /// Set when a statement outlived its deadline: its answer may still arrive, or never,
    /// so nothing else may be sent on this connection.
    pub(crate) abandoned: AtomicBool,
}

/// deadpool-postgres's manager, and one rule more: an abandoned connection is dropped
/// rather than handed out again.
#[derive(Debug)]
pub(super) struct Manager(deadpool_postgres::Manager);

impl managed::Manager for Manager {
    type Type = Conn;
    type Error = tokio_postgres::Error;

    async fn create(&self) -> Result<Conn, Self::Error> {
        Ok(Conn {
            client: managed::Manager::create(&self.0).await?,
            abandoned: AtomicBool::new(false),
        })
    }

    async fn recycle(&self, conn: &mut Conn, metrics: &Metrics) -> RecycleResult<Self::Error> {
        if conn.abandoned.load(Ordering::Acquire) {
            return Err(RecycleError::message("a statement on it went unanswered"));
        }
        managed::Manager::recycle(&self.0, &mut conn.client, metrics).await
    }

    fn detach(&self, conn: &mut Conn) {
        managed::Manager::detach(&self.0, &mut conn.client);
    }
}

/// A pool, how its connections run statements, and its watch on the server.
#[derive(Debug)]
pub(super) struct Pooled {
    pub(super) pool: Pool,
    describer: Option<Arc<Describer>>,
    statement_timeout_ms: u128,
    /// How long a request may wait for a connection, opening one included.
    patience: Duration,
    watch: Arc<Watch>,
}

impl Pooled {
    /// `breaker` names the pool's breaker (a pool on the primary); replicas have none.
    pub(super) fn new(
        pool: Pool,
        describer: Option<Arc<Describer>>,
        config: &DbConfig,
        breaker: Option<&'static str>,
    ) -> Self {
        Self {
            pool,
            describer,
            statement_timeout_ms: config.statement_timeout.as_millis(),
            patience: config.acquire_timeout,
            watch: Arc::new(Watch::new(
                config.statement_deadline(),
                breaker.map(Watch::breaker),
            )),
        }
    }

    /// Takes a connection, waiting at most the acquire timeout.
    pub(super) async fn acquire(&self, name: &'static str) -> Result<Connection, InfraError> {
        self.acquire_within(name, self.patience).await
    }

    /// Takes a connection, recording the wait in `keel_db_pool_acquire_seconds{pool}`: a
    /// wait that grows under load is the sign of an exhausted pool. Refused at once while
    /// the pool's breaker is open.
    ///
    /// A connection the server (or the pooler in front of it) refuses to open is tried
    /// again within `retry_for`: a restarting PgBouncer or a primary coming back is then a
    /// pause in the requests, not errors. Nothing was sent yet, so writes may wait too. The
    /// whole wait, retries included, is at most the acquire timeout.
    pub(super) async fn acquire_within(
        &self,
        name: &'static str,
        retry_for: Duration,
    ) -> Result<Connection, InfraError> {
        if !self.watch.allow() {
            metrics::counter!("keel_db_refused_total", "pool" => name).increment(1);
            return Err(InfraError::unavailable(
                "postgres",
                "the breaker is open: PostgreSQL did not answer recently",
            ));
        }
        let started = std::time::Instant::now();
        static ACQUIRE_SECONDS: HistogramFamily =
            HistogramFamily::new("keel_db_pool_acquire_seconds", "pool");
        let mut backoff = Backoff::new(Duration::from_millis(25), Duration::from_millis(400));
        let taking = async {
            loop {
                match self.pool.get().await {
                    // Refused: a fast answer, tried again below (a pooler restarting), and
                    // no evidence of silence for the breaker.
                    Err(PoolError::Backend(e)) if e.code().is_none() => {
                        let delay = backoff.next_delay();
                        if started.elapsed() + delay > retry_for {
                            break Err(PoolError::Backend(e));
                        }
                        metrics::counter!("keel_db_connect_retries_total", "pool" => name)
                            .increment(1);
                        tokio::time::sleep(delay).await;
                    }
                    // No answer to a connection attempt: what the breaker is for.
                    Err(PoolError::Timeout(TimeoutType::Create)) => {
                        self.watch.unreachable();
                        break Err(PoolError::Timeout(TimeoutType::Create));
                    }
                    got => break got,
                }
            }
        };
        // The pool's own timeouts bound the wait for a slot and the opening of a connection
        // one by one; together they could take both.
        let got = tokio::time::timeout(self.patience, taking)
            .await
            .unwrap_or(Err(PoolError::Timeout(TimeoutType::Wait)));
        ACQUIRE_SECONDS.record(name, started.elapsed());
        Ok(Connection::new(
            got?,
            self.describer.clone(),
            self.statement_timeout_ms,
            self.watch.clone(),
        ))
    }
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
    watch_the_network(&mut pg, config);
    let manager = Manager(deadpool_postgres::Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    ));
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

/// A connection's timeouts: opening it within the acquire timeout, and a server that
/// vanished from the network found by the kernel in seconds — data it does not acknowledge
/// within the statement deadline, or an idle connection it stops answering probes on,
/// closes the socket, and a new one is opened.
///
/// A URL naming several hosts (a primary that fails over, found with
/// `target_session_attrs=read-write`) is tried host after host, each with its share of the
/// acquire timeout: a silent first host must leave the next one time to answer.
pub(super) fn watch_the_network(pg: &mut tokio_postgres::Config, config: &DbConfig) {
    let hosts = u32::try_from(pg.get_hosts().len().max(1)).unwrap_or(u32::MAX);
    pg.connect_timeout(config.acquire_timeout / hosts);
    pg.tcp_user_timeout(config.statement_deadline());
    pg.keepalives(true)
        .keepalives_idle(Duration::from_secs(5))
        .keepalives_interval(Duration::from_secs(1))
        .keepalives_retries(3);
}
