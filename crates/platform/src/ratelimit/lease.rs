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
    sync::{Arc, PoisonError},
    time::{Duration, Instant},
};

use super::{Decision, Policy, redis_gcra};
use crate::{InfraError, redis::Redis};

/// How long drawn cells stay spendable.
pub const LEASE: Duration = Duration::from_secs(1);

/// Keys with a lease held at once; the least used are forgotten first (their cells lapse).
const KEYS: usize = 100_000;

/// The leases of one instance, per key.
#[derive(Debug)]
pub(super) struct Leases {
    by_key: quick_cache::sync::Cache<String, Arc<KeyLease>>,
}

impl Default for Leases {
    fn default() -> Self {
        Self {
            by_key: quick_cache::sync::Cache::new(KEYS),
        }
    }
}

/// One key's lease: its state behind a plain lock, never held across an await (spending a
/// cell is a few instructions under it), and a gate that makes the key's draws one at a time.
#[derive(Debug)]
struct KeyLease {
    state: std::sync::Mutex<Lease>,
    drawing: tokio::sync::Mutex<()>,
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
                Ok::<_, std::convert::Infallible>(Arc::new(KeyLease::new()))
            })
            .unwrap_or_else(|never| match never {});
        if let Some(decision) = lease.spend(policy) {
            return Ok(decision);
        }
        let _drawing = lease.drawing.lock().await;
        // Whoever drew while this request waited may have left cells for it.
        if let Some(decision) = lease.spend(policy) {
            return Ok(decision);
        }
        let asked = Instant::now();
        let batch = lease.next_batch(policy);
        let draw = redis_gcra::draw(redis, policy, key, batch).await?;
        Ok(lease.drawn(policy, draw, asked))
    }
}

impl KeyLease {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            state: std::sync::Mutex::new(Lease {
                left: 0,
                until: now,
                remaining: 0,
                reset_at: now,
                // Doubled before the first draw: one cell.
                batch: 0,
                refused_until: now,
            }),
            drawing: tokio::sync::Mutex::new(()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Lease> {
        // Nothing under the lock can panic; a poisoned lock still holds a sound lease.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A cell in hand spent, or the refusal Redis gave still standing; `None` when the key
    /// must draw.
    fn spend(&self, policy: &Policy) -> Option<Decision> {
        let mut lease = self.state();
        let now = Instant::now();
        if lease.left > 0 && now < lease.until {
            lease.left -= 1;
            return Some(lease.decision(policy, now));
        }
        (now < lease.refused_until).then(|| Decision {
            allowed: false,
            limit: policy.quota.limit,
            remaining: 0,
            reset_after: lease.reset_at.saturating_duration_since(now),
            retry_after: lease.refused_until - now,
        })
    }

    /// The size of the next draw: double when the last batch was spent before it lapsed
    /// (the key is busy), half when it lapsed with cells left.
    fn next_batch(&self, policy: &Policy) -> u32 {
        let mut lease = self.state();
        lease.batch = if lease.left == 0 {
            lease.batch.saturating_mul(2)
        } else {
            lease.batch / 2
        }
        .clamp(1, policy.batch);
        lease.batch
    }

    /// Takes in what a draw asked for at `asked` brought: one cell is this request's, the
    /// rest are in hand until [`LEASE`] after the asking (never later than Redis granted
    /// them plus the lease).
    fn drawn(&self, policy: &Policy, draw: redis_gcra::Draw, asked: Instant) -> Decision {
        let mut lease = self.state();
        lease.reset_at = asked + draw.decision.reset_after;
        if draw.taken == 0 {
            lease.left = 0;
            lease.refused_until = asked + draw.decision.retry_after;
            return draw.decision;
        }
        lease.left = draw.taken - 1;
        lease.until = asked + LEASE;
        lease.remaining = draw.decision.remaining;
        lease.decision(policy, Instant::now())
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
