//! Graceful degradation: features an operator can switch off at runtime, on every instance at
//! once, so that under load or an incident the core of the service (product pages, orders,
//! sessions) keeps the capacity the rest would take. A switched-off feature answers a 503
//! problem with `Retry-After`; nothing else changes. Which routes a feature covers is
//! declared with the routes (`Policy::switched_by`); the switches are the features they name.
//!
//! The switches live in a Redis hash (only the ones switched off), which each instance reads
//! every second: a switch reaches every instance within about a second, and with Redis down
//! an instance keeps the switches it last read.

use std::{
    convert::Infallible,
    future::Future,
    sync::{
        Arc,
        atomic::{
            AtomicBool, AtomicU64,
            Ordering::{Relaxed, SeqCst},
        },
    },
    time::Duration,
};

use axum::{
    extract::Request,
    response::{IntoResponse, Response},
};
use platform::{
    InfraError,
    http::{Feature, Problem, Selective},
    redis::Redis,
};
use tower::Service;

mod http;

pub(crate) use http::{ApiDoc, routes};

/// The switches as this instance knows them; clones share them.
#[derive(Clone, Debug)]
pub(crate) struct Features(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    redis: Redis,
    key: String,
    /// Every feature the routes name, each with whether it is switched off.
    switches: Vec<(&'static Feature, AtomicBool)>,
    /// Switches this instance began and ended writing: a read of the hash that overlaps one
    /// may predate its write, and is not applied (the next read is).
    switches_begun: AtomicU64,
    switches_ended: AtomicU64,
}

/// How often each instance reads the switches.
const POLL: Duration = Duration::from_secs(1);

impl Features {
    /// The switches of `features`, all on until the first read of the hash says otherwise.
    pub(crate) fn new(redis: Redis, mut features: Vec<&'static Feature>) -> Self {
        // Listed by name, whatever order the routes were assembled in.
        features.sort_by_key(|feature| feature.name);
        features.dedup();
        let key = redis.key("features-off");
        let switches = features
            .into_iter()
            .map(|feature| (feature, AtomicBool::new(false)))
            .collect();
        let features = Self(Arc::new(Shared {
            redis,
            key,
            switches,
            switches_begun: AtomicU64::new(0),
            switches_ended: AtomicU64::new(0),
        }));
        for index in 0..features.0.switches.len() {
            features.remember(index, true);
        }
        features
    }

    /// Every feature, by name.
    pub(crate) fn all(&self) -> impl Iterator<Item = &'static Feature> + '_ {
        self.0.switches.iter().map(|(feature, _)| *feature)
    }

    /// The feature called `name`, if the routes name one.
    pub(crate) fn named(&self, name: &str) -> Option<&'static Feature> {
        self.all().find(|feature| feature.name == name)
    }

    fn index(&self, feature: &Feature) -> Option<usize> {
        self.0.switches.iter().position(|(f, _)| *f == feature)
    }

    pub(crate) fn is_on(&self, feature: &Feature) -> bool {
        self.index(feature)
            .is_none_or(|index| !self.0.switches[index].1.load(Relaxed))
    }

    /// The middleware that answers `feature`'s requests with a 503 while it is off.
    pub(crate) fn gate(&self, feature: &'static Feature) -> Option<Gate> {
        Some(Gate {
            features: self.clone(),
            index: self.index(feature)?,
        })
    }

    /// Switches `feature` on or off for every instance.
    pub(crate) async fn switch(
        &self,
        feature: &'static Feature,
        on: bool,
    ) -> Result<(), InfraError> {
        let Some(index) = self.index(feature) else {
            return Ok(());
        };
        let _switching = Switching::begin(&self.0);
        let mut conn = self.0.redis.conn();
        let mut command = redis::cmd(if on { "HDEL" } else { "HSET" });
        command.arg(&self.0.key).arg(feature.name);
        if !on {
            command.arg("off");
        }
        let () = Redis::timed("features", command.query_async(&mut conn)).await?;
        self.remember(index, on);
        tracing::warn!(feature = feature.name, on, "feature switched");
        Ok(())
    }

    /// Reads the switches every second for as long as any clone of these is held (the
    /// router's middleware and routes hold them), then ends.
    pub(crate) fn watch(&self) -> impl Future<Output = ()> + Send + 'static {
        let shared = Arc::downgrade(&self.0);
        async move {
            let mut tick = tokio::time::interval(POLL);
            let mut failing = false;
            loop {
                tick.tick().await;
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let features = Features(shared);
                failing = features.read(failing).await;
            }
        }
    }

    /// One read of the switches; says whether it failed (logged once per outage).
    async fn read(&self, failing: bool) -> bool {
        let begun = self.0.switches_begun.load(SeqCst);
        if self.0.switches_ended.load(SeqCst) != begun {
            return failing;
        }
        let mut conn = self.0.redis.conn();
        let mut command = redis::cmd("HKEYS");
        command.arg(&self.0.key);
        match Redis::timed("features", command.query_async(&mut conn)).await {
            Ok(_) if self.0.switches_begun.load(SeqCst) != begun => false,
            Ok(off) => {
                let off: Vec<String> = off;
                for (index, (feature, _)) in self.0.switches.iter().enumerate() {
                    self.remember(index, !off.iter().any(|name| name == feature.name));
                }
                false
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "feature switches unreadable; keeping the last ones read");
                }
                true
            }
        }
    }

    fn remember(&self, index: usize, on: bool) {
        let (feature, off) = &self.0.switches[index];
        off.store(!on, Relaxed);
        metrics::gauge!("keel_feature_enabled", "feature" => feature.name)
            .set(f64::from(u8::from(on)));
    }
}

/// A switch under way, from its start until it ends or its future is dropped (a client that
/// hangs up must not leave it counted as under way).
struct Switching<'a>(&'a Shared);

impl<'a> Switching<'a> {
    fn begin(shared: &'a Shared) -> Self {
        shared.switches_begun.fetch_add(1, SeqCst);
        Self(shared)
    }
}

impl Drop for Switching<'_> {
    fn drop(&mut self) {
        self.0.switches_ended.fetch_add(1, SeqCst);
    }
}

/// One feature's routes: answered with a 503 while it is off, let through (one atomic load)
/// while it is on.
#[derive(Clone, Debug)]
pub(crate) struct Gate {
    features: Features,
    index: usize,
}

impl Selective for Gate {
    type Plan = &'static Feature;

    fn plan(&self, _request: &Request) -> Option<&'static Feature> {
        let (feature, off) = &self.features.0.switches[self.index];
        off.load(Relaxed).then_some(*feature)
    }

    async fn around<S>(self, feature: &'static Feature, _request: Request, _next: S) -> Response
    where
        S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
        S::Future: Send + 'static,
    {
        switched_off(feature).into_response()
    }
}

platform::problem_types! {
    /// An operation of a feature an admin switched off (PUT /admin/features/{name}) to keep
    /// the rest of the service responsive; retry after `Retry-After` seconds.
    FEATURE_OFF = (SERVICE_UNAVAILABLE, "feature-off", "Temporarily switched off");
}

fn switched_off(feature: &Feature) -> Problem {
    Problem::new(FEATURE_OFF)
        .detail(format!(
            "`{}` is switched off for now, to keep the rest of the service responsive",
            feature.name
        ))
        .retry_after(30)
}
