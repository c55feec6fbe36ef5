//! The in-process layer: a sharded map (quick_cache, S3-FIFO eviction) whose lookups take a
//! shard's read lock and allocate nothing — an L1 hit is the whole of a cached read — with
//! each entry's expiry checked as it is read, and one load per key however many readers
//! miss it at once.
//!
//! moka held this layer first. Its reads cost about 1 µs each (every read is logged for its
//! eviction policy and replayed in batches), against about 80 ns here; on the L1-hit path
//! that was a tenth of the request's CPU (docs/benchmarks.md).

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use quick_cache::{
    UnitWeighter,
    sync::{Cache as Map, DefaultLifecycle, EntryAction, EntryResult},
};

use super::{Entry, jitter};
use crate::{InfraError, db::Lsn};

/// The keys are the cache's own (`product:42`), so a fast seeded hash is enough.
type Hasher = foldhash::fast::RandomState;

pub(super) struct L1 {
    map: Map<Key, Slot, UnitWeighter, Hasher>,
    ttl: Duration,
    negative_ttl: Duration,
}

/// A key as L1 holds it: inline when it fits (every key Keel makes does: `product:{id}` is
/// at most 28 bytes), on the heap otherwise. A read compares the key it looks up with the
/// entry's; inline, that compare reads the entry's own memory instead of following a
/// pointer to one of thousands of small strings, cold in the CPU's cache.
#[derive(Clone)]
enum Key {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

const INLINE: usize = 30;

impl Key {
    fn new(key: &str) -> Self {
        match u8::try_from(key.len()) {
            Ok(len) if key.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..key.len()].copy_from_slice(key.as_bytes());
                Self::Inline { len, bytes }
            }
            _ => Self::Heap(key.into()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Heap(key) => key.as_bytes(),
        }
    }
}

// Compared and hashed as the bytes it holds, so a lookup by a key's bytes finds it (bytes
// rather than `str`: making a `str` of the inline bytes would check them for UTF-8 on every
// compare).
impl std::borrow::Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

/// What L1 holds for a key: how a load ended, and until when that may be served.
#[derive(Clone)]
struct Slot {
    outcome: Result<Entry, Arc<InfraError>>,
    loaded_at: Instant,
    expires_at: Instant,
}

impl L1 {
    pub(super) fn new(capacity: u64, ttl: Duration, negative_ttl: Duration) -> Self {
        let items = usize::try_from(capacity).unwrap_or(usize::MAX);
        Self {
            map: Map::with(
                items,
                capacity,
                UnitWeighter,
                Hasher::default(),
                DefaultLifecycle::default(),
            ),
            ttl,
            negative_ttl,
        }
    }

    /// The entry for `key` if one is live and shows every write up to `token`.
    pub(super) fn get(&self, key: &str, token: Option<Lsn>) -> Option<Entry> {
        let slot = self.map.get(key.as_bytes())?;
        match slot.outcome {
            Ok(entry) if slot.expires_at > Instant::now() && entry.serves(token) => Some(entry),
            _ => None,
        }
    }

