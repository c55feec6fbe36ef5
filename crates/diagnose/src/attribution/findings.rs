//! One finding per cause: what the evidence says about it, and the remedy. Each builder is
//! called by [`super::attribute`] when its layer holds a share of the request time.

use super::{Breakdown, Finding, LARGE_SCAN_ROWS, Layer, SATURATED};
use crate::evidence::{Evidence, Statement, TableScans};

fn ms(secs: f64) -> String {
    format!("{:.1} ms", secs * 1000.0)
}

fn per(total: f64, count: f64) -> f64 {
    if count > 0.0 { total / count } else { 0.0 }
}

pub(super) fn pool_exhausted(e: &Evidence, share: f64) -> Finding {
    let mut evidence = vec![format!(
        "{:.0} connection acquisitions waited {} on average",
        e.pool.acquires,
        ms(per(e.pool.wait_secs, e.pool.acquires))
    )];
    if let Some(p99) = e.pool.p99_secs {
        evidence.push(format!("p99 wait for a connection: {}", ms(p99)));
    }
    if e.http.shed > 0.0 {
        evidence.push(format!("{:.0} requests shed with 503", e.http.shed));
    }
    Finding {
        layer: Layer::PoolWait,
        kind: "exhausted pool",
        share,
        title: "Requests queue for a database connection: the pool is exhausted".into(),
        evidence,
        remedy: "Raise KEEL_DB_WRITE_POOL / KEEL_DB_READ_POOL (within PostgreSQL's \
                 max_connections) or put PgBouncer in front; hold connections for less time \
                 (no remote calls inside a transaction)."
            .into(),
    }
}

pub(super) fn slow_third_party(e: &Evidence, share: f64) -> Finding {
    let mut evidence = vec![format!(
        "{:.0} payment calls averaging {}",
        e.payments.calls,
        ms(per(e.payments.time_secs, e.payments.calls))
    )];
    if let Some(p99) = e.payments.p99_secs {
        evidence.push(format!("p99 per call: {}", ms(p99)));
    }
    if e.payments.timeouts > 0.0 {
        evidence.push(format!("{:.0} calls timed out", e.payments.timeouts));
    }
    if e.payments.breaker_open {
        evidence.push("the payments circuit breaker is open".into());
    }
    Finding {
        layer: Layer::ThirdParty,
        kind: "slow third party",
        share,
        title: "Requests wait on the payment provider".into(),
        evidence,
        remedy: "Take the call off the request path (KEEL_ORDER_MODE=async: the worker's saga \
                 charges), keep a tight timeout and the circuit breaker so a slow provider \
                 fails fast, and cache what can be cached."
            .into(),
    }
}

pub(super) fn redis_round_trips(e: &Evidence, share: f64) -> Finding {
    let calls = &e.redis_calls;
    let mut evidence = vec![format!(
        "{:.0} Redis round trips averaging {} ({:.1} per request)",
        calls.calls,
        ms(per(calls.time_secs, calls.calls)),
        per(calls.calls, e.http.requests)
    )];
    if let Some(p99) = calls.p99_secs {
        evidence.push(format!("p99 round trip: {}", ms(p99)));
    }
    if let Some(op) = &calls.heaviest {
        evidence.push(format!("most of it in `{op}`"));
    }
    Finding {
        layer: Layer::Redis,
        kind: "redis round trips",
        share,
        title: "Requests wait on Redis".into(),
        evidence,
        remedy: "Serve hot reads from the in-process L1 (KEEL_CACHE=layered), pipeline or \
                 script what one request sends, and check Redis's own latency (INFO \
                 commandstats) and the network to it."
            .into(),
    }
}

pub(super) fn lock_waits(e: &Evidence, share: f64) -> Finding {
    let mut evidence = vec![format!(
        "sessions spent {:.1} s waiting for locks over the {:.0} s window",
        e.database.lock_wait_secs, e.window_secs
    )];
    if let Some(query) = &e.database.most_blocked {
        evidence.push(format!("most often blocked: {}", one_line(query)));
    }
    Finding {
        layer: Layer::LockWaits,
        kind: "lock contention",
        share,
        title: "Transactions wait for each other's row locks (a hot row)".into(),
        evidence,
        remedy: "Shorten the transactions that hold the lock, take locks in one order, spread a \
                 hot row (sharded counters, per-bucket rows) or queue its writes."
            .into(),
    }
}

