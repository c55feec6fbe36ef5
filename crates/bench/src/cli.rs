//! `keel bench run`: one scenario at one rate (or a search for the highest rate under an SLO)
//! against a running Keel, or nginx in front of several, with a progress bar while it runs.

use std::{path::PathBuf, sync::Arc, time::Duration};

use indicatif::{ProgressBar, ProgressStyle};

use crate::{
    chart,
    find_max::{Bounds, search},
    report::Report,
    run::{Client, RunConfig, Scenario, run},
    scenarios::{Browse, Checkout, FlashSale, Mixed, Orders, Pages, customers},
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
    /// Keyed orders only, from customers logged in before the run (`--users`).
    Orders,
}

/// The workload's shape, shared by `run` and `compare`.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Workload {
    /// Arrivals per second, held whatever the server does (open loop); with `--find-max`,
    /// where the search starts.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// How long a run (or each of a search's trials) lasts.
    #[arg(long, default_value = "10s", value_parser = platform::config::parse_duration)]
    pub duration: Duration,
    /// How long each run first sends at its rate without counting (connections opened,
    /// caches filled); `0s` for none.
    #[arg(long, default_value = "2s", value_parser = platform::config::parse_duration)]
    pub warm_up: Duration,
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
    /// The p99 a `--find-max` search keeps under, in milliseconds.
    #[arg(long, default_value_t = 50.0)]
    pub slo: f64,
    /// The highest rate a search tries: past what the load generator can send on its cores,
    /// a search measures the generator.
    #[arg(long, default_value_t = f64::INFINITY)]
    pub max_rate: f64,
    /// mixed: the share of arrivals that are checkouts.
    #[arg(long, default_value_t = 0.1)]
    pub checkout_share: f64,
}

impl Workload {
    pub(crate) fn config(&self) -> RunConfig {
        RunConfig {
            rate: self.rate,
            duration: self.duration,
            concurrency: self.concurrency,
            timeout: self.timeout,
            warm_up: self.warm_up,
        }
    }

    pub(crate) fn bounds(&self) -> Bounds {
        Bounds {
            start: self.rate,
            slo_ms: self.slo,
            ceiling: self.max_rate,
            precision: 0.05,
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Keel's base URL, or a balancer's in front of several instances.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    #[arg(long, value_enum, default_value = "browse")]
    pub scenario: ScenarioName,
    #[command(flatten)]
    pub workload: Workload,
    /// flash-sale: the units on sale.
    #[arg(long, default_value_t = 100)]
    pub units: i64,
    /// Where to write the report as JSON; a chart of latency over the run is written beside
    /// it (same name, `.svg`).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Search for the highest rate whose p99 stays under `--slo` with no errors: `--rate` is
    /// where the search starts, each trial lasts `--duration`.
    #[arg(long)]
    pub find_max: bool,
}

/// A progress bar over `arrivals`, cleared when the run ends.
pub(crate) fn progress(message: String) -> ProgressBar {
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:40}] {pos}/{len} arrivals ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(message);
    bar
}

/// Runs `keel bench run` and writes the JSON report and its chart; [`crate::table`] renders
/// it for a terminal.
pub async fn run_command(args: &RunArgs) -> anyhow::Result<Report> {
    let workload = &args.workload;
    let config = workload.config();
    let client = Client::new(&args.url, &config)?;
    let bar = progress(format!("{:?} at {}/s", args.scenario, workload.rate));
    bar.set_length((workload.rate * workload.duration.as_secs_f64()) as u64);
    let tick = |n| bar.set_position(n);
    let report = if args.scenario == ScenarioName::FlashSale {
        anyhow::ensure!(
            !args.find_max,
            "--find-max does not apply to flash-sale: its units run out"
        );
        let scenario =
            Arc::new(FlashSale::prepare(&client, workload.users.max(1), args.units).await?);
        // A warm-up would sell the units before the measured run.
        let config = RunConfig {
            warm_up: Duration::ZERO,
            ..config
        };
        let run = run(Arc::clone(&scenario), client.clone(), &config, &tick).await;
        let sale = scenario.outcome(&client, args.units).await?;
        Report {
            run,
            sale: Some(sale),
            search: None,
        }
    } else {
        let scenario = build(args.scenario, workload, &client).await?;
        if args.find_max {
            let before = async |rate: f64| {
                bar.set_length((rate * workload.duration.as_secs_f64()) as u64);
                bar.set_message(format!("searching: {rate:.0}/s"));
            };
            let (search, best) =
                search(scenario, &client, &config, workload.bounds(), before, &tick).await;
            Report {
                run: best.ok_or_else(|| anyhow::anyhow!("no rate was tried"))?,
                sale: None,
                search: Some(search),
            }
        } else {
            Report {
                run: run(scenario, client, &config, &tick).await,
                sale: None,
                search: None,
            }
        }
    };
    bar.finish_and_clear();
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
        chart::over_time(&report.run, &path.with_extension("svg"))?;
    }
    Ok(report)
}

/// The scenario named (all but the flash sale, which keeps its own type to count the sale),
/// with its customers logged in.
pub(crate) async fn build(
    scenario: ScenarioName,
    workload: &Workload,
    client: &Client,
) -> anyhow::Result<Arc<dyn Scenario>> {
    let Workload {
        users,
        products,
        checkout_share,
        ..
    } = *workload;
    Ok(match scenario {
        ScenarioName::Browse => Arc::new(Browse {
            products,
            tokens: customers(client, users).await?,
        }),
        ScenarioName::Pages => Arc::new(Pages { products }),
        ScenarioName::Orders => Arc::new(Orders {
            products,
            tokens: customers(client, users.max(1)).await?,
        }),
        ScenarioName::Checkout => Arc::new(Checkout { users, products }),
        ScenarioName::Mixed => Arc::new(Mixed {
            browse: Arc::new(Browse {
                products,
                tokens: customers(client, users).await?,
            }),
            checkout: Checkout { users, products },
            checkout_every: (1.0 / checkout_share.clamp(0.001, 1.0)).round() as u64,
        }),
        ScenarioName::FlashSale => anyhow::bail!("the flash sale is run on its own"),
    })
}
