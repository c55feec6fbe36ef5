//! Rate limiting with GCRA (the generic cell rate algorithm), evaluated atomically in Redis
//! so that every instance shares one budget per key.
//!
//! GCRA is a true sliding window: a quota of `limit` per `window` admits a burst of `limit`,
//! then one request per `window / limit`. There is no window boundary at which a second full
//! burst gets through, as there is with fixed windows. When Redis is unreachable the limiter
//! falls back to an in-process GCRA (governor) with the same quotas, per instance: the
//! service neither fails open nor closed, and says so in a log line and a counter.
//!
//! A policy may spend cells drawn from Redis in batches ([`lease`]): fewer round trips for
//! busy keys, for a bounded, documented inexactness across instances.

mod config;
mod headers;
pub mod lease;
mod local;
mod redis_gcra;

pub use config::{Quota, RateLimitConfig, parse_proxy};

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use axum::http::HeaderValue;
use metrics::Counter;

use crate::redis::Redis;

/// A named quota: `name` appears in the response headers and the metrics. Made once per
/// route class, with its `RateLimit-Policy` header rendered and its decision counters
/// registered up front, so a request pays for neither.
#[derive(Debug)]
pub struct Policy {
    name: &'static str,
    quota: Quota,
    /// The most cells one draw from Redis takes (1: every request asks Redis).
    batch: u32,
    header: HeaderValue,
    /// `keel_ratelimit_decisions_total{policy, decision, backend}`, by [`Policy::counter`].
    decisions: [Counter; 4],
    /// `keel_ratelimit_redis_draws_total{policy}`: round trips to Redis (with batches, fewer
    /// than the decisions it counted).
    draws: Counter,
    /// The same, for this policy alone (the metric is the process's).
    draws_made: AtomicU64,
}

impl Policy {
    pub fn new(name: &'static str, quota: Quota) -> Self {
        crate::metrics::handle();
        let counter = |decision: &'static str, backend: &'static str| {
            metrics::counter!("keel_ratelimit_decisions_total",
                "policy" => name, "decision" => decision, "backend" => backend)
        };
        Self {
            name,
            quota,
            batch: 1,
            header: headers::policy_header(name, quota),
            decisions: [
                counter("allowed", "redis"),
                counter("limited", "redis"),
                counter("allowed", "local"),
                counter("limited", "local"),
            ],
            draws: metrics::counter!("keel_ratelimit_redis_draws_total", "policy" => name),
            draws_made: AtomicU64::new(0),
        }
    }

    /// Lets the instance spend cells drawn from Redis in batches of up to a tenth of the
    /// quota and at most `max` ([`lease`]); a quota under 20 stays exact.
    pub fn batched(mut self, max: u32) -> Self {
        self.batch = (self.quota.limit / 10).clamp(1, max.max(1));
        self
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Round trips to Redis this policy's decisions have made.
    pub fn draws(&self) -> u64 {
        self.draws_made.load(Relaxed)
    }

    pub fn quota(&self) -> Quota {
        self.quota
    }

    fn counter(&self, allowed: bool, shared: bool) -> &Counter {
        &self.decisions[usize::from(!allowed) + 2 * usize::from(!shared)]
    }
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
    local: local::LocalLimits,
    leases: lease::Leases,
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
                local: local::LocalLimits::default(),
                leases: lease::Leases::default(),
                degraded: AtomicBool::new(false),
                stats: RateLimitStats::default(),
            }),
        }
    }

    pub fn stats(&self) -> &RateLimitStats {
        &self.inner.stats
    }

    /// Counts one request of `subject` (e.g. `user:42`) against `policy`.
    pub async fn check(&self, policy: &Policy, subject: impl fmt::Display) -> Decision {
        let inner = &self.inner;
        // One allocation for the key, prefix included; the fallback uses it as is.
        let key = inner
            .redis
            .key(format_args!("rate:{}:{subject}", policy.name));
        let shared = if inner.redis.breaker().allow() {
            let shared = if policy.batch > 1 {
                inner.leases.check(&inner.redis, policy, &key).await
            } else {
                redis_gcra::draw(&inner.redis, policy, &key, 1)
                    .await
                    .map(|draw| draw.decision)
            };
            match shared {
                Ok(decision) => {
                    inner.redis.breaker().record_success();
                    if inner.degraded.load(Relaxed) && inner.degraded.swap(false, Relaxed) {
                        tracing::info!("rate limiting is shared through Redis again");
                        metrics::gauge!("keel_ratelimit_degraded").set(0.0);
                    }
                    Some(decision)
                }
                Err(e) => {
                    inner.redis.breaker().record_failure();
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
            inner.local.check(policy, &key)
        });
        let counter = if decision.allowed {
            &inner.stats.allowed
        } else {
            &inner.stats.limited
        };
        counter.fetch_add(1, Relaxed);
        policy
            .counter(decision.allowed, shared_backend)
            .increment(1);
        decision
    }
}

pub use headers::{apply_headers, too_many_requests};

#[cfg(test)]
mod tests {
    use super::*;

    // A runtime, because the Redis handle spawns its (lazy) connection manager on one.
    #[tokio::test]
    async fn the_limiters_failures_open_the_breaker_every_user_of_redis_shares() {
        let redis = Redis::connect(&crate::config::RedisConfig {
            sentinels: Vec::new(),
            master_name: "keel".into(),
            // Nothing listens on port 1: every call is refused at once.
            url: "redis://127.0.0.1:1".into(),
            key_prefix: "unit:".into(),
            timeout: Duration::from_millis(100),
        })
        .unwrap();
        let limiter = RateLimiter::new(redis.clone());
        let policy = Policy::new(
            "unit_breaker",
            Quota {
                limit: 5,
                window: Duration::from_secs(60),
            },
        );
        for _ in 0..3 {
            assert!(limiter.check(&policy, "someone").await.allowed);
        }
        assert_eq!(
            limiter.stats().local_decisions(),
            3,
            "decided without Redis"
        );
        // The sessions and the cache ask this very breaker through their clones.
        let sessions_view = redis.clone();
        assert_eq!(
            sessions_view.breaker().state(),
            crate::breaker::BreakerState::Open
        );
    }

    #[test]
    fn each_decision_counts_under_its_own_labels() {
        let policy = Policy::new(
            "unit_labels",
            Quota {
                limit: 5,
                window: Duration::from_secs(60),
            },
        );
        policy.counter(true, true).increment(4);
        policy.counter(false, true).increment(3);
        policy.counter(true, false).increment(2);
        policy.counter(false, false).increment(1);
        let text = crate::metrics::handle().render();
        for (decision, backend, count) in [
            ("allowed", "redis", 4),
            ("limited", "redis", 3),
            ("allowed", "local", 2),
            ("limited", "local", 1),
        ] {
            let line = format!(
                "keel_ratelimit_decisions_total{{policy=\"unit_labels\",decision=\"{decision}\",backend=\"{backend}\"}} {count}"
            );
            assert!(text.contains(&line), "{line} not in\n{text}");
        }
        assert_eq!(
            policy.header,
            HeaderValue::from_static("\"unit_labels\";q=5;w=60")
        );
    }
}
