//! PostgreSQL: a write pool on the primary and a read pool, chosen per query by the caller.

mod budget;
mod client;
mod deadline;
mod describer;
mod lsn;
mod migrate;
mod pool;
mod read;
mod replicas;
mod statement;

pub use budget::{Budget, FLEET_CHECK, Fleet, OverBudget};
pub use lsn::{InvalidLsn, Lsn};

pub use client::{Client, Connection, Pooling, Transaction};
pub use deadline::{DEADLINE_MARGIN, QueryError};
pub use migrate::{Migration, MigrationError, migrate};
pub use statement::{Prepared, Query, QueryRef};

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use describer::Describer;
use pool::{Pooled, SESSIONS, pool};
use replicas::Replicas;

use crate::{ErrorChain, InfraError, config::DbConfig, metrics::HistogramFamily};

/// The database handle every module shares: cheap to clone.
///
/// Code asks for `write()` or `read()` per query, so pointing `read_url` at replicas later
/// changes no caller.
///
/// One `Arc`: handlers clone their state on every request.
#[derive(Clone, Debug)]
pub struct Db {
    inner: Arc<Pools>,
}

#[derive(Debug)]
struct Pools {
    write: Pooled,
    read: Pooled,
    /// Sessions on the primary itself, when the write pool goes through a transaction-mode
    /// pooler; otherwise the write pool serves them.
    sessions: Option<Pooled>,
    replicas: Replicas,
    pooling: Pooling,
    /// The newest consistency token this instance has issued or been shown: committed, so
    /// visible to any read on the primary that starts later.
    heard: AtomicU64,
}

/// A configuration the pools cannot be built from.
#[derive(Debug, thiserror::Error)]
#[error("{setting} is not a valid PostgreSQL URL: {reason}")]
pub struct DbConfigError {
    setting: &'static str,
    reason: String,
}

impl Db {
    /// Builds the pools. Connections open lazily, on first use.
    pub fn connect(config: &DbConfig) -> Result<Self, DbConfigError> {
        let (direct_url, setting) = match &config.direct_url {
            Some(url) => (url.as_str(), "KEEL_DATABASE_DIRECT_URL"),
            None => (config.url.as_str(), "KEEL_DATABASE_URL"),
        };
        let name = budget::application_name(config);
        let mut primary: tokio_postgres::Config =
            direct_url
                .parse()
                .map_err(|e: tokio_postgres::Error| DbConfigError {
                    setting,
                    reason: e.to_string(),
                })?;
        primary.application_name(&name);
        // The statement describer's session, the one connection outside the pools.
        pool::watch_the_network(&mut primary, config);
        let pooled = config.pooling == Pooling::Transaction;
        // One describer for the pools through the pooler: statement types are the server's.
        let describer = pooled.then(|| Arc::new(Describer::new(primary)));
        let write = Pooled::new(
            pool(
                &config.url,
                "KEEL_DATABASE_URL",
                config.write_pool,
                config,
                (&name, pooled),
            )?,
            describer.clone(),
            config,
            Some("postgres-write"),
        );
        let read = match &config.read_url {
            Some(url) => Pooled::new(
                pool(
                    url,
                    "KEEL_DATABASE_READ_URL",
                    config.read_pool,
                    config,
                    (&name, false),
                )?,
                None,
                config,
                Some("postgres-read"),
            ),
            None => Pooled::new(
                pool(
                    &config.url,
                    "KEEL_DATABASE_URL",
                    config.read_pool,
                    config,
                    (&name, pooled),
                )?,
                describer,
                config,
                Some("postgres-read"),
            ),
        };
        let sessions = match pooled {
            true => Some(Pooled::new(
                pool(
                    direct_url,
                    "KEEL_DATABASE_DIRECT_URL",
                    SESSIONS,
                    config,
                    (&name, false),
                )?,
                None,
                config,
                Some("postgres-session"),
            )),
            false => None,
        };
        let replicas = crate::config::whole_urls(&config.replica_urls)
            .iter()
            .map(|url| {
                let pool = pool(
                    url,
                    "KEEL_DATABASE_REPLICA_URLS",
                    config.read_pool,
                    config,
                    (&name, false),
                )?;
                Ok((replica_name(url), Pooled::new(pool, None, config, None)))
            })
            .collect::<Result<Vec<_>, DbConfigError>>()?;
        Ok(Self {
            inner: Arc::new(Pools {
                write,
                read,
                sessions,
                replicas: Replicas::new(replicas, config.replica_max_lag),
                pooling: config.pooling,
                heard: AtomicU64::new(0),
            }),
        })
    }

    /// The primary's WAL position now: the consistency token of every write committed so far
    /// (see [`wal_position`]).
    pub async fn consistency_token(&self) -> Result<Lsn, InfraError> {
        let position = wal_position(&self.write().await?).await?;
        self.heard(Some(position));
        Ok(position)
    }

    /// Remembers `token` if it is the newest heard of, and returns the newest.
    fn heard(&self, token: Option<Lsn>) -> Lsn {
        let token = token.map_or(0, |token| token.0);
        let before = self.inner.heard.fetch_max(token, Ordering::AcqRel);
        Lsn(before.max(token))
    }

