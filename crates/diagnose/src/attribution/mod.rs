//! Judging the evidence: how the request time splits over the layers a request crosses, and
//! what in each layer explains it, ranked. Pure functions of [`Evidence`], so they are
//! tested on recorded numbers.
//!
//! Request time (the sum of every request's duration) is split, in this order, into: waiting
//! for a pooled connection; calls to the payment provider; the database (its statements'
//! time, capped by what is left, of which lock waits are a part); and the rest. On a
//! machine whose cores are saturated the rest is mostly waiting to be scheduled, so it is
//! shared out by who used the CPU: PostgreSQL's share goes to the database, other
//! processes' to the infrastructure, and Keel's own stays the application's.

use serde::Serialize;

mod findings;

use findings::{
    application, contention, database, lock_waits, pool_exhausted, redis_round_trips,
    slow_third_party, throttled,
};

use super::evidence::Evidence;

/// The layer a finding blames: `pool_wait` in JSON, "pool wait" in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "lowercase")]
pub enum Layer {
    Database,
    #[strum(serialize = "pool wait")]
    PoolWait,
    #[strum(serialize = "lock waits")]
    LockWaits,
    #[strum(serialize = "third party")]
    ThirdParty,
    Redis,
    Application,
    Infrastructure,
}

/// A machine using this share of its cores is saturated: threads queue for a core.
const SATURATED: f64 = 0.85;

impl Layer {
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// One cause, with its share of the request time and the numbers behind it.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub layer: Layer,
    /// What it is, in a phrase (e.g. `missing index`, `exhausted pool`).
    pub kind: &'static str,
    /// Its share of the request time (0 to 1); for throttling, of the window.
    pub share: f64,
    pub title: String,
    pub evidence: Vec<String>,
    /// The pattern that addresses it.
    pub remedy: String,
}

/// Below this share a layer is not worth a finding.
const NOTABLE: f64 = 0.05;
/// A table scan reading at least this many rows each time is not a small lookup table.
const LARGE_SCAN_ROWS: f64 = 1_000.0;

/// The request time's parts, in seconds summed over requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Breakdown {
    pub total: f64,
    pub pool_wait: f64,
    pub third_party: f64,
    /// Round trips to Redis (sessions, rate limits, the L2 cache).
    pub redis: f64,
    /// Statements, and on a saturated machine the CPU PostgreSQL took from the requests.
    pub database: f64,
    /// The part of `database` that was waiting for the CPU PostgreSQL used.
    pub database_cpu: f64,
    pub lock_waits: f64,
    /// On a saturated machine: the CPU other processes took.
    pub infrastructure: f64,
    pub application: f64,
}

pub(super) fn breakdown(e: &Evidence) -> Breakdown {
    let total = e.http.time_secs.max(0.0);
    let pool_wait = e.pool.wait_secs.clamp(0.0, total);
    let third_party = e.payments.time_secs.clamp(0.0, total - pool_wait);
    let redis = e
        .redis_calls
        .time_secs
        .clamp(0.0, total - pool_wait - third_party);
    let database = e
        .database
        .time_secs
        .clamp(0.0, total - pool_wait - third_party - redis);
    let lock_waits = e.database.lock_wait_secs.clamp(0.0, database);
    let rest = (total - pool_wait - third_party - redis - database).max(0.0);
    let (application, database_cpu, infrastructure) = share_out(e, rest);
    Breakdown {
        total,
        pool_wait,
        third_party,
        redis,
        database: database + database_cpu,
        database_cpu,
        lock_waits,
        infrastructure,
        application,
    }
}

/// Splits the unexplained rest into (Keel, PostgreSQL, others) by their CPU use when the
/// machine is saturated; otherwise it is all the application's.
fn share_out(e: &Evidence, rest: f64) -> (f64, f64, f64) {
    let cpu = &e.cpu;
    if cpu.cores <= 0.0 || cpu.machine_cores < SATURATED * cpu.cores {
        return (rest, 0.0, 0.0);
    }
    let others = (cpu.machine_cores - cpu.keel_cores - cpu.database_cores).max(0.0);
    let used = cpu.keel_cores + cpu.database_cores + others;
    if used <= 0.0 {
        return (rest, 0.0, 0.0);
    }
    (
        rest * cpu.keel_cores / used,
        rest * cpu.database_cores / used,
        rest * others / used,
    )
}

