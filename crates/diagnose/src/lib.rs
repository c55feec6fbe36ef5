//! `keel diagnose`: watches a running deployment for a window while traffic flows — the
//! instances' `/metrics`, PostgreSQL's statistics, Redis's command stats, the CPU — and
//! ranks where the request time goes, with the numbers and the pattern that addresses it.
//! The first rule of scaling: find the real bottleneck before adding anything.

mod attribution;
mod evidence;
mod host;
mod metrics;
mod postgres;
mod report;
mod scrape;

use std::time::{Duration, Instant};

use platform::config::parse_duration;

pub use attribution::{Breakdown, Finding, Layer};
pub use evidence::Evidence;
pub use report::Report;

/// What to watch, and for how long.
#[derive(Debug, Clone, clap::Args)]
pub struct DiagnoseArgs {
    /// Base URL of an API instance whose `/metrics` to read; repeat for each instance.
    #[arg(long = "instance", default_value = "http://127.0.0.1:8080")]
    pub instances: Vec<String>,

    /// The application's database (its statistics are read, nothing is written).
    #[arg(
        long,
        env = "KEEL_DATABASE_URL",
        default_value = "postgres://keel:keel@127.0.0.1:5432/keel"
    )]
    pub database_url: String,

    /// Redis, for its command statistics.
    #[arg(long, env = "KEEL_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,

    /// How long to watch; traffic must flow meanwhile.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub window: Duration,

    /// Processes whose CPU counts as Keel's (default: every process named `keel`).
    #[arg(long = "pid")]
    pub pids: Vec<u32>,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Why a diagnosis could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DiagnoseError {
    #[error("cannot read {instance}/metrics")]
    Scrape {
        instance: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot read PostgreSQL's statistics (--database-url)")]
    Postgres(#[source] tokio_postgres::Error),
}

/// How often the database's sessions are sampled within the window.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Watches for `args.window` and judges what it saw.
pub async fn diagnose(args: &DiagnoseArgs) -> Result<Report, DiagnoseError> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    let probe = postgres::Probe::connect(&args.database_url).await?;
    let redis = redis_client(&args.redis_url).await;

    let started = Instant::now();
    let metrics_before = metrics::scrape_all(&http, &args.instances).await?;
    let db_before = probe.counters().await?;
    let redis_before = redis_time(redis.as_ref()).await;
    let cpu_before = host::counters(&args.pids);

    let mut activity = postgres::Activity::default();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    while started.elapsed() < args.window {
        tick.tick().await;
        probe.sample(&mut activity).await?;
    }

    let metrics_after = metrics::scrape_all(&http, &args.instances).await?;
    let db_after = probe.counters().await?;
    let redis_after = redis_time(redis.as_ref()).await;
    let cpu_after = host::counters(&args.pids);
    let window_secs = started.elapsed().as_secs_f64();

    let mut evidence = metrics::evidence(&metrics_before, &metrics_after);
    evidence.window_secs = window_secs;
    evidence.database =
        postgres::database(&db_before, &db_after, &activity, SAMPLE_EVERY.as_secs_f64());
    evidence.redis = match (redis_before, redis_after) {
        (Some(a), Some(b)) => Some(evidence::Redis {
            commands: b.commands - a.commands,
            time_secs: b.time_secs - a.time_secs,
        }),
        _ => None,
    };
    evidence.cpu = host::cpu(&cpu_before, &cpu_after, window_secs);
    Ok(Report::new(args.instances.len(), evidence))
}

async fn redis_client(url: &str) -> Option<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(url).ok()?;
    tokio::time::timeout(
        Duration::from_secs(2),
        client.get_multiplexed_async_connection(),
    )
    .await
    .ok()?
    .ok()
}

/// Redis's own count of commands and their time (`INFO commandstats`), if it answers.
async fn redis_time(
    connection: Option<&redis::aio::MultiplexedConnection>,
) -> Option<evidence::Redis> {
    let mut connection = connection?.clone();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut connection)
        .await
        .ok()?;
    Some(parse_commandstats(&info))
}

fn parse_commandstats(info: &str) -> evidence::Redis {
    let mut totals = evidence::Redis::default();
    for line in info.lines().filter(|l| l.starts_with("cmdstat_")) {
        let Some((_, fields)) = line.split_once(':') else {
            continue;
        };
        for field in fields.split(',') {
            match field.split_once('=') {
                Some(("calls", n)) => totals.commands += n.parse::<f64>().unwrap_or(0.0),
                Some(("usec", n)) => totals.time_secs += n.parse::<f64>().unwrap_or(0.0) / 1e6,
                _ => {}
            }
        }
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_commandstats() {
        let info = "# Commandstats\r\ncmdstat_get:calls=10,usec=300,usec_per_call=30.00,rejected_calls=0\r\ncmdstat_evalsha:calls=5,usec=700,usec_per_call=140.00\r\n";
        let r = parse_commandstats(info);
        assert_eq!(r.commands, 15.0);
        assert!((r.time_secs - 0.001).abs() < 1e-12);
    }
}
