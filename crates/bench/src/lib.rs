//! The benchmark lab: `keel bench baseline`, the bare handler the benchmarks compare Keel
//! against, and `keel bench run`, an open-loop load generator driving Keel's scenarios
//! (constant arrival rate, latency from each request's intended send time, HdrHistogram).

mod baseline;
pub mod chart;
mod cli;
pub mod compare;
pub mod delay_proxy;
pub mod find_max;
pub mod record;
mod report;
pub mod run;
pub mod scaling;
pub mod scenarios;
pub mod schedule;

pub use baseline::serve_baseline;
pub use cli::{RunArgs, ScenarioName, Workload, run_command};
pub use report::{Report, Search, table};