    /// The entry for `key`: a live one, or what `load` returns. Readers that come while a
    /// load of the key runs wait for it and share its outcome, error included, so a failing
    /// source sees one load per key, not one per reader. An outcome that does not show the
    /// reader's `token` (another reader's load began before that write) is loaded past, and
    /// the newer entry replaces it for everyone.
    pub(super) async fn get_or_load(
        &self,
        key: &str,
        token: Option<Lsn>,
        load: impl Future<Output = Result<Entry, InfraError>>,
    ) -> Result<Entry, InfraError> {
        let arrived = Instant::now();
        let usable = |slot: &mut Slot| match &slot.outcome {
            // Live, or finished while this reader waited for it.
            Ok(entry) if slot.expires_at > arrived || slot.loaded_at >= arrived => {
                if entry.serves(token) {
                    EntryAction::Retain(Ok(entry.clone()))
                } else {
                    EntryAction::ReplaceWithGuard
                }
            }
            Err(error) if slot.loaded_at >= arrived => EntryAction::Retain(Err(error.clone())),
            _ => EntryAction::ReplaceWithGuard,
        };
        let guard = match self
            .map
            .entry_async(&Key::new(key), |_, slot| usable(slot))
            .await
        {
            EntryResult::Retained(Ok(entry)) => return Ok(entry),
            EntryResult::Retained(Err(error)) => return Err(shared_error(&error)),
            EntryResult::Vacant(guard) | EntryResult::Replaced(guard, _) => Some(guard),
            // Neither is asked for: no `Remove` action, no timeout.
            EntryResult::Removed(..) | EntryResult::Timeout => None,
        };
        let outcome = load.await;
        let loaded_at = Instant::now();
        let expires_at = match &outcome {
            Ok(entry) if entry.racing_write => loaded_at,
            Ok(Entry { value: Some(_), .. }) => loaded_at + jitter(self.ttl, key),
            Ok(Entry { value: None, .. }) => loaded_at + self.negative_ttl,
            Err(_) => loaded_at,
        };
        let outcome = outcome.map_err(Arc::new);
        if let Some(guard) = guard {
            // Refused when an invalidation removed the key meanwhile: the waiters still get
            // this outcome, later readers load again.
            let _ = guard.insert(Slot {
                outcome: outcome.clone(),
                loaded_at,
                expires_at,
            });
        }
        outcome.map_err(|error| shared_error(&error))
    }

    /// Drops `key`, or the load of it in progress (whose outcome then goes to its waiters
    /// only).
    pub(super) fn remove(&self, key: &str) {
        self.map.remove(key.as_bytes());
    }

    pub(super) fn clear(&self) {
        self.map.clear();
    }
}

/// One load's error, handed to each reader that shared the load.
fn shared_error(e: &Arc<InfraError>) -> InfraError {
    match &**e {
        InfraError::Unavailable { dependency, .. } => {
            InfraError::unavailable(dependency, SharedError(e.clone()))
        }
        InfraError::Unexpected(_) => InfraError::unexpected(SharedError(e.clone())),
    }
}

