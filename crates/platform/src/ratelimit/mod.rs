//! Rate limiting with GCRA (the generic cell rate algorithm), evaluated atomically in Redis
//! so that every instance shares one budget per key.
//!
//! GCRA is a true sliding window: a quota of `limit` per `window` admits a burst of `limit`,
//! then one request per `window / limit`. There is no window boundary at which a second full
//! burst gets through, as there is with fixed windows. When Redis is unreachable the limiter
//! falls back to an in-process GCRA (governor) with the same quotas, per instance: the
//! service neither fails open nor closed, and says so in a log line and a counter.

mod config;
mod headers;
mod local;
mod redis_gcra;

pub use config::{Quota, RateLimitConfig};

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use crate::{breaker::Breaker, redis::Redis};

/// A named quota: `name` appears in the response headers.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: &'static str,
    pub quota: Quota,
}

/// What the limiter decided for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    /// Requests left before the limit bites.
    pub remaining: u32,
    /// Until the whole quota is available again.
    pub reset_after: Duration,
    /// Until a request would be allowed, when denied.
    pub retry_after: Duration,
}

/// The limiter: cheap to clone.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    redis: Redis,
    breaker: Breaker,
    local: local::LocalLimits,
    degraded: AtomicBool,
    stats: RateLimitStats,
}

/// Decision counts of this limiter; the process's are the metrics
/// `keel_ratelimit_decisions_total{policy, decision, backend}` and `keel_ratelimit_degraded`.
#[derive(Debug, Default)]
pub struct RateLimitStats {
    allowed: AtomicU64,
    limited: AtomicU64,
    local_decisions: AtomicU64,
}

impl RateLimitStats {
    pub fn allowed(&self) -> u64 {
        self.allowed.load(Relaxed)
    }
    pub fn limited(&self) -> u64 {
        self.limited.load(Relaxed)
    }
    /// Decisions taken in-process because Redis was unreachable.
    pub fn local_decisions(&self) -> u64 {
        self.local_decisions.load(Relaxed)
    }
}

impl RateLimiter {
    pub fn new(redis: Redis) -> Self {
        Self {
            inner: Arc::new(Inner {
                redis,
                breaker: Breaker::new("redis_rate_limiter", 3, Duration::from_secs(1)),
                local: local::LocalLimits::default(),
                degraded: AtomicBool::new(false),
                stats: RateLimitStats::default(),
            }),
        }
    }

    pub fn stats(&self) -> &RateLimitStats {
        &self.inner.stats
    }

    /// Counts one request of `key` (e.g. `user:42`) against `policy`.
    pub async fn check(&self, policy: &Policy, key: &str) -> Decision {
        let inner = &self.inner;
        let shared = if inner.breaker.allow() {
            match redis_gcra::check(&inner.redis, policy, key).await {
                Ok(decision) => {
                    inner.breaker.record_success();
                    if inner.degraded.swap(false, Relaxed) {
                        tracing::info!("rate limiting is shared through Redis again");
                        metrics::gauge!("keel_ratelimit_degraded").set(0.0);
                    }
                    Some(decision)
                }
                Err(e) => {
                    inner.breaker.record_failure();
                    tracing::debug!(error = %e, "rate limit check in redis failed");
                    None
                }
            }
        } else {
            None
        };
        let shared_backend = shared.is_some();
        let decision = shared.unwrap_or_else(|| {
            if !inner.degraded.swap(true, Relaxed) {
                tracing::warn!(
                    "redis unreachable: rate limits are enforced per instance until it returns"
                );
                metrics::gauge!("keel_ratelimit_degraded").set(1.0);
            }
            inner.stats.local_decisions.fetch_add(1, Relaxed);
            inner.local.check(policy, key)
        });
        let (counter, label) = if decision.allowed {
            (&inner.stats.allowed, "allowed")
        } else {
            (&inner.stats.limited, "limited")
        };
        counter.fetch_add(1, Relaxed);
        let backend = if shared_backend { "redis" } else { "local" };
        metrics::counter!("keel_ratelimit_decisions_total",
            "policy" => policy.name, "decision" => label, "backend" => backend)
        .increment(1);
        decision
    }
}

pub use headers::{apply_headers, too_many_requests};
