//! What a test starts from: its own database, a configuration around it, and a worker.

use std::time::Duration;

use keel::{Config, MaintenanceConfig, WorkerConfig};
use orders::{OrderMode, SagaConfig, payments::PaymentsConfig};
use platform::{
    bus::BusConfig,
    config::{DbConfig, HttpConfig, RedisConfig},
    db::Pooling,
};
use tokio::sync::oneshot;
use uuid::Uuid;

/// The PostgreSQL server tests create their databases on.
pub fn server_url() -> String {
    std::env::var("KEEL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://keel:keel@127.0.0.1:5432".into())
}

/// A fresh, empty database for one test.
pub async fn create_database() -> String {
    let name = format!("keel_test_{}", Uuid::new_v4().simple());
    let (client, connection) =
        tokio_postgres::connect(&format!("{}/postgres", server_url()), tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL must run for the tests (see README)");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    format!("{}/{name}", server_url())
}

/// The transaction-mode PgBouncer the suite runs through, if any, for a database on the
/// shared server.
fn pgbouncer(database_url: &str) -> Option<String> {
    std::env::var("KEEL_TEST_PGBOUNCER")
        .ok()
        .filter(|_| database_url.starts_with(&server_url()))
}

/// The database a URL names: its last path segment.
fn database_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

pub fn test_config(database_url: String) -> Config {
    Config {
        http: HttpConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            request_timeout: Duration::from_secs(10),
            shutdown_delay: Duration::ZERO,
            header_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            body_limit: 64 * 1024,
        },
        db: DbConfig {
            // With KEEL_TEST_PGBOUNCER (a transaction-mode PgBouncer's `postgres://…` base,
            // which proxies every database), the app goes through it as in production.
            // (Only for databases on the shared server: a test's own cluster has no pooler.)
            url: match pgbouncer(&database_url) {
                Some(pooler) => format!("{pooler}/{}", database_name(&database_url)),
                None => database_url.clone(),
            },
            pooling: match pgbouncer(&database_url) {
                Some(_) => Pooling::Transaction,
                None => Pooling::Direct,
            },
            direct_url: Some(database_url),
            read_url: None,
            replica_urls: Vec::new(),
            replica_max_lag: Duration::from_secs(5),
            write_pool: 8,
            read_pool: 8,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
        },
        redis: RedisConfig {
            sentinels: Vec::new(),
            master_name: "keel".into(),
            url: std::env::var("KEEL_TEST_REDIS")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
            key_prefix: format!("test:{}:", Uuid::new_v4().simple()),
            timeout: Duration::from_secs(1),
        },
        sessions: identity::SessionConfig {
            session_ttl: Duration::from_secs(3600),
            session_outage_grace: Duration::from_secs(60),
        },
        cache: platform::config::defaults().expect("the declared defaults"),
        // Generous, so that only the rate-limit tests meet the limits.
        rate_limits: platform::ratelimit::RateLimitConfig {
            rate_login: "10000/60s".parse().unwrap(),
            rate_write: "100000/60s".parse().unwrap(),
            rate_read: "100000/60s".parse().unwrap(),
            ..platform::config::defaults().expect("the declared defaults")
        },
        saga: SagaConfig {
            order_mode: OrderMode::Async,
            saga_lease: Duration::from_secs(3),
            payment_deadline: Duration::from_secs(60),
        },
        // Nothing listens there: tests that take payments start a fake provider.
        payments: payments_config("http://127.0.0.1:9"),
    }
}

/// A payment client that gives up quickly, so failure tests stay short.
pub fn payments_config(url: &str) -> PaymentsConfig {
    PaymentsConfig {
        payments_url: url.to_owned(),
        payments_timeout: Duration::from_millis(500),
        payments_retries: 3,
        payments_backoff: Duration::from_millis(20),
        payments_backoff_max: Duration::from_millis(200),
        payments_retry_budget: 50.0,
        payments_breaker_failures: 5,
        payments_breaker_cool_down: Duration::from_millis(500),
    }
}

/// A worker for `app_config`'s database and Redis, on `nats_url`, with streams of its own.
pub fn worker_config(app_config: &Config, nats_url: &str, prefix: &str) -> WorkerConfig {
    WorkerConfig {
        listen: "127.0.0.1:0".parse().expect("an address"),
        db: app_config.db.clone(),
        redis: app_config.redis.clone(),
        cache: app_config.cache.clone(),
        bus: BusConfig {
            nats_url: nats_url.to_owned(),
            nats_prefix: prefix.to_owned(),
            nats_replicas: 0,
            ack_wait: Duration::from_secs(3),
            max_deliver: 10,
            concurrency: 32,
            outbox_poll: Duration::from_millis(10),
        },
        saga: app_config.saga.clone(),
        payments: app_config.payments.clone(),
        maintenance: MaintenanceConfig {
            event_log_retention_months: 12,
            event_archive_retention_months: 0,
            event_log_months_ahead: 2,
            processed_retention: Duration::from_secs(3600),
        },
        // As deployed: only the tests of what the broker loses shorten it.
        sweep: platform::config::defaults().expect("the declared defaults"),
    }
}

/// A unique NATS subject prefix, so tests share the NATS server without sharing streams.
pub fn nats_prefix() -> String {
    format!("t{}", &Uuid::new_v4().simple().to_string()[..12])
}

/// The shared NATS server the tests use.
pub fn nats_url() -> String {
    std::env::var("KEEL_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// `keel worker`, running in this process until stopped.
pub struct TestWorker {
    /// Where it serves `/metrics` and `/livez`.
    pub address: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

pub async fn spawn_worker(config: WorkerConfig) -> TestWorker {
    let worker = keel::worker::Worker::build(&config)
        .await
        .expect("worker starts");
    let address = format!("http://{}", worker.local_addr());
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(worker.run_until(async {
        let _ = stopped.await;
    }));
    TestWorker {
        address,
        stop: Some(stop),
        task,
    }
}

impl TestWorker {
    /// Stops it as SIGTERM would.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for TestWorker {
    fn drop(&mut self) {
        self.task.abort();
    }
}
