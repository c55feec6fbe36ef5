//! `keel bench run`: one scenario at one rate against a running Keel (or nginx in front of
//! several), with a progress bar, a table at the end and the report as JSON.

use std::{path::PathBuf, sync::Arc, time::Duration};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::{
    find_max::{Trial, found, next_rate},
    run::{Client, RunConfig, RunReport, run},
    scenarios::{Browse, FlashSale, SaleOutcome, customers},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScenarioName {
    /// Product pages and listings, one order in eleven arrivals.
    Browse,
    /// Many buyers, one product, few units: counts oversells (must be 0).
    FlashSale,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Keel's base URL, or a balancer's in front of several instances.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    #[arg(long, value_enum, default_value = "browse")]
    pub scenario: ScenarioName,
    /// Arrivals per second, held whatever the server does (open loop).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    #[arg(long, default_value = "10s", value_parser = platform::config::parse_duration)]
    pub duration: Duration,
    /// Arrivals in flight at most.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// A request unanswered after this counts as failed.
    #[arg(long, default_value = "10s", value_parser = platform::config::parse_duration)]
    pub timeout: Duration,
    /// Seeded customers to log in (user1…): buyers of the orders.
    #[arg(long, default_value_t = 16)]
    pub users: u64,
    /// Product ids to read (1..=N; `keel seed`'s default is 100 000).
    #[arg(long, default_value_t = 10_000)]
    pub products: u64,
    /// flash-sale: the units on sale.
    #[arg(long, default_value_t = 100)]
    pub units: i64,
    /// Where to write the report as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Search for the highest rate whose p99 stays under `--slo` with no errors (browse):
    /// `--rate` is where the search starts, each trial lasts `--duration`.
    #[arg(long)]
    pub find_max: bool,
    /// The p99 the search keeps under, in milliseconds.
    #[arg(long, default_value_t = 50.0)]
    pub slo: f64,
}

/// The report of `keel bench run`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub run: RunReport,
    /// flash-sale: how the sale ended.
    pub sale: Option<SaleOutcome>,
    /// `--find-max`: every rate tried, and the highest that held.
    pub search: Option<Search>,
}

/// What `--find-max` tried and found.
#[derive(Debug, Clone, Serialize)]
pub struct Search {
    pub slo_p99_ms: f64,
    pub trials: Vec<RunReport>,
    pub max_rate: Option<f64>,
}

/// A run's worst p99 over its operations, and whether every request got a 2xx.
fn trial_of(run: &RunReport) -> Trial {
    let p99_ms = run
        .operations
        .values()
        .map(|s| s.p99_ms)
        .fold(0.0, f64::max);
    let clean = run
        .operations
        .values()
        .all(|s| s.failed == 0 && s.statuses.keys().all(|status| (200..300).contains(status)));
    Trial {
        rate: run.rate,
        p99_ms,
        clean,
    }
}

/// Runs `keel bench run` and writes the JSON report; [`table`] renders it for a terminal.
pub async fn run_command(args: &RunArgs) -> anyhow::Result<Report> {
    let config = RunConfig {
        rate: args.rate,
        duration: args.duration,
        concurrency: args.concurrency,
        timeout: args.timeout,
    };
    let client = Client::new(&args.url, &config)?;
    let arrivals = (args.rate * args.duration.as_secs_f64()) as u64;
    let bar = ProgressBar::new(arrivals).with_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:40}] {pos}/{len} arrivals ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("{:?} at {}/s", args.scenario, args.rate));
    let tick = |n| bar.set_position(n);
    let report = match args.scenario {
        ScenarioName::Browse if args.find_max => {
            let scenario = Arc::new(Browse {
                products: args.products,
                tokens: customers(&client, args.users).await?,
            });
            let mut trials: Vec<Trial> = Vec::new();
            let mut runs = Vec::new();
            while let Some(rate) = next_rate(&trials, args.rate, args.slo, 0.05) {
                bar.set_length((rate * args.duration.as_secs_f64()) as u64);
                bar.set_message(format!("searching: {rate:.0}/s"));
                let config = RunConfig {
                    rate,
                    ..config.clone()
                };
                let report = run(Arc::clone(&scenario), client.clone(), &config, &tick).await;
                trials.push(trial_of(&report));
                runs.push(report);
            }
            let max_rate = found(&trials, args.slo);
            let best = runs
                .iter()
                .filter(|r| Some(r.rate) == max_rate)
                .chain(runs.first())
                .next()
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("no rate was tried"))?;
            Report {
                run: best,
                sale: None,
                search: Some(Search {
                    slo_p99_ms: args.slo,
                    trials: runs,
                    max_rate,
                }),
            }
        }
        ScenarioName::Browse => {
            let scenario = Arc::new(Browse {
                products: args.products,
                tokens: customers(&client, args.users).await?,
            });
            Report {
                run: run(scenario, client, &config, &tick).await,
                sale: None,
                search: None,
            }
        }
        ScenarioName::FlashSale => {
            let scenario =
                Arc::new(FlashSale::prepare(&client, args.users.max(1), args.units).await?);
            let run = run(Arc::clone(&scenario), client.clone(), &config, &tick).await;
            let sale = scenario.outcome(&client, args.units).await?;
            Report {
                run,
                sale: Some(sale),
                search: None,
            }
        }
    };
    bar.finish_and_clear();
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(report)
}

/// The report as a terminal table.
pub fn table(report: &Report) -> String {
    let run = &report.run;
    let mut out = format!(
        "{} at {}/s for {:.0} s: {} arrivals, {:.0} answered/s\n\
         {:<22} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}  statuses\n",
        run.scenario,
        run.rate,
        run.duration_s,
        run.arrivals,
        run.achieved_rps,
        "operation",
        "requests",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "p99.9 ms",
        "failed"
    );
    for (operation, s) in &run.operations {
        let statuses: Vec<String> = s
            .statuses
            .iter()
            .map(|(code, n)| format!("{code}: {n}"))
            .collect();
        out += &format!(
            "{operation:<22} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9}  {}\n",
            s.requests,
            s.p50_ms,
            s.p95_ms,
            s.p99_ms,
            s.p999_ms,
            s.failed,
            statuses.join(", ")
        );
    }
    if let Some(search) = &report.search {
        for trial in &search.trials {
            let t = trial_of(trial);
            out += &format!(
                "tried {:>8.0}/s: p99 {:>8.2} ms, {}\n",
                t.rate,
                t.p99_ms,
                if t.held(search.slo_p99_ms) {
                    "held"
                } else {
                    "failed"
                }
            );
        }
        match search.max_rate {
            Some(rate) => {
                out += &format!(
                    "max rate with p99 ≤ {} ms: {rate:.0}/s\n",
                    search.slo_p99_ms
                )
            }
            None => out += &format!("no rate held p99 ≤ {} ms\n", search.slo_p99_ms),
        }
    }
    if let Some(sale) = &report.sale {
        out += &format!(
            "sale: {} units, {} orders accepted, {} sold out, {} left, oversold {}\n",
            sale.units, sale.accepted, sale.sold_out, sale.stock_left, sale.oversold
        );
    }
    out
}
