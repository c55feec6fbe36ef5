//! The layered cache: L1 in-process ([`l1`], quick_cache), L2 Redis, then the source.
//!
//! - Values are stored pre-serialized (`Bytes`): a hit serves bytes without touching the
//!   database or encoding JSON again.
//! - Concurrent misses of one key are coalesced into one load (stampede protection), and
//!   "not found" is cached briefly (negative caching) so unknown ids cannot hammer the source.
//! - TTLs carry ±10 % jitter so keys written together do not expire together.
//! - [`Cache::invalidate`] drops the key from this instance's L1, fences it in Redis and
//!   publishes it; every instance's listener drops it from its own L1 ([`invalidation`]).
//! - Read replicas: an invalidation carries its write's consistency token, and every later
//!   load asks for a source at least that new, so a lagging replica cannot put the old value
//!   back. Each entry remembers how new its source was (`as_of`); a reader whose own token
//!   is newer than an entry loads past it, so nobody is shown an older state than they wrote.
//! - Redis down or slow costs at most one short timeout: a breaker then skips L2 and reads
//!   go to L1 and the source until Redis answers again.

mod config;
mod invalidation;
mod l1;
mod l2;
mod stats;

pub use config::{CacheConfig, CacheMode};
pub use stats::CacheStats;

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;

use crate::{InfraError, db::Lsn, redis::Redis};

/// A handle on the layered cache: cheap to clone, clones share everything.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("mode", &self.inner.config.mode)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: CacheConfig,
    l1: l1::L1,
    redis: Redis,
    stats: CacheStats,
    /// Bumped by every invalidation this instance learns of. A load that saw it change was
    /// racing a write, so its result is served but not cached.
    epoch: AtomicU64,
    /// The newest consistency token of any invalidation this instance learnt of: loads ask
    /// for a source that has it, so none refills the cache from before that write.
    fresh_after: AtomicU64,
}

/// What a load found at the source, and how new the source's state was.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The value's bytes, or `None` when the source has no such value.
    pub value: Option<Bytes>,
    /// Every write whose consistency token is at most this is reflected in `value`.
    pub as_of: Lsn,
}

/// What a layer holds for a key: the value's bytes, or that there is no such value.
#[derive(Clone, Debug)]
struct Entry {
    value: Option<Bytes>,
    as_of: Lsn,
    /// Loaded while an invalidation arrived: expires at once instead of being kept.
    racing_write: bool,
}

impl Entry {
    /// Whether this entry shows every write up to `token`.
    fn serves(&self, token: Option<Lsn>) -> bool {
        token.is_none_or(|token| self.as_of >= token)
    }
}

impl Cache {
    pub fn new(redis: Redis, config: CacheConfig) -> Self {
        let l1 = l1::L1::new(config.l1_capacity, config.l1_ttl, config.negative_ttl);
        Self {
            inner: Arc::new(Inner {
                config,
                l1,
                redis,
                stats: CacheStats::default(),
                epoch: AtomicU64::new(0),
                fresh_after: AtomicU64::new(0),
            }),
        }
    }

    pub fn stats(&self) -> &CacheStats {
        &self.inner.stats
    }

    pub fn mode(&self) -> CacheMode {
        self.inner.config.mode
    }

    /// The value of `key` from the nearest layer that has it, or from `load`; `None` when
    /// `load` found nothing (and that too is cached, briefly).
    ///
    /// `token` is the reader's consistency token: an entry older than it is passed over.
    /// `load` is given the token its source must have replayed.
    pub async fn get_or_load<F, Fut>(
        &self,
        key: &str,
        token: Option<Lsn>,
        load: F,
    ) -> Result<Option<Bytes>, InfraError>
    where
        F: Fn(Option<Lsn>) -> Fut,
        Fut: Future<Output = Result<Loaded, InfraError>>,
    {
        let inner = &self.inner;
        if inner.config.mode == CacheMode::Layered
            && let Some(entry) = inner.l1.get(key, token)
        {
            inner.stats.count_l1_hit();
            return Ok(entry.value);
        }
        // Everything past an L1 hit waits on Redis or the source anyway: boxed, so the hit's
        // future (and every future awaiting it, up to the handler's) stays small to move.
        Box::pin(self.get_past_l1(key, token, load)).await
    }

