//! The `keel` command: parses the command line and runs what it names.

use anyhow::Context;
use clap::{Parser, Subcommand};
use keel::{Application, Config, MaintenanceConfig, WorkerConfig, seed::SeedSizes};
use platform::{config::DbConfig, db::Db};

/// A request allocates a few dozen small objects (headers, extensions, futures); mimalloc's
/// thread-local free lists serve them in a fraction of glibc's time (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keel: a horizontally scalable commerce backend.
///
/// Every option can also be set through the environment variable shown with it.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Migrate, then serve the HTTP API until SIGTERM or Ctrl-C (in-flight requests drain).
    Serve(Box<Config>),
    /// Migrate, then relay the outbox to NATS JetStream and run order sagas until SIGTERM.
    Worker(Box<WorkerConfig>),
    /// Serve the fake external payment provider (the system's one test double).
    FakePayments {
        /// Address to listen on.
        #[arg(
            long,
            env = "KEEL_FAKE_PAYMENTS_LISTEN",
            default_value = "127.0.0.1:8090"
        )]
        listen: std::net::SocketAddr,
        #[command(flatten)]
        behaviour: fake_payments::Behaviour,
    },
    /// Create the event log's upcoming partitions, drop those past retention, and trim the
    /// consumers' and read models' records and expired idempotency keys; then exit.
    Maintenance {
        #[command(flatten)]
        db: DbConfig,
        #[command(flatten)]
        retention: MaintenanceConfig,
    },
    /// Apply pending database migrations, then exit.
    Migrate(DbConfig),
    /// Migrate, then add demo data (users and products with stock) through COPY.
    Seed {
        #[command(flatten)]
        db: DbConfig,
        #[command(flatten)]
        sizes: SeedSizes,
    },
    /// The benchmark lab's tools (see docs/benchmarks.md and scripts/bench.sh).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Watch a running deployment while traffic flows and rank where the request time goes
    /// (database, pool, locks, the payment provider, Keel's CPU), with evidence and remedies.
    Diagnose(diagnose::DiagnoseArgs),
    /// The read models' projections.
    #[command(subcommand)]
    Projections(ProjectionsCommand),
    /// The dead-letter stream: messages whose handling kept failing.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Ask a health endpoint; exit 0 if it answers 2xx, 1 otherwise. For health checks in
    /// images without a shell or curl: `keel probe http://127.0.0.1:8080/readyz`.
    Probe {
        /// The URL to ask.
        url: String,
        /// How long to wait for the answer.
        #[arg(long, default_value = "2s", value_parser = platform::config::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Give an existing account the admin role (it takes effect at its next login).
    Promote {
        /// The account's email.
        email: String,
        #[command(flatten)]
        db: DbConfig,
    },
}

#[derive(Debug, Subcommand)]
enum ProjectionsCommand {
    /// Rebuild the read models from the event log while the service runs, then switch the
    /// API and the workers to the new ones.
    Rebuild(DbConfig),
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// Print the dead letters, oldest first: sequence, when, consumer, subject, event id,
    /// reason (tab-separated).
    List(DlqArgs),
    /// Put the dead letters back on their subjects, then delete them (every consumer still
    /// processes an event once).
    Replay(DlqArgs),
    /// Delete the dead letters.
    Drop(DlqArgs),
}

