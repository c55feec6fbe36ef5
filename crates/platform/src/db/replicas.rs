//! Read replicas: each one's health and lag, measured in the background, and the choice of
//! one for a read. A replica that is down or lags past the bound is skipped until it is
//! healthy again; a read that carries a consistency token only goes to a replica that has
//! replayed that far. Lag per replica is exported as `keel_db_replica_lag_seconds` and
//! `keel_db_replica_lag_bytes`, health as `keel_db_replica_healthy`.

use std::{
    sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed},
    time::Duration,
};

use super::{Lsn, pool::Pooled};

/// One replica and what the last check found.
#[derive(Debug)]
pub(super) struct Replica {
    /// `host:port`, the label its metrics carry.
    pub(super) name: String,
    pub(super) pool: Pooled,
    healthy: AtomicBool,
    replayed: AtomicU64,
}

impl Replica {
    /// How far it had replayed at its last check.
    pub(super) fn replayed(&self) -> Lsn {
        Lsn(self.replayed.load(Relaxed))
    }
}

/// Every configured replica.
#[derive(Debug, Default)]
pub(super) struct Replicas {
    members: Vec<Replica>,
    next: AtomicUsize,
    max_lag: Duration,
}

impl Replicas {
    pub(super) fn new(members: Vec<(String, Pooled)>, max_lag: Duration) -> Self {
        Self {
            members: members
                .into_iter()
                .map(|(name, pool)| Replica {
                    name,
                    pool,
                    // Unknown until the first check: not used before it.
                    healthy: AtomicBool::new(false),
                    replayed: AtomicU64::new(0),
                })
                .collect(),
            next: AtomicUsize::new(0),
            max_lag,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// A healthy replica that has replayed `at_least` (if given), taking turns; `None` sends
    /// the read to the primary.
    pub(super) fn pick(&self, at_least: Option<Lsn>) -> Option<&Replica> {
        let n = self.members.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Relaxed);
        (0..n).map(|i| &self.members[(start + i) % n]).find(|r| {
            r.healthy.load(Relaxed)
                && at_least.is_none_or(|token| Lsn(r.replayed.load(Relaxed)) >= token)
        })
    }

    /// Takes a replica out until its next good check (a read on it just failed).
    pub(super) fn mark_down(&self, replica: &Replica) {
        if replica.healthy.swap(false, Relaxed) {
            tracing::warn!(
                replica = replica.name,
                "replica failed a read; reads go elsewhere until it checks out"
            );
            metrics::gauge!("keel_db_replica_healthy", "replica" => replica.name.clone()).set(0.0);
        }
    }

    /// One round of checks against the primary's current WAL position.
    pub(super) async fn check(&self, primary: &Pooled) {
        // Not retried: a primary that refuses (failing over, restarting) leaves the lag
        // unknown for this round, and the replicas' positions are recorded all the same.
        let primary_lsn = async {
            let client = primary
                .acquire_within("session", Duration::ZERO)
                .await
                .ok()?;
            let row = client
                .query_one("SELECT pg_current_wal_lsn()::text", &[])
                .await
                .ok()?;
            row.get::<_, &str>(0).parse::<Lsn>().ok()
        };
        // All at once, each bounded by its pool's acquire timeout and statement deadline: a
        // silent server (the primary or a replica) delays no other's check.
        let observed =
            futures_util::future::join_all(self.members.iter().map(|r| observe(&r.pool)));
        let (primary_lsn, observed) = tokio::join!(primary_lsn, observed);
        for (replica, observed) in self.members.iter().zip(observed) {
            let healthy = match observed {
                Some(seen) => {
                    replica.replayed.store(seen.replayed.0, Relaxed);
                    let behind = primary_lsn.map_or(0, |p| p.0.saturating_sub(seen.replayed.0));
                    // Caught up means no lag, however long ago the last write was replayed.
                    let lag = if behind == 0 {
                        0.0
                    } else {
                        seen.since_replay_secs
                    };
                    metrics::gauge!("keel_db_replica_lag_bytes", "replica" => replica.name.clone())
                        .set(behind as f64);
                    metrics::gauge!("keel_db_replica_lag_seconds", "replica" => replica.name.clone())
                        .set(lag);
                    seen.in_recovery && lag <= self.max_lag.as_secs_f64()
                }
                None => false,
            };
            let was = replica.healthy.swap(healthy, Relaxed);
            if was != healthy {
                if healthy {
                    tracing::info!(replica = replica.name, "replica healthy: reads use it");
                } else {
                    tracing::warn!(
                        replica = replica.name,
                        "replica down or lagging: reads skip it"
                    );
                }
            }
            metrics::gauge!("keel_db_replica_healthy", "replica" => replica.name.clone())
                .set(if healthy { 1.0 } else { 0.0 });
        }
    }
}

/// What one look at a replica shows.
struct Observed {
    in_recovery: bool,
    replayed: Lsn,
    since_replay_secs: f64,
}

async fn observe(pool: &Pooled) -> Option<Observed> {
    let client = pool.acquire_within("replica", Duration::ZERO).await.ok()?;
    let row = client
        .query_one(
            "SELECT pg_is_in_recovery(),
                    coalesce(pg_last_wal_replay_lsn(), '0/0')::text,
                    coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0)::float8",
            &[],
        )
        .await
        .ok()?;
    Some(Observed {
        in_recovery: row.get(0),
        replayed: row.get::<_, &str>(1).parse().ok()?,
        since_replay_secs: row.get(2),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replicas(n: usize) -> Replicas {
        let pools = (0..n)
            .map(|i| {
                let config: crate::config::DbConfig = crate::config::defaults().unwrap();
                let pool = super::super::pool::pool(
                    "postgres://keel@127.0.0.1:1/keel",
                    "KEEL_DATABASE_REPLICA_URLS",
                    1,
                    &config,
                    ("replica", false),
                )
                .unwrap();
                (
                    format!("replica{i}"),
                    Pooled::new(pool, None, &config, None),
                )
            })
            .collect();
        Replicas::new(pools, Duration::from_secs(5))
    }

    #[test]
    fn unchecked_replicas_are_not_used() {
        assert!(replicas(2).pick(None).is_none());
    }

    #[test]
    fn reads_take_turns_over_healthy_replicas_that_reached_the_token() {
        let r = replicas(3);
        for (i, m) in r.members.iter().enumerate() {
            m.healthy.store(i != 1, Relaxed);
            m.replayed.store(100 * (i as u64 + 1), Relaxed);
        }
        let picked: Vec<&str> = (0..4)
            .map(|_| r.pick(None).unwrap().name.as_str())
            .collect();
        assert!(!picked.contains(&"replica1"), "{picked:?}");
        assert!(picked.contains(&"replica0") && picked.contains(&"replica2"));

        // Only replica2 (300) has replayed 250; nobody has 400: the primary.
        for _ in 0..3 {
            assert_eq!(r.pick(Some(Lsn(250))).unwrap().name, "replica2");
        }
        assert!(r.pick(Some(Lsn(400))).is_none());

        r.mark_down(&r.members[2]);
        assert!(r.pick(Some(Lsn(250))).is_none());
    }
}
