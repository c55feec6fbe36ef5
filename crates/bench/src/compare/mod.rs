//! `keel bench compare`: seed 004's three architectures, each started here as Keel with the
//! settings that make it that architecture, driven by the same workload, searched for the
//! highest rate under the same SLO, and set beside the figures the seed claims.
//!
//! The instances are this very binary (`serve`, `worker`, `fake-payments`), started with the
//! caller's environment (database, Redis, NATS) plus each profile's settings, on loopback
//! ports from `--port`, and stopped with SIGTERM before the next profile starts.

mod processes;

use std::{path::PathBuf, time::Duration};

use serde::Serialize;
use tokio::process::Command;

use crate::{
    chart,
    cli::{ScenarioName, Workload, build, progress},
    find_max::search,
    report::Search,
    run::{Client, RunReport},
};

/// The longest a profile's worker may take to finish an earlier trial's work.
const SETTLE_PATIENCE: Duration = Duration::from_secs(180);

/// Seed 004's architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// The synchronous monolith: the saga runs inside `POST /orders` (payment included), no
    /// cache, every read on the primary.
    Monolith,
    /// Async event-driven: `POST /orders` stores the order and its event, a worker runs the
    /// saga from NATS; no cache, reads on the primary.
    Async,
    /// CQRS + read replicas: async writes, reads from the layered cache and the replicas
    /// (`--replica-urls`).
    Cqrs,
}

/// What seed 004 says each architecture does.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Claim {
    pub max_rps: f64,
    pub p99_ms: f64,
}

impl Profile {
    pub fn claim(self) -> Claim {
        match self {
            Profile::Monolith => Claim {
                max_rps: 2_500.0,
                p99_ms: 450.0,
            },
            Profile::Async => Claim {
                max_rps: 45_000.0,
                p99_ms: 120.0,
            },
            Profile::Cqrs => Claim {
                max_rps: 120_000.0,
                p99_ms: 15.0,
            },
        }
    }

    fn name(self) -> &'static str {
        match self {
            Profile::Monolith => "synchronous monolith",
            Profile::Async => "async event-driven",
            Profile::Cqrs => "CQRS + read replicas + cache",
        }
    }

    /// The `KEEL_*` settings that make Keel this architecture.
    fn settings(self, replicas: &str) -> [(&'static str, String); 3] {
        let (mode, cache, replicas) = match self {
            Profile::Monolith => ("sync", "off", ""),
            Profile::Async => ("async", "off", ""),
            Profile::Cqrs => ("async", "layered", replicas),
        };
        [
            ("KEEL_ORDER_MODE", mode.into()),
            ("KEEL_CACHE", cache.into()),
            ("KEEL_DATABASE_REPLICA_URLS", replicas.into()),
        ]
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// The profiles to compare, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "monolith,async,cqrs"
    )]
    pub profiles: Vec<Profile>,
    /// The workload every profile is driven with (`flash-sale` is not a rate to search).
    #[arg(long, value_enum, default_value = "browse")]
    pub scenario: ScenarioName,
    #[command(flatten)]
    pub workload: Workload,
    /// The CQRS profile's read replicas (comma-separated URLs); without any it reads from
    /// the cache and the primary, and the report says so.
    #[arg(long, default_value = "")]
    pub replica_urls: String,
    /// The fake payment provider's latency: every order's charge takes this long.
    #[arg(long, default_value = "20ms", value_parser = platform::config::parse_duration)]
    pub payment_latency: Duration,
    /// The `keel` binary the profiles run (this one, unless given).
    #[arg(long)]
    pub keel: Option<PathBuf>,
    /// The first of three loopback ports used: the instance, its worker's metrics, the
    /// payment provider.
    #[arg(long, default_value_t = 18280)]
    pub port: u16,
    /// Where to write the comparison as JSON; its chart (p99 against offered rate) is
    /// written beside it (same name, `.svg`).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// One profile's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    pub profile: Profile,
    pub claim: Claim,
    /// The run at the highest rate that held (or the first tried, if none did).
    pub best: RunReport,
    pub search: Search,
}

/// The comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub scenario: &'static str,
    pub slo_p99_ms: f64,
    pub replicas: bool,
    pub profiles: Vec<Measured>,
}

/// Starts each profile in turn, searches its highest rate, stops it.
pub async fn compare(args: &CompareArgs) -> anyhow::Result<Comparison> {
    anyhow::ensure!(
        args.scenario != ScenarioName::FlashSale,
        "compare searches a rate: a flash sale's units run out"
    );
    let exe = match &args.keel {
        Some(path) => path.clone(),
        None => std::env::current_exe()?,
    };
    let port = args.port;
    let payments = format!("127.0.0.1:{}", port + 2);
    let mut provider = processes::spawn(
        Command::new(&exe)
            .args(["fake-payments", "--latency"])
            .arg(format!("{}ms", args.payment_latency.as_millis()))
            .env("KEEL_FAKE_PAYMENTS_LISTEN", &payments),
    )?;
    let mut measured = Vec::new();
    for &profile in &args.profiles {
        let result = measure(args, profile, &exe, &payments).await;
        match result {
            Ok(m) => measured.push(m),
            Err(e) => {
                processes::stop(&mut provider).await;
                return Err(e.context(format!("the {} profile", profile.name())));
            }
        }
    }
    processes::stop(&mut provider).await;
    let scenario = measured
        .first()
        .map_or("none", |m: &Measured| m.best.scenario);
    let comparison = Comparison {
        scenario,
        slo_p99_ms: args.workload.slo,
        replicas: !args.replica_urls.is_empty(),
        profiles: measured,
    };
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&comparison)?)?;
        let lines: Vec<(&str, Vec<(f64, f64)>)> = comparison
            .profiles
            .iter()
            .map(|m| {
                let trials = m.search.trials.iter();
                (
                    m.profile.name(),
                    trials.map(|t| (t.rate, worst_p99(t))).collect(),
                )
            })
            .collect();
        chart::against_rate(
            &format!(
                "{}: p99 against offered rate (SLO {} ms)",
                comparison.scenario, args.workload.slo
            ),
            &lines,
            &path.with_extension("svg"),
        )?;
    }
    Ok(comparison)
}

