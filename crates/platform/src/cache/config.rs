//! The cache's settings.

use std::time::Duration;

use crate::config::parse_duration;

/// Which layers serve reads; `redis` and `off` exist to measure what each layer buys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CacheMode {
    /// L1 in-process, then L2 Redis, then the source.
    Layered,
    /// L2 Redis, then the source (no in-process layer).
    Redis,
    /// Always the source.
    Off,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CacheConfig {
    /// Which cache layers serve reads.
    #[arg(
        long = "cache",
        env = "KEEL_CACHE",
        value_enum,
        default_value = "layered"
    )]
    pub mode: CacheMode,

    /// Time to live in the in-process layer (±10 % jitter).
    #[arg(long, env = "KEEL_CACHE_L1_TTL", default_value = "30s", value_parser = parse_duration)]
    pub l1_ttl: Duration,

    /// Time to live in Redis (±10 % jitter).
    #[arg(long, env = "KEEL_CACHE_L2_TTL", default_value = "300s", value_parser = parse_duration)]
    pub l2_ttl: Duration,

    /// How long "not found" is remembered.
    #[arg(long, env = "KEEL_CACHE_NEGATIVE_TTL", default_value = "5s", value_parser = parse_duration)]
    pub negative_ttl: Duration,

    /// Entries the in-process layer holds at most.
    #[arg(long, env = "KEEL_CACHE_L1_CAPACITY", default_value_t = 100_000)]
    pub l1_capacity: u64,
}
