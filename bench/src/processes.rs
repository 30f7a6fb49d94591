//! questlog's services as separate processes against the same Postgres and NATS: one command API,
//! one relay, one or two projector processes and one, two or four query-api processes, each layout
//! on a store of its own. Command throughput stands beside every service in one process (the same
//! run), push lag spread over the query APIs beside the commands' own latency, and each process's
//! CPU time and memory during the throughput run are printed beside them: on a machine with few
//! cores such a run measures the processes' contention for the same cores as much as scale-out.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::live::{self, Server};
use crate::report::Row;
use crate::setup::{database_url, Env, Store};
use crate::workloads::{command_throughput, command_throughput_sampled, ms, Player};
use crate::Args;

/// The layouts measured: query-api processes and projector processes, always beside one command
/// API and one relay.
const LAYOUTS: [(usize, usize); 3] = [(1, 1), (2, 2), (4, 2)];

/// Clock ticks per second, the unit of `/proc/<pid>/stat`'s CPU times (`sysconf(_SC_CLK_TCK)`,
/// 100 on Linux).
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// How long a layout's query APIs may take to show a command sent now.
const CATCH_UP: Duration = Duration::from_secs(120);

/// Every layout's rows, each beside `env` (every service in this process) measured first.
pub async fn processes_rows(
    args: &Args,
    env: &Env,
    rows: &mut Vec<Row>,
    labs: usize,
) -> anyhow::Result<()> {
    let duration = args.duration();
    eprintln!(
        "every service in one process: command throughput, {} clients, {duration:?}",
        args.clients
    );
    let one = command_throughput(env, args.clients, duration, labs).await?;
    eprintln!("  {one:.0} commands/s");
    // The in-process projectors fold that run's backlog before the processes compete with them.
    caught_up(env, std::slice::from_ref(&env.base), labs).await?;
    for (queries, projectors) in LAYOUTS {
        let name = format!("{queries} query-api + {projectors} projector processes");
        eprintln!("separate processes: 1 command-api, 1 relay, {name}");
        let layout = Layout::start(args, queries, projectors).await?;
        let outcome = layout.measure(args, &name, labs, one).await;
        layout.stop().await;
        rows.extend(outcome?);
    }
    Ok(())
}

/// One of questlog's services in a process of its own.
struct Process {
    /// The service and its number among its kind, e.g. `query-api 2`.
    name: String,
    server: Server,
}

/// The processes of one layout and their store; `env` speaks to the command API process.
struct Layout {
    env: Env,
    processes: Vec<Process>,
}

impl Layout {
    /// Migrates a fresh store, then starts the processes on it, each ready once it printed its
    /// port (built: connected, listening, its background tasks spawned).
    async fn start(args: &Args, queries: usize, projectors: usize) -> anyhow::Result<Self> {
        let store = Store::fresh();
        let url = database_url(&args.database_url, &store.db_name);
        let mut env = Env::remote(args, store, String::new())?;
        let mut processes = Vec::new();
        let started = async {
            // Migrated once, before any process starts, so none of them migrates concurrently.
            questlog::app::prepare_database(&url).await?.close().await;
            let services = [("command-api", 1), ("relay", 1)]
                .into_iter()
                .chain([("projector", projectors), ("query-api", queries)]);
            for (service, count) in services {
                for i in 1..=count {
                    let server =
                        Server::questlog(service, &url, &env.nats_url, &env.prefix).await?;
                    processes.push(Process {
                        name: format!("{service} {i}"),
                        server,
                    });
                }
            }
            anyhow::Ok(())
        }
        .await;
        let layout = match started {
            Ok(()) => {
                env.base = processes
                    .first()
                    .context("no command API process")?
                    .server
                    .base();
                Self { env, processes }
            }
            Err(e) => {
                stop_all(processes).await;
                env.stop().await;
                return Err(e);
            }
        };
        Ok(layout)
    }

    /// The query API processes' base URLs.
    fn queries(&self) -> Vec<String> {
        self.processes
            .iter()
            .filter(|p| p.name.starts_with("query-api"))
            .map(|p| p.server.base())
            .collect()
    }

    async fn measure(
        &self,
        args: &Args,
        name: &str,
        labs: usize,
        one: f64,
    ) -> anyhow::Result<Vec<Row>> {
        let env = &self.env;
        let queries = self.queries();
        let duration = args.duration();
        env.catalog(labs).await?;
        // Ready: a command travels through the relay and the projectors to every query API.
        caught_up(env, &queries, labs).await?;
        let mut watched = Vec::new();
        for p in &self.processes {
            watched.push((p.name.clone(), p.server.pid()?));
        }
        watched.push((
            "questlog-bench (the clients)".to_owned(),
            std::process::id(),
        ));
        eprintln!(
            "  command throughput: {} clients, {duration:?}",
            args.clients
        );
        let (rate, [before, after]) =
            command_throughput_sampled(env, args.clients, duration, labs, || {
                Usage::sample(&watched)
            })
            .await?;
        eprintln!("  {rate:.0} commands/s (every service in one process: {one:.0})");
        print_usage(&watched, &before, &after);

        // The projectors fold the throughput run's backlog before the push lag is measured.
        caught_up(env, &queries, labs).await?;
        let subscribers = if args.quick {
            20
        } else {
            (args.subscribers / 10).max(10)
        };
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let commands = ((args.push_rate * duration.as_secs_f64()) as usize).max(20);
        eprintln!(
            "  push lag: {subscribers} subscribers over {} query-api, {commands} commands at {:.0}/s",
            queries.len(),
            args.push_rate
        );
        let (lag, answered) =
            live::push_lag(env, &queries, subscribers, args.push_rate, commands).await?;
        Ok(vec![
            Row::new(
                &format!("command throughput, {name}"),
                rate,
                "every service in one process (same run)",
                one,
                "/s",
            ),
            Row::new(
                &format!("push lag p99, {subscribers} subscribers, {name}"),
                ms(&lag, 0.99),
                "command p99 (same layout)",
                ms(&answered, 0.99),
                "ms",
            ),
        ])
    }

