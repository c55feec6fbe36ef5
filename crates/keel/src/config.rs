//! The configuration of `keel serve` and `keel worker`: every setting a flag and a `KEEL_*`
//! variable.

use std::{net::SocketAddr, time::Duration};

use identity::SessionConfig;
use orders::{SagaConfig, SweepConfig, payments::PaymentsConfig};
use platform::{
    bus::BusConfig,
    cache::CacheConfig,
    config::{DbConfig, HttpConfig, RedisConfig, parse_duration},
    ratelimit::RateLimitConfig,
};

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub http: HttpConfig,
    #[command(flatten)]
    pub db: DbConfig,
    #[command(flatten)]
    pub redis: RedisConfig,
    #[command(flatten)]
    pub sessions: SessionConfig,
    #[command(flatten)]
    pub cache: CacheConfig,
    #[command(flatten)]
    pub rate_limits: RateLimitConfig,
    #[command(flatten)]
    pub saga: SagaConfig,
    #[command(flatten)]
    pub payments: PaymentsConfig,
}

/// `keel worker`: the outbox relay, the saga consumer, and periodic maintenance.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerConfig {
    /// Where the worker serves `/metrics` and `/livez`.
    #[arg(
        long = "worker-listen",
        env = "KEEL_WORKER_LISTEN",
        default_value = "127.0.0.1:9091"
    )]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub db: DbConfig,
    #[command(flatten)]
    pub redis: RedisConfig,
    #[command(flatten)]
    pub cache: CacheConfig,
    #[command(flatten)]
    pub bus: BusConfig,
    #[command(flatten)]
    pub saga: SagaConfig,
    #[command(flatten)]
    pub payments: PaymentsConfig,
    #[command(flatten)]
    pub maintenance: MaintenanceConfig,
    #[command(flatten)]
    pub sweep: SweepConfig,
}

/// Retention of the event log and of consumers' records.
#[derive(Debug, Clone, clap::Args)]
pub struct MaintenanceConfig {
    /// Months of event log kept; older monthly partitions move to the archive
    /// (`bus.event_archive`), which rebuilds of the read models read too.
    #[arg(long, env = "KEEL_EVENT_LOG_RETENTION_MONTHS", default_value_t = 12)]
    pub event_log_retention_months: u32,

    /// Months the archive keeps; older ones are dropped for good, and rebuilt read models
    /// lose them. 0 keeps them for good.
    #[arg(long, env = "KEEL_EVENT_ARCHIVE_RETENTION_MONTHS", default_value_t = 0)]
    pub event_archive_retention_months: u32,

    /// Monthly partitions created ahead of time.
    #[arg(long, env = "KEEL_EVENT_LOG_MONTHS_AHEAD", default_value_t = 3)]
    pub event_log_months_ahead: u32,

    /// How long consumers remember processed messages, and the read models the events they
    /// applied (well past JetStream's redelivery: the events stream keeps a week).
    #[arg(long, env = "KEEL_PROCESSED_RETENTION", default_value = "168h", value_parser = parse_duration)]
    pub processed_retention: Duration,
}
