//! The open-loop runner: arrivals at their scheduled times, each running its scenario's
//! requests on a shared keep-alive client, at most `concurrency` arrivals in flight. An
//! arrival that finds every slot taken waits for one — and its wait counts in its latency,
//! which runs from its intended send time, not from when a slot freed up.
//!
//! The schedule is kept by a thread of its own sleeping on the OS's high-resolution timer,
//! not by tokio's timer: tokio's wheel ticks in whole milliseconds, so an arrival would leave
//! up to a millisecond after its time and that lateness would be counted as the server's
//! latency (at 2 000/s it doubled a sub-millisecond p50). How late arrivals were handed to
//! the runtime is measured and reported apart (`sent_late`): if it grows, the generator, not
//! the server, is the bottleneck.

use std::{
    borrow::Cow,
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures_util::future::BoxFuture;
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};

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
    /// How long the scenario runs at `rate` before the measured run, uncounted: connections
    /// opened, the server's caches filled, the allocator and the runtime at their working
    /// size. Without it the first second's connection set-up lands in the run's tail.
    pub warm_up: Duration,
}

/// One arrival's requests: a scenario builds it for arrival `n` and the runner awaits it.
pub trait Scenario: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Runs arrival `n`; `due` is its intended send time, from which the first request's
    /// latency is measured (later requests of the same arrival: from their own send).
    fn arrive(self: Arc<Self>, n: u64, due: Instant, client: Client) -> BoxFuture<'static, ()>;
}

/// What the client has recorded since the run began.
#[derive(Debug)]
struct Records {
    start: Instant,
    by_operation: BTreeMap<&'static str, Record>,
    /// Every operation's answers by the second (from the run's start) they were sent in.
    by_second: Vec<Record>,
}

/// The HTTP client every arrival shares, and where answers are recorded.
#[derive(Debug, Clone)]
pub struct Client {
    pub http: reqwest::Client,
    /// A client that keeps no connection: a resent read goes out on a new one.
    fresh: reqwest::Client,
    pub base: Arc<str>,
    records: Arc<Mutex<Records>>,
}

impl Client {
    pub fn new(base: &str, config: &RunConfig) -> reqwest::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .pool_max_idle_per_host(config.concurrency)
            .tcp_nodelay(true)
            .build()?;
        let fresh = reqwest::Client::builder()
            .timeout(config.timeout)
            .pool_max_idle_per_host(0)
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            http,
            fresh,
            base: base.trim_end_matches('/').into(),
            records: Arc::new(Mutex::new(Records {
                start: Instant::now(),
                by_operation: BTreeMap::new(),
                by_second: Vec::new(),
            })),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends `request`, records its answer under `operation` with its latency from `since`,
    /// and returns the answer's status and body (None when there was no answer).
    ///
    /// A GET whose connection closes or resets before any answer is sent once more, on a
    /// new connection: a balancer's reload closes every idle connection at once, so the next
    /// one in the pool may be closing too (see [`Summary::resent`](crate::record::Summary)).
    pub async fn send(
        &self,
        operation: &'static str,
        since: Instant,
        request: reqwest::RequestBuilder,
    ) -> Option<(u16, bytes::Bytes)> {
        let (client, request) = request.build_split();
        let mut resent = false;
        let answer = match request {
            Err(e) => Err(e),
            Ok(request) => {
                let again = (request.method() == reqwest::Method::GET)
                    .then(|| request.try_clone())
                    .flatten();
                match (client.execute(request).await, again) {
                    (Err(e), Some(again)) if connection_lost(&failure(&e)) => {
                        resent = true;
                        self.fresh.execute(again).await
                    }
                    (answer, _) => answer,
                }
            }
        };
        let answer = match answer {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.bytes().await {
                    Ok(body) => Ok((status, body)),
                    Err(e) => Err(failure(&e)),
                }
            }
            Err(e) => Err(failure(&e)),
        };
        let latency = since.elapsed();
        let mut records = self.lock();
        let second = since.saturating_duration_since(records.start).as_secs() as usize;
        if records.by_second.len() <= second {
            records.by_second.resize_with(second + 1, Record::default);
        }
        let records = &mut *records;
        for record in [
            records.by_operation.entry(operation).or_default(),
            &mut records.by_second[second],
        ] {
            match &answer {
                Ok((status, _)) => record.answered(*status, latency),
                Err(why) => record.failed(why, latency),
            }
            if resent {
                record.resent();
            }
        }
        answer.ok()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a new record, timed from `start`.
    fn begin(&self, start: Instant) {
        let mut records = self.lock();
        records.start = start;
        records.by_operation.clear();
        records.by_second.clear();
    }

