//! The open-loop runner: arrivals at their scheduled times, each running its scenario's
//! requests on a shared keep-alive client, at most `concurrency` arrivals in flight. An
//! arrival that finds every slot taken waits for one — and its wait counts in its latency,
//! which runs from its intended send time, not from when a slot freed up.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures_util::future::BoxFuture;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::{
    record::{Record, Summary},
    schedule::Schedule,
};

/// How a run is driven.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Arrivals per second.
    pub rate: f64,
    pub duration: Duration,
    /// Arrivals in flight at most (each on a kept-alive connection of the client's pool).
    pub concurrency: usize,
    /// A request not answered by then counts as failed.
    pub timeout: Duration,
}

/// One arrival's requests: a scenario builds it for arrival `n` and the runner awaits it.
pub trait Scenario: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Runs arrival `n`; `due` is its intended send time, from which the first request's
    /// latency is measured (later requests of the same arrival: from their own send).
    fn arrive(self: Arc<Self>, n: u64, due: Instant, client: Client) -> BoxFuture<'static, ()>;
}

/// The HTTP client every arrival shares, and where answers are recorded.
#[derive(Debug, Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: Arc<str>,
    records: Arc<Mutex<BTreeMap<&'static str, Record>>>,
}

impl Client {
    pub fn new(base: &str, config: &RunConfig) -> reqwest::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .pool_max_idle_per_host(config.concurrency)
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').into(),
            records: Arc::default(),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends `request`, records its answer under `operation` with its latency from `since`,
    /// and returns the answer's status and body (None when there was no answer).
    pub async fn send(
        &self,
        operation: &'static str,
        since: Instant,
        request: reqwest::RequestBuilder,
    ) -> Option<(u16, bytes::Bytes)> {
        let answer = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                response.bytes().await.ok().map(|body| (status, body))
            }
            Err(_) => None,
        };
        let latency = since.elapsed();
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let record = records.entry(operation).or_default();
        match &answer {
            Some((status, _)) => record.answered(*status, latency),
            None => record.failed(latency),
        }
        answer
    }

    fn take(&self) -> BTreeMap<&'static str, Record> {
        std::mem::take(&mut self.records.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub scenario: &'static str,
    pub rate: f64,
    pub duration_s: f64,
    /// Arrivals scheduled and started (all of them, unless the run was cut short).
    pub arrivals: u64,
    /// Requests a second actually answered, over the run's wall time.
    pub achieved_rps: f64,
    pub operations: BTreeMap<&'static str, Summary>,
}

/// Runs `scenario` at `config.rate` for `config.duration`; `tick` is told of each arrival
/// started (a progress bar).
pub async fn run<S: Scenario>(
    scenario: Arc<S>,
    client: Client,
    config: &RunConfig,
    tick: impl Fn(u64),
) -> RunReport {
    let schedule = Schedule::new(config.rate, config.duration);
    let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let start = Instant::now();
    let mut arrivals = tokio::task::JoinSet::new();
    for (n, offset) in schedule.iter().enumerate() {
        let due = start + offset;
        tokio::time::sleep_until(due.into()).await;
        let slot = Arc::clone(&slots)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let arrival = Arc::clone(&scenario).arrive(n as u64, due, client.clone());
        arrivals.spawn(async move {
            arrival.await;
            drop(slot);
        });
        tick(n as u64 + 1);
        // Reap finished arrivals as we go, so the set stays small on long runs.
        while arrivals.try_join_next().is_some() {}
    }
    while arrivals.join_next().await.is_some() {}
    let elapsed = start.elapsed().as_secs_f64();
    let records = client.take();
    let answered: u64 = records.values().map(Record::requests).sum();
    RunReport {
        scenario: scenario.name(),
        rate: config.rate,
        duration_s: config.duration.as_secs_f64(),
        arrivals: schedule.len(),
        achieved_rps: answered as f64 / elapsed.max(f64::EPSILON),
        operations: records
            .iter()
            .map(|(operation, record)| (*operation, record.summary()))
            .collect(),
    }
}