    /// Stops every process, then removes the store (its database and its stream).
    async fn stop(self) {
        stop_all(self.processes).await;
        self.env.stop().await;
    }
}

async fn stop_all(processes: Vec<Process>) {
    for p in processes {
        p.server.stop().await;
    }
}

/// Waits until every query API at `queries` shows a command sent now to `env`: the relay and the
/// projectors run and have folded what came before it.
async fn caught_up(env: &Env, queries: &[String], labs: usize) -> anyhow::Result<()> {
    let mut player = Player::new(env).await?;
    let position = player.complete_next(env, labs).await?;
    let deadline = Instant::now() + CATCH_UP;
    for base in queries {
        let url = format!(
            "{base}/v1/players/{}?min_position={position}&wait_ms=10000",
            player.id
        );
        loop {
            let answer = env.client.get(&url).bearer_auth(&player.token).send().await;
            match answer {
                Ok(response) if response.status().is_success() => break,
                _ if Instant::now() < deadline => {
                    // Not there yet (the read's own wait ran out) or not answering yet.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(response) => anyhow::bail!(
                    "{base} did not show position {position} in {CATCH_UP:?}: {}",
                    response.status()
                ),
                Err(e) => return Err(e).context(format!("{base} did not answer")),
            }
        }
    }
    Ok(())
}

/// CPU time and memory, read at one moment: of each watched process, and of every Postgres
/// process and nats-server (by name).
struct Usage {
    at: Instant,
    /// CPU seconds (user and system) of each watched process, in order.
    cpu: Vec<Option<f64>>,
    /// Resident memory of each watched process, in bytes.
    rss: Vec<Option<u64>>,
    /// CPU seconds of each `postgres` process, by pid.
    postgres: HashMap<u32, f64>,
    /// CPU seconds of each `nats-server` process, by pid.
    nats: HashMap<u32, f64>,
}

impl Usage {
    fn sample(watched: &[(String, u32)]) -> Self {
        Self {
            at: Instant::now(),
            cpu: watched.iter().map(|(_, pid)| cpu_seconds(*pid)).collect(),
            rss: watched
                .iter()
                .map(|(_, pid)| live::rss(*pid).ok())
                .collect(),
            postgres: cpu_by_name("postgres"),
            nats: cpu_by_name("nats-server"),
        }
    }
}

/// The CPU seconds a process group used between two readings: a process that started between
/// them counts whole; one that ended between them is missed (Postgres backends live as long as
/// the pools' connections, which outlive the run).
fn used(before: &HashMap<u32, f64>, after: &HashMap<u32, f64>) -> f64 {
    after
        .iter()
        .map(|(pid, cpu)| cpu - before.get(pid).copied().unwrap_or(0.0))
        .sum()
}

fn print_usage(watched: &[(String, u32)], before: &Usage, after: &Usage) {
    let wall = after.at.duration_since(before.at).as_secs_f64();
    eprintln!("  CPU during the measured {wall:.1} s (cores = CPU s ÷ wall s), RSS at its end:");
    eprintln!(
        "    {:<30} {:>7} {:>6} {:>8}",
        "process", "CPU s", "cores", "RSS MiB"
    );
    let line = |name: &str, cpu: Option<f64>, rss: Option<u64>| {
        let (cpu, cores) = cpu.map_or_else(
            || ("-".to_owned(), "-".to_owned()),
            |c| (format!("{c:.2}"), format!("{:.2}", c / wall)),
        );
        #[allow(clippy::cast_precision_loss)]
        let rss = rss.map_or_else(
            || "-".to_owned(),
            |r| format!("{:.1}", r as f64 / 1048576.0),
        );
        eprintln!("    {name:<30} {cpu:>7} {cores:>6} {rss:>8}");
    };
    for (i, (name, _)) in watched.iter().enumerate() {
        let cpu = before.cpu[i].zip(after.cpu[i]).map(|(b, a)| a - b);
        line(name, cpu, after.rss[i]);
    }
    line(
        "postgres (every process)",
        Some(used(&before.postgres, &after.postgres)),
        None,
    );
    line(
        "nats-server",
        Some(used(&before.nats, &after.nats)),
        after
            .nats
            .keys()
            .map(|pid| live::rss(*pid).ok())
            .sum::<Option<u64>>(),
    );
}

/// User and system CPU seconds a process has used (every thread), from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    cpu_of_stat(&stat)
}

/// The CPU seconds in one `/proc/<pid>/stat` line: `utime` and `stime`, the 14th and 15th fields,
/// counted after the command name (which may hold spaces and parentheses).
fn cpu_of_stat(stat: &str) -> Option<f64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    #[allow(clippy::cast_precision_loss)]
    let ticks = (utime + stime) as f64;
    Some(ticks / CLOCK_TICKS_PER_SECOND)
}

/// The CPU seconds of every process whose command name is `name`, by pid.
fn cpu_by_name(name: &str) -> HashMap<u32, f64> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let comm = stat.split_once('(')?.1.rsplit_once(')')?.0;
            (comm == name).then_some((pid, cpu_of_stat(&stat)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_after_a_command_name_with_spaces_and_parentheses() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 1 0 0";
        assert_eq!(cpu_of_stat(stat), Some(3.0));
    }
}
