//! `questlog-bench`: starts questlog (release build) against the machine's Postgres and NATS and
//! measures each workload beside a baseline taken in the same run, reported as ratios.
//!
//! Run: `cargo run --release -p questlog-bench -- [--quick] [--json]`.

mod report;
mod setup;
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
}

impl Args {
    fn duration(&self) -> Duration {
        Duration::from_secs(if self.quick { 2 } else { self.seconds })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
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
