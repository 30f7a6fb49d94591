//! `questlog-bench`: starts questlog (release build) against the machine's Postgres and NATS and
//! measures each workload beside a baseline taken in the same run, reported as ratios.
//!
//! Run: `cargo run --release -p questlog-bench -- [--quick] [--json]`.

mod boards;
mod history;
mod live;
mod logins;
mod peer;
mod processes;
mod report;
mod setup;
mod storage;
mod workloads;

use std::time::Duration;

use clap::Parser;

/// Benchmarks questlog against baselines measured in the same run.
#[derive(Debug, Parser)]
#[command(name = "questlog-bench")]
pub struct Args {
    /// A short smoke run (CI): small durations and counts.
    #[arg(long)]
    pub quick: bool,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Postgres maintenance URL (scratch databases are created from it and dropped after).
    #[arg(
        long,
        env = "QUESTLOG_BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub database_url: String,
    /// NATS URL.
    #[arg(
        long,
        env = "QUESTLOG_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats_url: String,
    /// Concurrent clients for the throughput workloads.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Seconds each throughput run lasts (after a warm-up of a third of it).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Run only the command API (no relay, projectors or query API competing for the cores):
    /// the write side's own ceiling. The read-side figures are skipped.
    #[arg(long)]
    pub write_only: bool,
    /// Commands in the visibility (commit → read model) run.
    #[arg(long, default_value_t = 1000)]
    pub visibility_commands: usize,
    /// Subscribers following the commands in the push-lag run.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Commands per second while the push-lag subscribers listen.
    #[arg(long, default_value_t = 10.0)]
    pub push_rate: f64,
    /// Idle subscribers held by one query-api process in the fan-out run.
    #[arg(long, default_value_t = 10_000)]
    pub idle_subscribers: usize,
    /// Events in the generated log of the history workloads (rebuild, as-of reads).
    #[arg(long, default_value_t = 1_000_000)]
    pub history_events: i64,
    /// Objects in the storage group's listed collection.
    #[arg(long, default_value_t = 100_000)]
    pub storage_objects: usize,
    /// Entries on the boards group's read board.
    #[arg(long, default_value_t = 100_000)]
    pub board_entries: usize,
    /// Run one group of workloads only: `commands` (throughput and latency), `visibility`,
    /// `live` (push lag and fan-out), `history` (rebuild and as-of reads), `logins` (account logins
    /// per second against bare argon2id), `storage` (`put_object`, a listing of 100,000
    /// objects, a large object written 1,000 times) or `boards` (`submit_score`, a board of
    /// 100,000 entries, commands during a retroactive achievement award over the history log) or
    /// `processes` (the services as separate processes: command throughput, push lag over one,
    /// two and four query-api processes, each process's CPU time).
    #[arg(long)]
    pub only: Option<String>,
    /// Internal: serve instead of measuring: `baseline` (the bare SSE server) or one of questlog's
    /// services (`command-api`, `relay`, `projector`, `query-api`), for the runs that measure
    /// server processes of their own.
    #[arg(long, hide = true)]
    pub serve: Option<String>,
    /// Internal: the NATS prefix of the served service.
    #[arg(long, hide = true, default_value = "")]
    pub serve_prefix: String,
}

impl Args {
    /// Whether the group of workloads `name` runs.
    pub fn runs(&self, name: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == name)
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs(if self.quick { 2 } else { self.seconds })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(mode) = &args.serve {
        return serve(mode, &args).await;
    }
    let mut results = Vec::new();
    let env = setup::Env::start(&args).await?;
    let outcome = workloads::run_all(&args, &env, &mut results).await;
    env.stop().await;
    outcome?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        report::table(&results);
    }
    Ok(())
}

/// The server processes of the runs that measure questlog across processes: the bare SSE
/// baseline, or one of questlog's services (`command-api`, `relay`, `projector`, `query-api`) on
/// the store `--database-url`, `--nats-url` and `--serve-prefix` name, whose database is already
/// migrated. Every service binds a port (its health and metrics routes, with its own routes when
/// it has any) and prints it once it is built, then serves until killed.
async fn serve(mode: &str, args: &Args) -> anyhow::Result<()> {
    use clap::ValueEnum as _;
    use questlog::config::Service;
    if mode == "baseline" {
        return live::serve_baseline().await;
    }
    let service = Service::from_str(mode, false)
        .map_err(|_| anyhow::anyhow!("unknown serving mode {mode:?}"))?;
    let store = questlog::config::StoreArgs {
        database_url: args.database_url.clone(),
        nats_url: args.nats_url.clone(),
        nats_prefix: args.serve_prefix.clone(),
        token_secret: Some(setup::SECRET.to_owned()),
        token_ttl_days: 1,
    };
    let mut serve = setup::serve_args(Some(service))?;
    if service != Service::CommandApi {
        // The command API keeps the default pool: it is the one a client load queues on.
        serve.db_pool = 4;
    }
    let app =
        questlog::Application::build(&store, &serve, tokio_util::sync::CancellationToken::new())
            .await?;
    println!("listening on 127.0.0.1:{}", app.port());
    app.run().await
}
