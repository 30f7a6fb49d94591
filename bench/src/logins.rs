//! Logins per second: `POST /v1/accounts/login` by many clients at once, each with its own
//! account, beside the bare cost of argon2id on this machine (verifications on every core, in the
//! same run), so an operator can size the login tier for the argon2 parameters it runs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use questlog_accounts::{Cost, Hasher};
use serde_json::json;

use crate::report::Row;
use crate::setup::Env;
use crate::workloads::{histogram, micros};
use crate::Args;

const PASSWORD: &str = "a long and unusual bench passphrase";

/// The login rows.
pub async fn login_rows(args: &Args, env: &Env, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let cost = Cost::default();
    let duration = args.duration();
    let clients = args.clients.min(32);
    eprintln!("logins: {clients} clients, {duration:?}, {cost}");
    let mut emails = Vec::with_capacity(clients);
    for i in 0..clients {
        let email = format!("bench{i}-{}@example.org", uuid::Uuid::new_v4().simple());
        let response = env
            .client
            .post(format!("{}/v1/accounts/register", env.base))
            .json(&json!({ "email": email, "password": PASSWORD }))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().as_u16() == 201,
            "registering a bench account answered {}",
            response.status()
        );
        emails.push(email);
    }
    let (logins, latency) = logins(env, &emails, duration).await?;
    eprintln!(
        "  {logins:.0} logins/s, p50 {:.1} ms, p99 {:.1} ms",
        ms(&latency, 0.5),
        ms(&latency, 0.99)
    );
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let verifies = bare_verifications(cost, cores, duration).await?;
    eprintln!("  bare argon2id: {verifies:.0} verifications/s on {cores} cores");
    rows.push(Row::new(
        &format!("logins (POST /v1/accounts/login, {clients} clients; {cost})"),
        logins,
        &format!("bare argon2id verifications on {cores} cores"),
        verifies,
        "/s",
    ));
    rows.push(Row::new(
        "login latency p99 at full load",
        ms(&latency, 0.99),
        "login latency p50",
        ms(&latency, 0.5),
        "ms",
    ));
    Ok(())
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let v = h.value_at_quantile(q) as f64;
    v / 1000.0
}

async fn logins(
    env: &Env,
    emails: &[String],
    duration: Duration,
) -> anyhow::Result<(f64, Histogram<u64>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for email in emails {
        let (client, url, email) = (
            env.client.clone(),
            format!("{}/v1/accounts/login", env.base),
            email.clone(),
        );
        let (stop, done) = (stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut latency = histogram();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let response = client
                    .post(&url)
                    .json(&json!({ "email": email, "password": PASSWORD }))
                    .send()
                    .await?;
                anyhow::ensure!(
                    response.status().as_u16() == 200,
                    "a bench login answered {}",
                    response.status()
                );
                let _ = response.bytes().await?;
                latency.record(micros(started.elapsed())).ok();
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(latency)
        }));
    }
    // A third of the run warms up, then the rest is measured.
    tokio::time::sleep(duration / 3).await;
    let from = done.load(Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    let counted = done.load(Ordering::Relaxed) - from;
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut latency = histogram();
    for task in tasks {
        latency.add(task.await.context("a login client")??).ok();
    }
    #[allow(clippy::cast_precision_loss)]
    Ok((counted as f64 / elapsed.as_secs_f64(), latency))
}

/// argon2id verifications per second with `cost`, one thread per core, for `duration`.
async fn bare_verifications(cost: Cost, cores: usize, duration: Duration) -> anyhow::Result<f64> {
    let hasher = Hasher::new(cost)?;
    let password = questlog_accounts::values::Password::parse(PASSWORD.to_owned())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let hash = hasher.hash(&password).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..cores)
        .map(|_| {
            let (hasher, hash, stop, done) =
                (hasher.clone(), hash.clone(), stop.clone(), done.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    assert!(hasher.verify_blocking(Some(&hash), PASSWORD));
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    let counted = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        let _ = thread.join();
    }
    #[allow(clippy::cast_precision_loss)]
    Ok(counted as f64 / elapsed.as_secs_f64())
}