/// The findings, the heaviest first.
pub(super) fn attribute(e: &Evidence) -> Vec<Finding> {
    let parts = breakdown(e);
    let mut findings = Vec::new();
    if parts.total > 0.0 {
        let share = |secs: f64| secs / parts.total;
        if share(parts.pool_wait) >= NOTABLE {
            findings.push(pool_exhausted(e, share(parts.pool_wait)));
        }
        if share(parts.third_party) >= NOTABLE {
            findings.push(slow_third_party(e, share(parts.third_party)));
        }
        if share(parts.redis) >= NOTABLE {
            findings.push(redis_round_trips(e, share(parts.redis)));
        }
        if share(parts.lock_waits) >= NOTABLE {
            findings.push(lock_waits(e, share(parts.lock_waits)));
        }
        let executing = parts.database - parts.lock_waits;
        if share(executing) >= NOTABLE {
            findings.push(database(e, &parts, share(executing)));
        }
        if share(parts.application) >= NOTABLE {
            findings.push(application(e, share(parts.application)));
        }
        if share(parts.infrastructure) >= NOTABLE {
            findings.push(contention(e, share(parts.infrastructure)));
        }
    }
    if e.cpu.throttled_secs > 0.0 && e.window_secs > 0.0 {
        findings.push(throttled(e));
    }
    findings.sort_by(|a, b| b.share.total_cmp(&a.share));
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::*;

    /// A window of 1 000 requests taking 10 s in all, with nothing else measured.
    fn window() -> Evidence {
        Evidence {
            window_secs: 10.0,
            http: Http {
                requests: 1000.0,
                time_secs: 10.0,
                routes: vec![Route {
                    method: "GET".into(),
                    route: "/orders".into(),
                    requests: 1000.0,
                    time_secs: 10.0,
                    p99_secs: Some(0.05),
                }],
                ..Http::default()
            },
            cpu: Cpu {
                cores: 2.0,
                keel_cores: 0.3,
                database_cores: 0.5,
                machine_cores: 1.0,
                throttled_secs: 0.0,
            },
            ..Evidence::default()
        }
    }

    #[test]
    fn a_sequential_scan_on_a_large_table_is_named_first() {
        let mut e = window();
        e.database = Database {
            statements_available: true,
            time_secs: 8.0,
            statements: vec![
                Statement {
                    query: "SELECT 1".into(),
                    calls: 10.0,
                    time_secs: 0.1,
                    rows: 10.0,
                },
                Statement {
                    query: "SELECT id FROM orders.orders WHERE user_id = $1 ORDER BY id DESC"
                        .into(),
                    calls: 1000.0,
                    time_secs: 7.5,
                    rows: 20_000.0,
                },
            ],
            seq_scans: vec![TableScans {
                table: "orders.orders".into(),
                seq_scans: 1000.0,
                seq_rows: 50_000_000.0,
                index_scans: 0.0,
                live_rows: 50_000.0,
            }],
            ..Database::default()
        };
        let findings = attribute(&e);
        assert_eq!(findings[0].layer, Layer::Database);
        assert_eq!(findings[0].kind, "missing index");
        assert!((findings[0].share - 0.8).abs() < 1e-9);
        assert!(findings[0].title.contains("orders.orders"));
        assert!(
            findings[0].evidence[2].contains("WHERE user_id"),
            "{:?}",
            findings[0].evidence
        );
    }

    #[test]
    fn database_time_without_a_large_scan_is_plain_database_time() {
        let mut e = window();
        e.database.time_secs = 6.0;
        e.database.seq_scans = vec![TableScans {
            table: "catalog.categories".into(),
            seq_scans: 1000.0,
            seq_rows: 16_000.0,
            ..TableScans::default()
        }];
        let findings = attribute(&e);
        assert_eq!(findings[0].kind, "database time");
    }

    #[test]
    fn pool_wait_comes_before_the_database_it_waits_for() {
        let mut e = window();
        e.pool = PoolWait {
            acquires: 1000.0,
            wait_secs: 7.0,
            p99_secs: Some(0.02),
        };
        e.database.time_secs = 2.0;
        let findings = attribute(&e);
        assert_eq!(findings[0].layer, Layer::PoolWait);
        assert!((findings[0].share - 0.7).abs() < 1e-9);
        assert_eq!(findings[1].layer, Layer::Database);
        assert!((findings[1].share - 0.2).abs() < 1e-9);
    }

    #[test]
    fn a_slow_provider_is_the_third_party() {
        let mut e = window();
        e.payments = Payments {
            calls: 100.0,
            time_secs: 9.0,
            breaker_open: true,
            ..Payments::default()
        };
        e.database.time_secs = 3.0; // capped by what the provider leaves: 1 s
        let parts = breakdown(&e);
        assert!((parts.database - 1.0).abs() < 1e-9);
        let findings = attribute(&e);
        assert_eq!(findings[0].layer, Layer::ThirdParty);
        assert!(
            findings[0]
                .evidence
                .iter()
                .any(|l| l.contains("breaker is open"))
        );
    }

    #[test]
    fn lock_waits_are_split_out_of_database_time() {
        let mut e = window();
        e.database.time_secs = 9.0;
        e.database.lock_wait_secs = 6.0;
        e.database.most_blocked = Some("UPDATE catalog.stock SET on_hand = $1".into());
        let findings = attribute(&e);
        assert_eq!(findings[0].layer, Layer::LockWaits);
        assert_eq!(findings[1].layer, Layer::Database);
        assert!((findings[1].share - 0.3).abs() < 1e-9);
    }

    #[test]
    fn busy_cores_make_the_application_cpu_bound() {
        let mut e = window();
        e.cpu.keel_cores = 1.7;
        e.database.time_secs = 0.5;
        let findings = attribute(&e);
        assert_eq!(findings[0].layer, Layer::Application);
        assert_eq!(findings[0].kind, "cpu-bound handlers");

        e.cpu.keel_cores = 0.2;
        assert_eq!(attribute(&e)[0].kind, "application time");
    }

    #[test]
    fn on_a_saturated_machine_the_rest_goes_to_whoever_used_the_cpu() {
        // Recorded from a run with catalog.stock's key dropped: 2.7 ms of each 7.4 ms request
        // in statements, PostgreSQL's scans burning most of the two cores.
        let mut e = window();
        e.http.time_secs = 14.9;
        e.database.time_secs = 5.4;
        e.database.seq_scans = vec![TableScans {
            table: "catalog.stock".into(),
            seq_scans: 1995.0,
            seq_rows: 1995.0 * 20_000.0,
            index_scans: 0.0,
            live_rows: 20_000.0,
        }];
        e.cpu = Cpu {
            cores: 2.0,
            keel_cores: 0.24,
            database_cores: 1.2,
            machine_cores: 1.94,
            throttled_secs: 0.0,
        };
        let parts = breakdown(&e);
        assert!((parts.database_cpu - 9.5 * 1.2 / 1.94).abs() < 1e-9);
        assert!((parts.infrastructure - 9.5 * 0.5 / 1.94).abs() < 1e-9);
        let findings = attribute(&e);
        assert_eq!(findings[0].kind, "missing index");
        assert!(findings[0].share > 0.7, "{}", findings[0].share);

        // The same split on an idle machine leaves the rest to the application.
        e.cpu.machine_cores = 1.0;
        assert_eq!(attribute(&e)[0].layer, Layer::Application);
    }

    #[test]
    fn redis_waits_are_their_own_layer() {
        let mut e = window();
        e.redis_calls = RedisCalls {
            calls: 3000.0,
            time_secs: 6.0,
            p99_secs: Some(0.01),
            heaviest: Some("cache_get".into()),
        };
        e.database.time_secs = 3.0;
        let findings = attribute(&e);
        assert_eq!(findings[0].layer, Layer::Redis);
        assert!((findings[0].share - 0.6).abs() < 1e-9);
        assert!(findings[0].evidence[0].contains("3.0 per request"));
    }

    #[test]
    fn throttling_is_reported_whatever_its_share() {
        let mut e = window();
        e.cpu.throttled_secs = 0.2;
        let findings = attribute(&e);
        assert!(findings.iter().any(|f| f.layer == Layer::Infrastructure));
    }

    #[test]
    fn no_requests_no_request_findings() {
        assert!(attribute(&Evidence::default()).is_empty());
    }
}
