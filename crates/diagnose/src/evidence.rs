//! What `keel diagnose` measured over its window: plain numbers, gathered by the collectors
//! and judged by [`super::attribution`]. Serializable, so a report can be recorded and the
//! attribution tested on it.

use serde::{Deserialize, Serialize};

/// Everything measured over one window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Evidence {
    pub window_secs: f64,
    pub http: Http,
    pub pool: PoolWait,
    pub payments: Payments,
    /// Round trips to Redis as the API instances waited for them (`keel_redis_seconds`).
    pub redis_calls: RedisCalls,
    pub database: Database,
    /// Keel's named statements as it timed them (`keel_db_query_seconds`), heaviest first.
    pub queries: Vec<NamedQuery>,
    pub redis: Option<Redis>,
    pub cpu: Cpu,
}

/// The API instances' requests over the window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Http {
    pub requests: f64,
    pub server_errors: f64,
    pub shed: f64,
    /// Summed over requests: the request time there is to explain.
    pub time_secs: f64,
    pub p99_secs: Option<f64>,
    /// Busiest routes first.
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Route {
    pub method: String,
    pub route: String,
    pub requests: f64,
    pub time_secs: f64,
    pub p99_secs: Option<f64>,
}

/// Waiting for a pooled PostgreSQL connection, summed over acquisitions.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PoolWait {
    pub acquires: f64,
    pub wait_secs: f64,
    pub p99_secs: Option<f64>,
}

/// Calls to the payment provider made by the API instances (sync-mode sagas).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Payments {
    pub calls: f64,
    pub time_secs: f64,
    pub timeouts: f64,
    pub p99_secs: Option<f64>,
    pub breaker_open: bool,
}

/// The application's database over the window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Database {
    /// From `pg_stat_statements` (false: the extension is not loaded, and database time is
    /// estimated from sampled active sessions instead).
    pub statements_available: bool,
    /// Execution time of all statements (or sampled active time), in seconds.
    pub time_secs: f64,
    /// Heaviest first.
    pub statements: Vec<Statement>,
    /// Tables read by sequential scans over the window, most rows first.
    pub seq_scans: Vec<TableScans>,
    /// Sampled sessions waiting for a lock, summed over time (session-seconds).
    pub lock_wait_secs: f64,
    /// The statement most often seen waiting for a lock.
    pub most_blocked: Option<String>,
    /// Sampled sessions busy in the database (session-seconds).
    pub active_secs: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Statement {
    pub query: String,
    pub calls: f64,
    pub time_secs: f64,
    pub rows: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TableScans {
    pub table: String,
    pub seq_scans: f64,
    pub seq_rows: f64,
    pub index_scans: f64,
    pub live_rows: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NamedQuery {
    pub statement: String,
    pub calls: f64,
    pub time_secs: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RedisCalls {
    pub calls: f64,
    pub time_secs: f64,
    pub p99_secs: Option<f64>,
    /// The operation that took the most time (`session_find`, `ratelimit`, `cache_get`, …).
    pub heaviest: Option<String>,
}

/// Redis's own account of its commands (server-side time only).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Redis {
    pub commands: f64,
    pub time_secs: f64,
}

/// Processor time over the window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cpu {
    pub cores: f64,
    /// Cores' worth of CPU the Keel processes used (2.0 = two cores flat out).
    pub keel_cores: f64,
    /// Cores' worth PostgreSQL's processes used (when it runs on this machine).
    pub database_cores: f64,
    /// Cores' worth the whole machine used.
    pub machine_cores: f64,
    /// Time the cgroup was throttled by its CPU limit.
    pub throttled_secs: f64,
}