pub(super) fn database(e: &Evidence, parts: &Breakdown, share: f64) -> Finding {
    let db = &e.database;
    let source = if db.statements_available {
        "pg_stat_statements"
    } else {
        "sampled pg_stat_activity (pg_stat_statements is not loaded)"
    };
    let mut evidence = vec![format!(
        "statements ran {:.1} s in the window ({source})",
        db.time_secs
    )];
    if parts.database_cpu > 0.0 {
        evidence.push(format!(
            "the machine was saturated ({:.2} of {:.0} cores busy) and PostgreSQL used {:.2}: \
             requests also queued {:.1} s for the CPU it took",
            e.cpu.machine_cores, e.cpu.cores, e.cpu.database_cores, parts.database_cpu
        ));
    }
    let scan = db
        .seq_scans
        .iter()
        .find(|t| t.seq_scans >= 1.0 && per(t.seq_rows, t.seq_scans) >= LARGE_SCAN_ROWS);
    let top = scan
        .and_then(|t| statement_on(&db.statements, t))
        .or_else(|| db.statements.first());
    if let Some(t) = scan {
        evidence.push(format!(
            "{:.0} sequential scans of {} read {:.0} rows each ({:.0} rows live; {:.0} index scans)",
            t.seq_scans,
            t.table,
            per(t.seq_rows, t.seq_scans),
            t.live_rows,
            t.index_scans
        ));
    }
    if let Some(s) = top {
        evidence.push(format!(
            "heaviest statement: {} — {:.0} calls, {} each, {:.0}% of database time",
            one_line(&s.query),
            s.calls,
            ms(per(s.time_secs, s.calls)),
            100.0 * per(s.time_secs, db.time_secs)
        ));
    }
    if let Some(q) = e.queries.first() {
        evidence.push(format!(
            "by Keel's clock, its heaviest statement: {} — {:.0} calls, {} each",
            q.statement,
            q.calls,
            ms(per(q.time_secs, q.calls))
        ));
    }
    match scan {
        Some(t) => Finding {
            layer: Layer::Database,
            kind: "missing index",
            share,
            title: format!("Sequential scans of {} (a missing index?)", t.table),
            evidence,
            remedy: "Add an index that matches the statement's WHERE and ORDER BY (check the plan \
                     with EXPLAIN): every query path needs one."
                .into(),
        },
        None => Finding {
            layer: Layer::Database,
            kind: "database time",
            share,
            title: "The database's statements take the request time".into(),
            evidence,
            remedy:
                "Make the heaviest statement cheaper (EXPLAIN it), cache the read (the layered \
                     cache), or send reads to replicas."
                    .into(),
        },
    }
}

/// The heaviest statement that reads `table`.
fn statement_on<'a>(statements: &'a [Statement], table: &TableScans) -> Option<&'a Statement> {
    let name = table.table.rsplit('.').next().unwrap_or(&table.table);
    statements
        .iter()
        .find(|s| s.query.contains(&table.table) || s.query.contains(name))
}

pub(super) fn application(e: &Evidence, share: f64) -> Finding {
    // Keel keeps most cores busy, or is the biggest user of a saturated machine.
    let cpu = &e.cpu;
    let others = cpu.machine_cores - cpu.keel_cores - cpu.database_cores;
    let cpu_bound = cpu.cores > 0.0
        && (cpu.keel_cores >= 0.6 * cpu.cores
            || (cpu.machine_cores >= SATURATED * cpu.cores
                && cpu.keel_cores >= cpu.database_cores
                && cpu.keel_cores >= others));
    let mut evidence = vec![format!(
        "Keel's processes used {:.2} of {:.0} cores; the machine {:.2}",
        e.cpu.keel_cores, e.cpu.cores, e.cpu.machine_cores
    )];
    if let Some(route) = e.http.routes.first() {
        evidence.push(format!(
            "busiest route: {} {} — {:.0} requests, {} each",
            route.method,
            route.route,
            route.requests,
            ms(per(route.time_secs, route.requests))
        ));
    }
    if cpu_bound {
        Finding {
            layer: Layer::Application,
            kind: "cpu-bound handlers",
            share,
            title: "Handlers are CPU-bound: the time is Keel's own computing".into(),
            evidence,
            remedy:
                "Profile the route (perf record -g -p PID), move heavy work (hashing, encoding) \
                     off the hot path or to a blocking pool, and scale out instances behind the \
                     load balancer."
                    .into(),
        }
    } else {
        Finding {
            layer: Layer::Application,
            kind: "application time",
            share,
            title: "Time in Keel outside the database and the provider".into(),
            evidence,
            remedy:
                "With CPU to spare this is waiting nothing here measures (Redis, the runtime's \
                     queue): look at the route's trace spans."
                    .into(),
        }
    }
}

pub(super) fn contention(e: &Evidence, share: f64) -> Finding {
    let others = e.cpu.machine_cores - e.cpu.keel_cores - e.cpu.database_cores;
    Finding {
        layer: Layer::Infrastructure,
        kind: "cpu contention",
        share,
        title: "Other processes take the CPU of a saturated machine".into(),
        evidence: vec![format!(
            "{:.2} of {:.0} cores busy: Keel {:.2}, PostgreSQL {:.2}, everything else {:.2}",
            e.cpu.machine_cores, e.cpu.cores, e.cpu.keel_cores, e.cpu.database_cores, others
        )],
        remedy: "Give Keel and PostgreSQL cores of their own (and the load generator its own \
                 machine), or add capacity."
            .into(),
    }
}

pub(super) fn throttled(e: &Evidence) -> Finding {
    Finding {
        layer: Layer::Infrastructure,
        kind: "throttled cpu",
        share: (e.cpu.throttled_secs / e.window_secs).min(1.0),
        title: "The CPU limit throttles the service".into(),
        evidence: vec![format!(
            "the cgroup was throttled {:.2} s of the {:.0} s window",
            e.cpu.throttled_secs, e.window_secs
        )],
        remedy: "Raise the container's CPU limit (or remove it and keep the request), or run more \
                 instances."
            .into(),
    }
}

fn one_line(query: &str) -> String {
    let flat = query.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(160) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
}
