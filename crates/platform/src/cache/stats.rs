//! Hit and miss counts per layer: read by tests and benchmarks from the cache itself, and
//! recorded for the process as `keel_cache_hits_total{layer}`, `keel_cache_loads_total`,
//! `keel_cache_l2_errors_total` and `keel_cache_invalidations_total`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use metrics::{Counter, counter};

#[derive(Debug, Default)]
pub struct CacheStats {
    l1_hits: AtomicU64,
    l2_hits: AtomicU64,
    loads: AtomicU64,
    l2_errors: AtomicU64,
    invalidations: AtomicU64,
    metrics: Metrics,
}

/// The metrics' handles, registered once: the L1-hit path pays one atomic add for each.
#[derive(Debug)]
struct Metrics {
    l1_hits: Counter,
    l2_hits: Counter,
    loads: Counter,
    l2_errors: Counter,
    invalidations: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        // Handles taken before a recorder exists record nothing.
        crate::metrics::handle();
        Self {
            l1_hits: counter!("keel_cache_hits_total", "layer" => "l1"),
            l2_hits: counter!("keel_cache_hits_total", "layer" => "l2"),
            loads: counter!("keel_cache_loads_total"),
            l2_errors: counter!("keel_cache_l2_errors_total"),
            invalidations: counter!("keel_cache_invalidations_total"),
        }
    }
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
        self.metrics.l1_hits.increment(1);
    }
    pub(super) fn count_l2_hit(&self) {
        self.l2_hits.fetch_add(1, Relaxed);
        self.metrics.l2_hits.increment(1);
    }
    pub(super) fn count_load(&self) {
        self.loads.fetch_add(1, Relaxed);
        self.metrics.loads.increment(1);
    }
    pub(super) fn count_l2_error(&self) {
        self.l2_errors.fetch_add(1, Relaxed);
        self.metrics.l2_errors.increment(1);
    }
    pub(super) fn count_invalidations(&self, n: usize) {
        self.invalidations.fetch_add(n as u64, Relaxed);
        self.metrics.invalidations.increment(n as u64);
    }
}
