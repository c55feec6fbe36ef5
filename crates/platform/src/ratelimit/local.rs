//! The in-process fallback: the same GCRA quotas, per instance, with governor.

use std::{collections::HashMap, num::NonZeroU32, sync::Mutex, time::Duration};

use governor::{
    DefaultKeyedRateLimiter, Quota as GovernorQuota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
};

use super::{Decision, Policy};

type Limiter = DefaultKeyedRateLimiter<String, StateInformationMiddleware>;

/// One keyed limiter per policy, made on first use.
#[derive(Debug, Default)]
pub(super) struct LocalLimits {
    limiters: Mutex<HashMap<&'static str, std::sync::Arc<Limiter>>>,
}

impl LocalLimits {
    pub(super) fn check(&self, policy: &Policy, key: &str) -> Decision {
        let limiter = self.limiter(policy);
        if limiter.len() > 100_000 {
            limiter.retain_recent();
        }
        let limit = policy.quota.limit;
        let interval = policy.quota.window / limit.max(1);
        match limiter.check_key(&key.to_owned()) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    limit,
                    remaining,
                    reset_after: interval * (limit - remaining.min(limit)),
                    retry_after: Duration::ZERO,
                }
            }
            Err(not_until) => {
                let retry_after = not_until.wait_time_from(DefaultClock::default().now());
                Decision {
                    allowed: false,
                    limit,
                    remaining: 0,
                    reset_after: policy.quota.window,
                    retry_after,
                }
            }
        }
    }

    fn limiter(&self, policy: &Policy) -> std::sync::Arc<Limiter> {
        let mut limiters = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
        limiters
            .entry(policy.name)
            .or_insert_with(|| {
                let burst = NonZeroU32::new(policy.quota.limit).unwrap_or(NonZeroU32::MIN);
                let period = (policy.quota.window / burst.get()).max(Duration::from_nanos(1));
                let quota = GovernorQuota::with_period(period)
                    .unwrap_or_else(|| GovernorQuota::per_second(burst))
                    .allow_burst(burst);
                std::sync::Arc::new(RateLimiter::keyed(quota).with_middleware())
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::Quota;

    #[test]
    fn the_fallback_admits_a_burst_then_limits() {
        let local = LocalLimits::default();
        let policy = Policy::new(
            "test",
            Quota {
                limit: 5,
                window: Duration::from_secs(60),
            },
        );
        let decisions: Vec<Decision> = (0..6).map(|_| local.check(&policy, "k")).collect();
        assert!(decisions[..5].iter().all(|d| d.allowed));
        assert_eq!(decisions[4].remaining, 0);
        assert!(!decisions[5].allowed);
        assert!(decisions[5].retry_after > Duration::from_secs(10));
        assert!(
            local.check(&policy, "other key").allowed,
            "keys are separate"
        );
    }
}
