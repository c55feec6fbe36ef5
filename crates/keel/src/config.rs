//! The configuration of `keel serve`: every setting a flag and a `KEEL_*` variable.

use accounts::SessionConfig;
use platform::{
    cache::CacheConfig,
    config::{DbConfig, HttpConfig, RedisConfig},
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
}