#[derive(Debug, clap::Args)]
struct DlqArgs {
    #[command(flatten)]
    bus: platform::bus::BusConfig,
    #[command(flatten)]
    filter: platform::bus::dlq::Filter,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Serve a fixed JSON body from a bare axum handler: the throughput ceiling to compare with.
    Baseline {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: std::net::SocketAddr,
        /// Body size in bytes; use the size of the response being compared.
        #[arg(long, default_value_t = 263)]
        size: usize,
    },
    /// Drive a scenario at a constant arrival rate against a running Keel (or a balancer in
    /// front of several) and report latency per operation from each request's intended send
    /// time: no coordinated omission.
    Run(bench::RunArgs),
    /// Start seed 004's three architectures in turn (synchronous monolith, async
    /// event-driven, CQRS + read replicas + cache) as Keel instances of this binary, find
    /// each one's highest browse rate under the SLO, and print them beside the seed's figures.
    Compare(bench::compare::CompareArgs),
    /// Draw throughput against hosts (the fleet lab's scale-out) beside N times the first
    /// point, as SVG.
    ScalingChart(bench::scaling::ScalingChartArgs),
    /// Forward TCP connections with a fixed delay each way: a network round trip added
    /// between two hosts of the fleet lab.
    DelayProxy(bench::delay_proxy::DelayProxyArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Probe { url, timeout } = &cli.command {
        // No logging set up: a health check's output is its exit status.
        return keel::health::probe(url, *timeout).await;
    }
    let _telemetry = platform::telemetry::init(match cli.command {
        Command::Serve(_) => "keel-api",
        Command::Worker(_) => "keel-worker",
        _ => "keel",
    });
    match cli.command {
        Command::Serve(config) => serve(*config).await,
        Command::Worker(config) => {
            keel::worker::run(&config, shutdown_signal()).await?;
            tracing::info!("worker stopped");
            Ok(())
        }
        Command::FakePayments { listen, behaviour } => {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            tracing::info!(url = %format!("http://{listen}"), ?behaviour, "fake payment provider");
            Ok(fake_payments::serve(listener, behaviour, shutdown_signal()).await?)
        }
        Command::Maintenance { db, retention } => {
            let db = Db::connect(&db)?;
            keel::migrate(&db).await?;
            let done = keel::worker::maintain(&db, &retention).await?;
            tracing::info!(
                created = ?done.partitions.created,
                archived = ?done.partitions.archived,
                dropped = ?done.partitions.dropped,
                processed_deleted = done.processed_deleted,
                applied_events_deleted = done.applied_events_deleted,
                idempotency_keys_deleted = done.idempotency_keys_deleted,
                "maintenance done"
            );
            Ok(())
        }
        Command::Migrate(db) => {
            let applied = keel::migrate(&Db::connect(&db)?).await?;
            tracing::info!(applied, "migrations up to date");
            Ok(())
        }
        Command::Seed { db, sizes } => {
            let db = Db::connect(&db)?;
            keel::migrate(&db).await?;
            keel::seed::seed(&db, sizes)
                .await
                .context("seeding failed")?;
            tracing::info!(products = sizes.products, users = sizes.users, "seeded");
            Ok(())
        }
        Command::Bench(BenchCommand::Run(args)) => {
            let report = bench::run_command(&args).await?;
            // The table is the command's output: stdout, not the log.
            #[allow(clippy::print_stdout)]
            {
                print!("{}", bench::table(&report));
            }
            if report.sale.as_ref().is_some_and(|sale| sale.oversold > 0) {
                anyhow::bail!("the sale oversold: more orders accepted than units");
            }
            Ok(())
        }
        Command::Bench(BenchCommand::Compare(args)) => {
            let comparison = bench::compare::compare(&args).await?;
            #[allow(clippy::print_stdout)]
            {
                print!("{}", bench::compare::table(&comparison));
            }
            Ok(())
        }
        Command::Bench(BenchCommand::ScalingChart(args)) => bench::scaling::scaling_chart(&args),
        Command::Bench(BenchCommand::DelayProxy(args)) => {
            tracing::info!(listen = %args.listen, upstream = args.upstream, delay = ?args.delay, "delay proxy");
            Ok(tokio::task::spawn_blocking(move || bench::delay_proxy::serve(&args)).await??)
        }
        Command::Bench(BenchCommand::Baseline { listen, size }) => {
            Ok(bench::serve_baseline(listen, size, shutdown_signal()).await?)
        }
        Command::Diagnose(args) => {
            let report = diagnose::diagnose(&args).await?;
            let out = if args.json {
                serde_json::to_string_pretty(&report)?
            } else {
                report.to_string()
            };
            // The report is the command's output: stdout, not the log.
            #[allow(clippy::print_stdout)]
            {
                println!("{out}");
            }
            Ok(())
        }
        Command::Projections(ProjectionsCommand::Rebuild(db)) => {
            let db = Db::connect(&db)?;
            keel::migrate(&db).await?;
            let rebuilt = reports::rebuild(&db).await?;
            tracing::info!(
                generation = rebuilt.generation,
                applied = rebuilt.applied,
                caught_up = rebuilt.caught_up,
                orphaned = rebuilt.orphaned,
                took = ?rebuilt.took,
                "read models rebuilt and switched"
            );
            Ok(())
        }
        Command::Dlq(command) => {
            use keel::dead_letters::{Action, line, run};
            let (args, action) = match command {
                DlqCommand::List(args) => (args, Action::List),
                DlqCommand::Replay(args) => (args, Action::Replay),
                DlqCommand::Drop(args) => (args, Action::Drop),
            };
            let letters = run(&args.bus, &args.filter, action).await?;
            // The letters are the command's output: stdout, not the log.
            #[allow(clippy::print_stdout)]
            for letter in &letters {
                println!("{}", line(letter));
            }
            tracing::info!(count = letters.len(), ?action, "dead letters");
            Ok(())
        }
        Command::Probe { .. } => Ok(()),
        Command::Promote { email, db } => {
            let email = accounts::Email::parse(&email).map_err(|e| anyhow::anyhow!("email {e}"))?;
            let db = Db::connect(&db)?;
            let user = accounts::promote_to_admin(&db, &email).await?;
            tracing::info!(user = %user.id, "promoted to admin");
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::build(&config).await?;
    tracing::info!(url = %format!("http://{}", app.local_addr()), "serving");
    app.run_until(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on SIGTERM (how orchestrators stop a process) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received, draining");
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