    /// The consistency token of what `client` just committed, for a cache invalidation to
    /// carry: asked of that same connection (a second one from the pool, taken while the
    /// caller holds this one, can deadlock a saturated pool), and only when reads may go to
    /// replicas; zero otherwise.
    pub async fn written_at(&self, client: &Connection) -> Lsn {
        if !self.has_replicas() {
            return Lsn::default();
        }
        wal_position(client).await.unwrap_or_else(|e| {
            tracing::warn!(error = %ErrorChain(&e), "no WAL position for a write; loads may not wait for it");
            Lsn::default()
        })
    }

    /// Whether any read replica is configured.
    pub fn has_replicas(&self) -> bool {
        !self.inner.replicas.is_empty()
    }

    /// Checks every replica's health and lag every `interval`, for as long as it runs.
    pub async fn watch_replicas(self, interval: Duration) {
        if self.inner.replicas.is_empty() {
            return;
        }
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            // The primary's position, asked of a session on it (the check's statement is
            // named, which a transaction-mode pooler cannot carry).
            let primary = self.inner.sessions.as_ref().unwrap_or(&self.inner.write);
            self.inner.replicas.check(primary).await;
        }
    }

    /// A connection to the primary, for writes and reads that must see them.
    pub async fn write(&self) -> Result<Connection, InfraError> {
        self.inner.write.acquire("write").await
    }

    /// A connection for reads that may be served by a replica.
    pub async fn read(&self) -> Result<Connection, InfraError> {
        self.inner.read.acquire("read").await
    }

    /// A session on the primary itself, for what a transaction-mode pooler cannot carry:
    /// advisory locks, DDL in migrations, `COPY`. Directly connected, a write connection.
    pub async fn session(&self) -> Result<Connection, InfraError> {
        match &self.inner.sessions {
            Some(sessions) => sessions.acquire("session").await,
            None => self.write().await,
        }
    }

    /// How statements reach the primary.
    pub fn pooling(&self) -> Pooling {
        self.inner.pooling
    }

    /// Checks that both pools reach their server, each within its deadline.
    pub async fn ping(&self) -> Result<(), InfraError> {
        for (pool, name) in [(&self.inner.write, "write"), (&self.inner.read, "read")] {
            pool.acquire(name).await?.batch_execute("SELECT 1").await?;
        }
        Ok(())
    }
}

/// The primary's WAL position after a commit on `client`: a consistency token a read can
/// carry to see that write (a replica that has replayed it, or the primary, serves it).
///
/// The insert position, not the commit record's own LSN: it is at or past every commit that
/// finished before it was read, so it is safe whatever `synchronous_commit` says.
pub async fn wal_position(client: &Connection) -> Result<Lsn, InfraError> {
    let statement = client
        .prepare_cached("SELECT pg_current_wal_insert_lsn()::text")
        .await?;
    let row = timed("wal_position", client.query_one(&statement, &[])).await?;
    row.get::<_, &str>(0)
        .parse()
        .map_err(InfraError::unexpected)
}

/// `host:port` of a replica URL (each of them, comma-separated, when it names several), for
/// logs and metric labels (never its password).
fn replica_name(url: &str) -> String {
    let Ok(config) = url.parse::<tokio_postgres::Config>() else {
        return "replica".into();
    };
    let ports = config.get_ports();
    let names: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let host = match host {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            };
            // One port for every host, or one each.
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect();
    if names.is_empty() {
        "replica".into()
    } else {
        names.join(",")
    }
}

/// Runs one statement (or a short group of them) under `statement`, recording its time in
/// `keel_db_query_seconds{statement}`: the database's share of a request, by name.
pub async fn timed<T>(statement: &'static str, query: impl Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    static QUERY_SECONDS: HistogramFamily =
        HistogramFamily::new("keel_db_query_seconds", "statement");
    let result = query.await;
    QUERY_SECONDS.record(statement, started.elapsed());
    result
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn a_replica_is_named_by_its_hosts_never_its_password() {
        assert_eq!(
            super::replica_name(
                "postgres://k:secret@a:5441,b:5442/db?target_session_attrs=read-only"
            ),
            "a:5441,b:5442"
        );
        assert_eq!(super::replica_name("postgres://k:secret@a/db"), "a:5432");
    }

    use super::*;

    fn config(url: &str) -> DbConfig {
        DbConfig {
            url: url.into(),
            pooling: Pooling::Direct,
            direct_url: None,
            read_url: None,
            replica_urls: Vec::new(),
            replica_max_lag: Duration::from_secs(5),
            write_pool: 2,
            read_pool: 2,
            acquire_timeout: Duration::from_secs(1),
            statement_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_bad_url_names_the_setting() {
        let err = Db::connect(&config("not a url")).unwrap_err();
        assert!(err.to_string().starts_with("KEEL_DATABASE_URL"), "{err}");
        let err = Db::connect(&config("postgres://keel@127.0.0.1:5432")).unwrap_err();
        assert!(err.to_string().contains("names no database"), "{err}");
        let mut bad_read = config("postgres://keel@127.0.0.1/keel");
        bad_read.read_url = Some("postgres://%zz".into());
        let err = Db::connect(&bad_read).unwrap_err();
        assert!(
            err.to_string().starts_with("KEEL_DATABASE_READ_URL"),
            "{err}"
        );
    }
}