#[derive(Debug)]
struct SharedError(Arc<InfraError>);

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.0)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering::SeqCst};

    use bytes::Bytes;
    use futures_util::future::join_all;

    use super::*;

    fn l1() -> L1 {
        L1::new(
            1_000,
            Duration::from_millis(300),
            Duration::from_millis(100),
        )
    }

    fn entry(value: Option<&'static str>, as_of: u64) -> Entry {
        Entry {
            value: value.map(|v| Bytes::from_static(v.as_bytes())),
            as_of: Lsn(as_of),
            racing_write: false,
        }
    }

    async fn slow<T>(calls: &AtomicU32, outcome: T) -> T {
        calls.fetch_add(1, SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        outcome
    }

    #[tokio::test]
    async fn a_failed_load_is_shared_by_its_waiters_then_tried_again() {
        let l1 = l1();
        let calls = AtomicU32::new(0);
        let failed = || InfraError::unavailable("postgres", std::io::Error::other("down"));
        let outcomes =
            join_all((0..200).map(|_| l1.get_or_load("k", None, slow(&calls, Err(failed())))))
                .await;
        assert_eq!(calls.load(SeqCst), 1, "one load for 200 readers");
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, Err(InfraError::Unavailable { .. })))
        );
        // The failure is not kept: the next reader loads again.
        let again = l1.get_or_load("k", None, slow(&calls, Ok(entry(Some("v"), 1))));
        assert_eq!(again.await.unwrap().value.as_deref(), Some(&b"v"[..]));
        assert_eq!(calls.load(SeqCst), 2);
        assert!(l1.get("k", None).is_some());
    }

    #[tokio::test]
    async fn keys_inline_or_on_the_heap_are_found_and_removed_alike() {
        let l1 = l1();
        let fits = "k".repeat(INLINE);
        let long = "k".repeat(INLINE + 1);
        assert!(matches!(Key::new(&fits), Key::Inline { .. }));
        assert!(matches!(Key::new(&long), Key::Heap(_)));
        for (key, value) in [(&fits, "inline"), (&long, "heap")] {
            l1.get_or_load(key, None, async { Ok(entry(Some(value), 1)) })
                .await
                .unwrap();
        }
        for (key, value) in [(&fits, "inline"), (&long, "heap")] {
            let found = l1.get(key, None).and_then(|e| e.value);
            assert_eq!(found.as_deref(), Some(value.as_bytes()), "{key}");
        }
        assert!(
            l1.get(&"k".repeat(INLINE - 1), None).is_none(),
            "a prefix is another key"
        );
        l1.remove(&fits);
        l1.remove(&long);
        assert!(l1.get(&fits, None).is_none() && l1.get(&long, None).is_none());
    }

    #[tokio::test]
    async fn entries_expire_after_their_ttl_and_misses_sooner() {
        let l1 = l1();
        let calls = AtomicU32::new(0);
        l1.get_or_load("found", None, slow(&calls, Ok(entry(Some("v"), 1))))
            .await
            .unwrap();
        l1.get_or_load("missing", None, slow(&calls, Ok(entry(None, 1))))
            .await
            .unwrap();
        assert!(l1.get("found", None).is_some() && l1.get("missing", None).is_some());
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(l1.get("found", None).is_some(), "300 ms ± 10 %");
        assert!(l1.get("missing", None).is_none(), "not found lives 100 ms");
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(l1.get("found", None).is_none());
        l1.get_or_load("found", None, slow(&calls, Ok(entry(Some("w"), 2))))
            .await
            .unwrap();
        assert_eq!(calls.load(SeqCst), 3, "an expired entry is loaded again");
    }

    #[tokio::test]
    async fn a_key_removed_during_its_load_is_not_cached() {
        let l1 = l1();
        let calls = AtomicU32::new(0);
        let load = l1.get_or_load("k", None, slow(&calls, Ok(entry(Some("stale"), 1))));
        let remove = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            l1.remove("k");
        };
        let (loaded, ()) = tokio::join!(load, remove);
        // The reader that loaded gets what it read; nobody after it does.
        assert_eq!(loaded.unwrap().value.as_deref(), Some(&b"stale"[..]));
        assert!(l1.get("k", None).is_none());
    }

    #[tokio::test]
    async fn an_outcome_older_than_the_readers_token_is_loaded_past_for_everyone() {
        let l1 = l1();
        let calls = AtomicU32::new(0);
        l1.get_or_load("k", None, slow(&calls, Ok(entry(Some("old"), 10))))
            .await
            .unwrap();
        assert!(l1.get("k", Some(Lsn(10))).is_some());
        assert!(l1.get("k", Some(Lsn(11))).is_none());
        let newer = l1.get_or_load("k", Some(Lsn(11)), slow(&calls, Ok(entry(Some("new"), 12))));
        assert_eq!(newer.await.unwrap().value.as_deref(), Some(&b"new"[..]));
        let seen = l1.get("k", None).and_then(|e| e.value);
        assert_eq!(seen.as_deref(), Some(&b"new"[..]));
        assert_eq!(calls.load(SeqCst), 2);
    }

    #[tokio::test]
    async fn racing_loads_serve_their_waiters_but_are_not_kept() {
        let l1 = l1();
        let calls = AtomicU32::new(0);
        let racing = Entry {
            racing_write: true,
            ..entry(Some("raced"), 1)
        };
        let outcomes =
            join_all((0..20).map(|_| l1.get_or_load("k", None, slow(&calls, Ok(racing.clone())))))
                .await;
        assert_eq!(calls.load(SeqCst), 1);
        assert!(
            outcomes
                .iter()
                .all(|o| o.as_ref().is_ok_and(|e| e.value.is_some()))
        );
        assert!(l1.get("k", None).is_none());
    }
}
