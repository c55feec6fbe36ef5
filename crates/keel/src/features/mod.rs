//! Graceful degradation: features an operator can switch off at runtime, on every instance at
//! once, so that under load or an incident the core of the service (product pages, orders,
//! sessions) keeps the capacity the rest would take. A switched-off feature answers a 503
//! problem with `Retry-After`; nothing else changes.
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
    http::{Method, StatusCode},
    response::{IntoResponse, Response},
};
use platform::{
    InfraError,
    http::{Problem, Selective},
    redis::Redis,
};
use tower::Service;

mod http;

pub(crate) use http::{ApiDoc, router};

/// What can be switched off: the parts whose requests cost the most and that the core does
/// not need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    /// The read models: `/reports/*`.
    Reports,
    /// Product listings and filters, `GET /products` (uncached queries); a product's own page
    /// stays.
    ProductListing,
}

impl Feature {
    pub const ALL: [Feature; 2] = [Feature::Reports, Feature::ProductListing];

    pub fn name(self) -> &'static str {
        match self {
            Feature::Reports => "reports",
            Feature::ProductListing => "product-listing",
        }
    }

    pub fn named(name: &str) -> Option<Feature> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether `request` is one of this feature's.
    fn serves(self, method: &Method, path: &str) -> bool {
        match self {
            Feature::Reports => path.starts_with("/reports/"),
            Feature::ProductListing => method == Method::GET && path == "/products",
        }
    }
}

/// The switches as this instance knows them; clones share them.
#[derive(Clone, Debug)]
pub struct Features(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    redis: Redis,
    key: String,
    /// Indexed by `Feature as usize` (the order of [`Feature::ALL`]).
    off: [AtomicBool; Feature::ALL.len()],
    /// Whether any is off: the one load a request pays while all are on.
    any_off: AtomicBool,
    /// Switches this instance began and ended writing: a read of the hash that overlaps one
    /// may predate its write, and is not applied (the next read is).
    switches_begun: AtomicU64,
    switches_ended: AtomicU64,
}

/// How often each instance reads the switches.
const POLL: Duration = Duration::from_secs(1);

impl Features {
    pub fn new(redis: Redis) -> Self {
        let key = redis.key("features-off");
        let features = Self(Arc::new(Shared {
            redis,
            key,
            off: Default::default(),
            any_off: AtomicBool::new(false),
            switches_begun: AtomicU64::new(0),
            switches_ended: AtomicU64::new(0),
        }));
        for feature in Feature::ALL {
            features.remember(feature, true);
        }
        features
    }

    pub fn is_on(&self, feature: Feature) -> bool {
        !self.0.off[feature as usize].load(Relaxed)
    }

    /// Switches `feature` on or off for every instance.
    pub async fn switch(&self, feature: Feature, on: bool) -> Result<(), InfraError> {
        let _switching = Switching::begin(&self.0);
        let mut conn = self.0.redis.conn();
        let mut command = redis::cmd(if on { "HDEL" } else { "HSET" });
        command.arg(&self.0.key).arg(feature.name());
        if !on {
            command.arg("off");
        }
        let () = Redis::timed("features", command.query_async(&mut conn)).await?;
        self.remember(feature, on);
        tracing::warn!(feature = feature.name(), on, "feature switched");
        Ok(())
    }

    /// Reads the switches every second for as long as any clone of these is held (the
    /// router's middleware and routes hold them), then ends.
    pub fn watch(&self) -> impl Future<Output = ()> + Send + 'static {
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
                for feature in Feature::ALL {
                    self.remember(feature, !off.iter().any(|name| name == feature.name()));
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

    fn remember(&self, feature: Feature, on: bool) {
        self.0.off[feature as usize].store(!on, Relaxed);
        let any_off = self.0.off.iter().any(|off| off.load(Relaxed));
        self.0.any_off.store(any_off, Relaxed);
        metrics::gauge!("keel_feature_enabled", "feature" => feature.name())
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

/// Answers the requests of a switched-off feature with a 503; lets every other through.
impl Selective for Features {
    type Plan = Feature;

    fn plan(&self, request: &Request) -> Option<Feature> {
        if !self.0.any_off.load(Relaxed) {
            return None;
        }
        let (method, path) = (request.method(), request.uri().path());
        Feature::ALL
            .into_iter()
            .find(|f| !self.is_on(*f) && f.serves(method, path))
    }

    async fn around<S>(self, feature: Feature, _request: Request, _next: S) -> Response
    where
        S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
        S::Future: Send + 'static,
    {
        switched_off(feature).into_response()
    }
}

fn switched_off(feature: Feature) -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "feature-off",
        "Temporarily switched off",
    )
    .detail(format!(
        "`{}` is switched off for now, to keep the rest of the service responsive",
        feature.name()
    ))
    .retry_after(30)
}
