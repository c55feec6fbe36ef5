//! Configuration of the shared infrastructure, from flags or `KEEL_*` environment variables
//! (12-factor), with defaults that work against the local services.

use std::{net::SocketAddr, time::Duration};

/// PostgreSQL: where the primary and the read pool point, and how the pools behave.
#[derive(Debug, Clone, clap::Args)]
pub struct DbConfig {
    /// PostgreSQL URL of the primary; every write goes here.
    #[arg(
        id = "database_url",
        value_name = "URL",
        long = "database-url",
        env = "KEEL_DATABASE_URL",
        default_value = "postgres://keel:keel@127.0.0.1:5432/keel"
    )]
    pub url: String,

    /// How statements reach `KEEL_DATABASE_URL`: `direct` (PostgreSQL itself, or a pooler in
    /// session mode) or `transaction` (PgBouncer in transaction mode: unnamed statements,
    /// the statement timeout set per transaction, and sessions on
    /// `KEEL_DATABASE_DIRECT_URL`).
    #[arg(
        long = "database-pooling",
        env = "KEEL_DATABASE_POOLING",
        value_enum,
        default_value = "direct"
    )]
    pub pooling: crate::db::Pooling,

    /// PostgreSQL URL of the primary itself, for what needs a session of its own —
    /// migrations and advisory locks, bulk `COPY` — when `KEEL_DATABASE_URL` is a
    /// transaction-mode pooler. Unset, `KEEL_DATABASE_URL`.
    #[arg(
        id = "database_direct_url",
        long = "database-direct-url",
        env = "KEEL_DATABASE_DIRECT_URL"
    )]
    pub direct_url: Option<String>,

    /// PostgreSQL URL for reads. Unset, reads go to the primary.
    #[arg(
        id = "database_read_url",
        long = "database-read-url",
        env = "KEEL_DATABASE_READ_URL"
    )]
    pub read_url: Option<String>,

    /// PostgreSQL URLs of streaming replicas, comma-separated. Reads that may be served by a
    /// replica spread over the healthy ones; a read carrying a consistency token goes to one
    /// that has replayed it, or to the primary. A URL may name several hosts itself
    /// (`postgres://u@a:5441,b:5442/db?target_session_attrs=read-only`): a new URL starts
    /// only where a piece starts with `postgres://` or `postgresql://`.
    #[arg(
        long = "database-replica-urls",
        env = "KEEL_DATABASE_REPLICA_URLS",
        value_delimiter = ','
    )]
    pub replica_urls: Vec<String>,

    /// A replica further behind the primary than this is skipped until it catches up.
    #[arg(long, env = "KEEL_REPLICA_MAX_LAG", default_value = "5s", value_parser = parse_duration)]
    pub replica_max_lag: Duration,

    /// Connections in the write pool.
    #[arg(long, env = "KEEL_DB_WRITE_POOL", default_value_t = 16)]
    pub write_pool: usize,

    /// Connections in the read pool.
    #[arg(long, env = "KEEL_DB_READ_POOL", default_value_t = 16)]
    pub read_pool: usize,

    /// How long a request waits for a pooled connection before it is shed with a 503.
    #[arg(long, env = "KEEL_DB_ACQUIRE_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub acquire_timeout: Duration,

    /// PostgreSQL `statement_timeout`: on every pooled connection, or in every transaction
    /// with transaction pooling. The client stops waiting for an answer a little later
    /// (`DEADLINE_MARGIN`), and abandons the connection.
    #[arg(long, env = "KEEL_DB_STATEMENT_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub statement_timeout: Duration,
}

impl DbConfig {
    /// How long a statement's answer is waited for before its connection is abandoned: the
    /// server's own timeout, then a margin for its cancellation to arrive.
    pub fn statement_deadline(&self) -> Duration {
        self.statement_timeout + crate::db::DEADLINE_MARGIN
    }
}

/// Redis: sessions, the L2 cache and its invalidations, rate limits, feature switches.
#[derive(Debug, Clone, clap::Args)]
pub struct RedisConfig {
    /// Redis URL.
    #[arg(
        id = "redis_url",
        value_name = "URL",
        long = "redis-url",
        env = "KEEL_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub url: String,

