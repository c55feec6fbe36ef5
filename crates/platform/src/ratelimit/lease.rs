//! Allowances drawn from Redis in batches: an instance takes several of a key's cells in one
//! round trip and spends them locally, so most requests cost no Redis call.
//!
//! Every cell an instance spends was taken from the shared GCRA state in Redis, so the
//! instances together never admit more than Redis granted, however many there are. What
//! batching changes is *when* a cell is spent: up to [`LEASE`] after it was drawn. Over any
//! window, a key is admitted at most its quota plus the cells Redis frees in one lease time
//! (`limit × LEASE / window`: 20 for 1200/60s). The price runs the other way: cells one
//! instance holds are not available to another, so a key spread over N instances may be
//! refused while up to (N − 1) × (batch − 1) of its cells sit in other instances' leases
//! (and they lapse unused after [`LEASE`]). Batches start at one cell and double while a
//! key spends a whole lease before it lapses, halve when it does not, up to the policy's
//! batch (a tenth of the quota, at most `KEEL_RATE_BATCH`): a key making a few requests
//! costs a round trip each, exactly as without batching, and a busy key one per batch. A
//! key Redis refused is refused here until Redis said a cell frees up, without asking again.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::Mutex;

use super::{Decision, Policy, redis_gcra};
use crate::{InfraError, redis::Redis};

/// How long drawn cells stay spendable.
pub const LEASE: Duration = Duration::from_secs(1);

/// Keys with a lease held at once; the least used are forgotten first (their cells lapse).
const KEYS: usize = 100_000;

/// The leases of one instance, per key.
#[derive(Debug)]
pub(super) struct Leases {
    by_key: quick_cache::sync::Cache<String, Arc<Mutex<Lease>>>,
}

impl Default for Leases {
    fn default() -> Self {
        Self {
            by_key: quick_cache::sync::Cache::new(KEYS),
        }
    }
}

/// A key's cells in hand.
#[derive(Debug)]
struct Lease {
    /// Cells drawn and not yet spent.
    left: u32,
    /// When they lapse.
    until: Instant,
    /// Cells Redis had left for the key after the draw.
    remaining: u32,
    /// When the key's whole quota is free again, as of the draw.
    reset_at: Instant,
    /// How many cells the next draw asks for.
    batch: u32,
    /// Refused by Redis: no cell is free before then, so requests until then are refused
    /// here without asking (a client over its quota costs one round trip per freed cell,
    /// not one per request).
    refused_until: Instant,
}

impl Leases {
    /// Spends one of `key`'s cells, drawing a batch from Redis when none is in hand. Draws
    /// for one key are made one at a time: requests that find the lease empty while a draw
    /// is under way wait for it instead of each drawing a batch.
    pub(super) async fn check(
        &self,
        redis: &Redis,
        policy: &Policy,
        key: &str,
    ) -> Result<Decision, InfraError> {
        let lease = self
            .by_key
            .get_or_insert_with(key, || {
                Ok::<_, std::convert::Infallible>(Arc::new(Mutex::new(Lease {
                    left: 0,
                    until: Instant::now(),
                    remaining: 0,
                    reset_at: Instant::now(),
                    // Doubled before the first draw: one cell.
                    batch: 0,
                    refused_until: Instant::now(),
                })))
            })
            .unwrap_or_else(|never| match never {});
        let mut lease = lease.lock().await;
        let now = Instant::now();
        if lease.left > 0 && now < lease.until {
            lease.left -= 1;
            return Ok(lease.decision(policy, now));
        }
        if now < lease.refused_until {
            return Ok(Decision {
                allowed: false,
                limit: policy.quota.limit,
                remaining: 0,
                reset_after: lease.reset_at.saturating_duration_since(now),
                retry_after: lease.refused_until - now,
            });
        }
        // Spent before it lapsed: the key is busy, draw more; lapsed with cells left: less.
        lease.batch = if lease.left == 0 {
            lease.batch.saturating_mul(2)
        } else {
            lease.batch / 2
        }
        .clamp(1, policy.batch);
        let draw = redis_gcra::draw(redis, policy, key, lease.batch).await?;
        lease.reset_at = now + draw.decision.reset_after;
        if draw.taken == 0 {
            lease.left = 0;
            lease.refused_until = now + draw.decision.retry_after;
            return Ok(draw.decision);
        }
        lease.left = draw.taken - 1;
        lease.until = now + LEASE;
        lease.remaining = draw.decision.remaining;
        Ok(lease.decision(policy, now))
    }
}

impl Lease {
    /// An admitted request's decision: what is left counts the cells in hand.
    fn decision(&self, policy: &Policy, now: Instant) -> Decision {
        Decision {
            allowed: true,
            limit: policy.quota.limit,
            remaining: self.remaining.saturating_add(self.left),
            reset_after: self.reset_at.saturating_duration_since(now),
            retry_after: Duration::ZERO,
        }
    }
}