async fn measure(
    args: &CompareArgs,
    profile: Profile,
    exe: &std::path::Path,
    payments: &str,
) -> anyhow::Result<Measured> {
    let listen = format!("127.0.0.1:{}", args.port);
    // A fresh key prefix: no profile reads what an earlier one cached.
    let prefix = format!("compare:{}:{:?}:", std::process::id(), profile);
    let configure = |command: &mut Command| {
        for (name, value) in profile.settings(&args.replica_urls) {
            command.env(name, value);
        }
        command
            .env("KEEL_REDIS_PREFIX", &prefix)
            .env("KEEL_PAYMENTS_URL", format!("http://{payments}"))
            .env("KEEL_RATE_LIMIT_OFF", "true");
    };
    let mut serve = Command::new(exe);
    serve.arg("serve").env("KEEL_LISTEN", &listen);
    configure(&mut serve);
    let mut instance = processes::spawn(&mut serve)?;
    let mut worker = if profile == Profile::Monolith {
        None
    } else {
        let mut command = Command::new(exe);
        command
            .arg("worker")
            .env("KEEL_WORKER_LISTEN", format!("127.0.0.1:{}", args.port + 1));
        configure(&mut command);
        Some(processes::spawn(&mut command)?)
    };
    let outcome = async {
        let base = format!("http://{listen}");
        processes::ready(&base).await?;
        let config = args.workload.config();
        let client = Client::new(&base, &config)?;
        let scenario = build(args.scenario, &args.workload, &client).await?;
        let bar = progress(profile.name().into());
        // With a worker, each trial starts once the last one's sagas and events are done:
        // a backlog left by an overloaded trial would otherwise be charged to the next.
        let metrics = worker
            .is_some()
            .then(|| format!("http://127.0.0.1:{}/metrics", args.port + 1));
        let before = async |rate: f64| {
            if let Some(metrics) = &metrics {
                bar.set_message(format!("{}: settling before {rate:.0}/s", profile.name()));
                if !processes::settled(metrics, SETTLE_PATIENCE).await {
                    bar.println(format!(
                        "{}: the worker still had a backlog after {} s; trying {rate:.0}/s anyway",
                        profile.name(),
                        SETTLE_PATIENCE.as_secs()
                    ));
                }
            }
            bar.set_length((rate * config.duration.as_secs_f64()) as u64);
            bar.set_message(format!("{}: {rate:.0}/s", profile.name()));
        };
        let tick = |n| bar.set_position(n);
        let (search, best) = search(
            scenario,
            &client,
            &config,
            args.workload.bounds(),
            before,
            tick,
        )
        .await;
        bar.finish_and_clear();
        Ok(Measured {
            profile,
            claim: profile.claim(),
            best: best.ok_or_else(|| anyhow::anyhow!("no rate was tried"))?,
            search,
        })
    }
    .await;
    if let Some(worker) = &mut worker {
        processes::stop(worker).await;
    }
    processes::stop(&mut instance).await;
    outcome
}

/// The comparison as a table, the seed's figures beside the measured ones.
pub fn table(comparison: &Comparison) -> String {
    let mut out = format!(
        "{}: the highest rate with p99 under {} ms and no errors{}\n\
         {:<30} {:>12} {:>8} {:>8} {:>8} {:>8}   {:>12} {:>10}\n",
        comparison.scenario,
        comparison.slo_p99_ms,
        if comparison.replicas {
            ""
        } else {
            "; no replicas given: CQRS reads the cache and the primary"
        },
        "profile",
        "max rate/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "errors",
        "seed: RPS",
        "seed: p99"
    );
    for m in &comparison.profiles {
        let (p50, p95) = m.best.operations.values().fold((0.0, 0.0), |(a, b), s| {
            (f64::max(a, s.p50_ms), f64::max(b, s.p95_ms))
        });
        let errors: u64 = m
            .best
            .operations
            .values()
            .map(|s| {
                s.failed
                    + s.statuses
                        .iter()
                        .filter(|(c, _)| !(200..300).contains(*c))
                        .map(|(_, n)| n)
                        .sum::<u64>()
            })
            .sum();
        let at_least = if m.search.at_ceiling { "≥" } else { "" };
        let rate = m
            .search
            .max_rate
            .map_or("none held".into(), |r| format!("{at_least}{r:.0}"));
        out += &format!(
            "{:<30} {:>12} {:>8.2} {:>8.2} {:>8.2} {:>8}   {:>12.0} {:>8.0} ms\n",
            m.profile.name(),
            rate,
            p50,
            p95,
            worst_p99(&m.best),
            errors,
            m.claim.max_rps,
            m.claim.p99_ms
        );
    }
    out += "p50, p95, p99: the slowest operation's, at the profile's highest rate that held\n";
    out
}

fn worst_p99(run: &RunReport) -> f64 {
    run.operations
        .values()
        .map(|s| s.p99_ms)
        .fold(0.0, f64::max)
}