    fn take(&self) -> (BTreeMap<&'static str, Record>, Vec<Record>) {
        let mut records = self.lock();
        (
            std::mem::take(&mut records.by_operation),
            std::mem::take(&mut records.by_second),
        )
    }
}

/// Why a request got no answer (the keys of `Summary::failures`): `timeout`, `connect`,
/// `closed` (a FIN before the answer), `reset` (an RST), else the innermost error's words.
fn failure(e: &reqwest::Error) -> Cow<'static, str> {
    if e.is_timeout() {
        return "timeout".into();
    }
    if e.is_connect() {
        return "connect".into();
    }
    let mut innermost: &dyn std::error::Error = e;
    while let Some(cause) = innermost.source() {
        if cause
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_incomplete_message)
        {
            return "closed".into();
        }
        if cause.downcast_ref::<std::io::Error>().is_some_and(|e| {
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            )
        }) {
            return "reset".into();
        }
        innermost = cause;
    }
    innermost.to_string().into()
}

/// Whether a request that failed so may be sent again if it is a read: its connection went
/// away (a FIN, or an RST when the peer closed it with the request unread) before answering.
fn connection_lost(why: &str) -> bool {
    matches!(why, "closed" | "reset")
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
    /// How late arrivals reached the runtime after their intended time: the generator's
    /// own delay (a p99 near the server's latencies means the figures are the generator's).
    pub sent_late: Summary,
    /// All operations by the second their requests were sent in (charts).
    pub seconds: Vec<Summary>,
}

impl RunReport {
    /// Requests answered or failed, over every operation.
    pub fn requests(&self) -> u64 {
        self.operations.values().map(|s| s.requests).sum()
    }
}

/// Runs `scenario` at `config.rate` for `config.warm_up` (not counted), then for
/// `config.duration`; `tick` is told of each measured arrival started (a progress bar).
pub async fn run<S: Scenario + ?Sized>(
    scenario: Arc<S>,
    client: Client,
    config: &RunConfig,
    tick: impl Fn(u64),
) -> RunReport {
    if !config.warm_up.is_zero() {
        let warm_up = RunConfig {
            duration: config.warm_up,
            ..config.clone()
        };
        drive(Arc::clone(&scenario), client.clone(), &warm_up, |_| {}).await;
    }
    drive(scenario, client, config, tick).await
}

/// One run at `config.rate` for `config.duration`, recorded from its start.
async fn drive<S: Scenario + ?Sized>(
    scenario: Arc<S>,
    client: Client,
    config: &RunConfig,
    tick: impl Fn(u64),
) -> RunReport {
    let schedule = Schedule::new(config.rate, config.duration);
    let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let start = Instant::now();
    client.begin(start);
    let (due_tx, mut due_rx) = mpsc::unbounded_channel();
    let pacer = std::thread::Builder::new()
        .name("bench-pacer".into())
        .spawn(move || pace(schedule, start, &due_tx));
    let mut late = Record::default();
    let mut arrivals = tokio::task::JoinSet::new();
    if pacer.is_ok() {
        while let Some(n) = due_rx.recv().await {
            let due = start + schedule.due(n);
            late.observe(due.elapsed());
            let slot = Arc::clone(&slots)
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let arrival = Arc::clone(&scenario).arrive(n, due, client.clone());
            arrivals.spawn(async move {
                arrival.await;
                drop(slot);
            });
            tick(n + 1);
            // Reap finished arrivals as we go, so the set stays small on long runs.
            while arrivals.try_join_next().is_some() {}
        }
    }
    while arrivals.join_next().await.is_some() {}
    let elapsed = start.elapsed().as_secs_f64();
    let (operations, seconds) = client.take();
    let answered: u64 = operations.values().map(Record::requests).sum();
    RunReport {
        scenario: scenario.name(),
        rate: config.rate,
        duration_s: config.duration.as_secs_f64(),
        arrivals: late.requests(),
        achieved_rps: answered as f64 / elapsed.max(f64::EPSILON),
        operations: operations
            .iter()
            .map(|(operation, record)| (*operation, record.summary()))
            .collect(),
        sent_late: late.summary(),
        seconds: seconds.iter().map(Record::summary).collect(),
    }
}

/// The pacer thread: sleeps until the next arrival is due and hands over every arrival due
/// by the time it wakes (one wake-up serves several at high rates), in order.
fn pace(schedule: Schedule, start: Instant, due: &mpsc::UnboundedSender<u64>) {
    let mut n = 0;
    while n < schedule.len() {
        let next = start + schedule.due(n);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let now = Instant::now();
        while n < schedule.len() && start + schedule.due(n) <= now {
            if due.send(n).is_err() {
                return;
            }
            n += 1;
        }
    }
}
