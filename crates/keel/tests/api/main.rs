//! Keel's HTTP API end to end: the real application on a random port, against the real
//! PostgreSQL (a database per test) and Redis (a key prefix per test).

// Helpers are `pub` for the sibling modules; in a test binary nothing is exported anyway.
#![allow(unreachable_pub, clippy::unwrap_used)]

mod accounts;
mod bench_lab;
mod cache;
mod catalog;
mod config;
mod connection_budget;
mod deploy;
mod diagnose;
mod events;
mod failover;
mod features;
mod ha_chaos;
mod helpers;
mod http;
mod idempotency;
mod keel_process;
mod load_balancer;
mod metrics;
mod nats_cluster;
mod nats_server;
mod network_faults;
mod orders;
mod payments;
mod pgbouncer;
mod rate_limit;
mod redis_sentinel;
mod redis_server;
mod replicas;
mod reports;
mod rolling_restart;
mod saga;
mod saga_faults;
mod shutdown;
mod slow_clients;
mod worker_signals;
