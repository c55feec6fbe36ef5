//! `keel bench run`: one scenario at one rate (or a search for the highest rate under an SLO)
//! against a running Keel, or nginx in front of several, with a progress bar while it runs.

use std::{path::PathBuf, sync::Arc, time::Duration};

use indicatif::{ProgressBar, ProgressStyle};

use crate::{
    find_max::{Trial, found, next_rate},
    report::{Report, Search, trial_of},
    run::{Client, RunConfig, run},
    scenarios::{Browse, Checkout, FlashSale, Mixed, Pages, customers},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScenarioName {
    /// Product pages and listings, one order in eleven arrivals.
    Browse,
    /// Log in, read a product, order it with a key, read the order back.
    Checkout,
    /// Browsing with checkouts among it (`--checkout-share`).
    Mixed,
    /// Many buyers, one product, few units: counts oversells (must be 0).
    FlashSale,
    /// Product pages only: the shape other load generators can send, to compare with them.
    Pages,
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
    /// mixed: the share of arrivals that are checkouts.
    #[arg(long, default_value_t = 0.1)]
    pub checkout_share: f64,
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

/// Runs `keel bench run` and writes the JSON report; [`crate::table`] renders it for a
/// terminal.
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
        ScenarioName::Pages => Report {
            run: run(
                Arc::new(Pages {
                    products: args.products,
                }),
                client,
                &config,
                &tick,
            )
            .await,
            sale: None,
            search: None,
        },
        ScenarioName::Checkout => {
            let scenario = Arc::new(Checkout {
                users: args.users,
                products: args.products,
            });
            Report {
                run: run(scenario, client, &config, &tick).await,
                sale: None,
                search: None,
            }
        }
        ScenarioName::Mixed => {
            let scenario = Arc::new(Mixed {
                browse: Arc::new(Browse {
                    products: args.products,
                    tokens: customers(&client, args.users).await?,
                }),
                checkout: Checkout {
                    users: args.users,
                    products: args.products,
                },
                checkout_every: (1.0 / args.checkout_share.clamp(0.001, 1.0)).round() as u64,
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