    /// Redis Sentinels watching the master, comma-separated (`redis://host:26379,...`). Set,
    /// Keel asks them where the master is every half second and follows a failover without a
    /// restart; `KEEL_REDIS_URL` is then only where it starts.
    #[arg(
        long = "redis-sentinels",
        env = "KEEL_REDIS_SENTINELS",
        value_delimiter = ','
    )]
    pub sentinels: Vec<String>,

    /// The name the Sentinels know the master by.
    #[arg(
        long = "redis-master-name",
        env = "KEEL_REDIS_MASTER_NAME",
        default_value = "keel"
    )]
    pub master_name: String,

    /// Prefix of every key Keel writes, so deployments (and tests) can share one Redis.
    #[arg(long, env = "KEEL_REDIS_PREFIX", default_value = "keel:")]
    pub key_prefix: String,

    /// How long one Redis command may take before it counts as failed.
    #[arg(id = "redis_timeout", long = "redis-timeout", env = "KEEL_REDIS_TIMEOUT", default_value = "250ms", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// The HTTP server.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpConfig {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "KEEL_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// A request that takes longer is answered with a 503 problem.
    #[arg(long, env = "KEEL_REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// After the shutdown signal `/readyz` answers 503 at once; the instance keeps serving
    /// this long (so balancers and orchestrators stop sending it requests), then stops
    /// accepting connections and finishes the requests in flight.
    #[arg(long, env = "KEEL_SHUTDOWN_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,

    /// How long a client may take to send a request's headers — and so how long a kept-alive
    /// connection may sit idle before the next request — before its connection is closed.
    /// Keep it above a balancer's idle timeout for its pooled connections to the instance.
    #[arg(long, env = "KEEL_HEADER_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// Connections open at once, at most; more wait in the listen backlog until one closes.
    #[arg(long, env = "KEEL_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Largest request body accepted; larger ones get a 413 problem.
    #[arg(long, env = "KEEL_BODY_LIMIT", default_value_t = 64 * 1024)]
    pub body_limit: usize,
}

/// A configuration as its flags declare it by default, whatever the environment holds: the
/// defaults live in one place, the `#[arg]` attributes (tests start from these).
pub fn defaults<T: clap::Args + clap::FromArgMatches>() -> Result<T, clap::Error> {
    let command = T::augment_args(clap::Command::new("defaults")).mut_args(|arg| arg.env(None));
    T::from_arg_matches(&command.try_get_matches_from(["defaults"])?)
}

/// Parses a duration as people write it: `250ms`, `2s`, `5m`, `24h`, `1h 30m`.
pub use humantime::parse_duration;

/// The replica URLs as written: the pieces the comma split off a multi-host URL joined back
/// to the URL they belong to.
pub(crate) fn whole_urls(pieces: &[String]) -> Vec<String> {
    let mut urls: Vec<String> = Vec::new();
    for piece in pieces.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let starts_a_url = piece.starts_with("postgres://") || piece.starts_with("postgresql://");
        match urls.last_mut() {
            Some(url) if !starts_a_url => {
                url.push(',');
                url.push_str(piece);
            }
            _ => urls.push(piece.to_owned()),
        }
    }
    urls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_host_replica_url_stays_whole() {
        let pieces: Vec<String> = "postgres://k@a:1/db, postgres://k@b:1,c:2/db?target_session_attrs=read-only,postgresql://k@d/db"
            .split(',')
            .map(str::to_owned)
            .collect();
        assert_eq!(
            whole_urls(&pieces),
            [
                "postgres://k@a:1/db",
                "postgres://k@b:1,c:2/db?target_session_attrs=read-only",
                "postgresql://k@d/db",
            ]
        );
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(
            parse_duration("250ms").ok(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_duration("2s").ok(), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("5m").ok(), Some(Duration::from_secs(300)));
        assert_eq!(
            parse_duration("24h").ok(),
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(
            parse_duration("1h 30m").ok(),
            Some(Duration::from_secs(5_400))
        );
    }

    #[test]
    fn defaults_are_the_declared_ones() {
        let http: HttpConfig = defaults().unwrap();
        assert_eq!(http.request_timeout, Duration::from_secs(10));
        assert_eq!(http.body_limit, 64 * 1024);
        let redis: RedisConfig = defaults().unwrap();
        assert_eq!(redis.key_prefix, "keel:");
        assert_eq!(redis.timeout, Duration::from_millis(250));
    }

    #[test]
    fn durations_without_a_known_unit_are_rejected() {
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("3 fortnights").is_err());
    }
}