    /// [`Cache::get_or_load`] when L1 has nothing (or nothing new enough) to serve.
    async fn get_past_l1<Fut>(
        &self,
        key: &str,
        token: Option<Lsn>,
        load: impl Fn(Option<Lsn>) -> Fut,
    ) -> Result<Option<Bytes>, InfraError>
    where
        Fut: Future<Output = Result<Loaded, InfraError>>,
    {
        let inner = &self.inner;
        match inner.config.mode {
            CacheMode::Off => {
                inner.stats.count_load();
                Ok(load(token).await?.value)
            }
            CacheMode::Redis => Ok(self.load_through_l2(key, token, &load).await?.value),
            CacheMode::Layered => {
                let entry = inner
                    .l1
                    .get_or_load(key, token, self.load_through_l2(key, token, &load))
                    .await?;
                Ok(entry.value)
            }
        }
    }

    /// L2, then the source; fills L2 unless a write raced the load.
    async fn load_through_l2<F, Fut>(
        &self,
        key: &str,
        token: Option<Lsn>,
        load: &F,
    ) -> Result<Entry, InfraError>
    where
        F: Fn(Option<Lsn>) -> Fut,
        Fut: Future<Output = Result<Loaded, InfraError>>,
    {
        let inner = &self.inner;
        let epoch = inner.epoch.load(Ordering::Acquire);
        if let Some(entry) = self.l2_get(key).await
            && entry.serves(token)
        {
            inner.stats.count_l2_hit();
            return Ok(entry);
        }
        inner.stats.count_load();
        let fresh_after = Lsn(inner.fresh_after.load(Ordering::Acquire));
        let at_least = token.map_or(fresh_after, |token| token.max(fresh_after));
        let loaded = load((at_least > Lsn(0)).then_some(at_least)).await?;
        let entry = Entry {
            value: loaded.value,
            as_of: loaded.as_of,
            racing_write: inner.epoch.load(Ordering::Acquire) != epoch,
        };
        if !entry.racing_write {
            self.l2_set(key, &entry).await;
        }
        Ok(entry)
    }

    /// Drops `keys` everywhere: this L1 now, L2 and every other instance's L1 through Redis.
    /// A write has already committed when this runs, so a failure is logged, not returned:
    /// the other instances' L1 then expires within `l1_ttl`.
    ///
    /// `written_at` is the write's consistency token (zero without read replicas): loads
    /// after it, here and on every instance that hears of it, read a source that has it.
    pub async fn invalidate(&self, keys: &[String], written_at: Lsn) {
        let inner = &self.inner;
        self.written_at(written_at);
        inner.epoch.fetch_add(1, Ordering::AcqRel);
        for key in keys {
            inner.l1.remove(key);
        }
        inner.stats.count_invalidations(keys.len());
        if inner.config.mode != CacheMode::Off {
            self.l2_fence_and_publish(keys, written_at).await;
        }
    }

    /// Loads from now on need a source that has replayed `written_at`.
    fn written_at(&self, written_at: Lsn) {
        self.inner
            .fresh_after
            .fetch_max(written_at.0, Ordering::AcqRel);
    }

    /// Forgets everything this instance holds in L1 (after missed invalidations).
    fn clear_l1(&self) {
        self.inner.epoch.fetch_add(1, Ordering::AcqRel);
        self.inner.l1.clear();
    }

    fn invalidate_l1(&self, key: &str) {
        self.inner.epoch.fetch_add(1, Ordering::AcqRel);
        self.inner.l1.remove(key);
    }
}

/// `d` ± 10 %, varying by key and moment, so that entries written together spread out.
fn jitter(d: Duration, key: &str) -> Duration {
    use std::hash::{BuildHasher, RandomState};
    let noise = RandomState::new().hash_one((key, Instant::now())) % 2001; // 0..=2000
    d.mul_f64(0.9 + noise as f64 / 10_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent() {
        let base = Duration::from_secs(30);
        let spread: Vec<Duration> = (0..200).map(|i| jitter(base, &i.to_string())).collect();
        assert!(
            spread
                .iter()
                .all(|d| *d >= base.mul_f64(0.9) && *d <= base.mul_f64(1.1))
        );
        assert!(spread.iter().any(|d| *d != spread[0]), "jitter varies");
    }
}
