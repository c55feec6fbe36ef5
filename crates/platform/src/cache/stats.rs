//! Hit and miss counts per layer (exported as metrics once `/metrics` exists).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct CacheStats {
    l1_hits: AtomicU64,
    l2_hits: AtomicU64,
    loads: AtomicU64,
    l2_errors: AtomicU64,
    invalidations: AtomicU64,
}

impl CacheStats {
    pub fn l1_hits(&self) -> u64 {
        self.l1_hits.load(Relaxed)
    }
    /// L2 hits (each also an L1 miss in layered mode).
    pub fn l2_hits(&self) -> u64 {
        self.l2_hits.load(Relaxed)
    }
    /// Loads from the source: misses of every layer.
    pub fn loads(&self) -> u64 {
        self.loads.load(Relaxed)
    }
    /// Redis calls that failed or were skipped by the breaker.
    pub fn l2_errors(&self) -> u64 {
        self.l2_errors.load(Relaxed)
    }
    pub fn invalidations(&self) -> u64 {
        self.invalidations.load(Relaxed)
    }

    pub(super) fn count_l1_hit(&self) {
        self.l1_hits.fetch_add(1, Relaxed);
    }
    pub(super) fn count_l2_hit(&self) {
        self.l2_hits.fetch_add(1, Relaxed);
    }
    pub(super) fn count_load(&self) {
        self.loads.fetch_add(1, Relaxed);
    }
    pub(super) fn count_l2_error(&self) {
        self.l2_errors.fetch_add(1, Relaxed);
    }
    pub(super) fn count_invalidations(&self, n: usize) {
        self.invalidations.fetch_add(n as u64, Relaxed);
    }
}
