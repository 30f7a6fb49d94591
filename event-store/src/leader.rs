//! Leadership among replicas: a Postgres session advisory lock held by one connection. The leader
//! does its database work on that same connection, so losing the connection both ends the work and
//! frees the lock for a standby.

use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;

/// The lock key of a role (`relay`, `projector:<projection>`, …): a stable 64-bit hash of its name.
pub fn lock_key(role: &str) -> i64 {
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in role.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// Waits until this process holds the lock for `role`, retrying every `retry`. Returns the
/// connection that holds it, or `None` when `shutdown` fires first.
pub async fn acquire(
    database_url: &str,
    role: &str,
    retry: Duration,
    shutdown: &CancellationToken,
) -> Option<PgConnection> {
    let options = match database_url.parse::<PgConnectOptions>() {
        Ok(options) => options,
        Err(e) => {
            tracing::error!(role, error = %e, "not a database URL: cannot elect a leader");
            shutdown.cancelled().await;
            return None;
        }
    };
    acquire_while(&options, role, retry, shutdown, || true).await
}

/// As [`acquire`], on connections made with `options`, trying for the lock only while
/// `may_lead` says this process may take one more role (it leads its share of them and leaves
/// the rest to the other replicas).
pub async fn acquire_while(
    options: &PgConnectOptions,
    role: &str,
    retry: Duration,
    shutdown: &CancellationToken,
    may_lead: impl Fn() -> bool,
) -> Option<PgConnection> {
    let key = lock_key(role);
    loop {
        if may_lead() {
            let attempt = async {
                let mut conn = PgConnection::connect_with(options).await?;
                let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(key)
                    .fetch_one(&mut conn)
                    .await?;
                Ok::<_, sqlx::Error>(got.then_some(conn))
            };
            match attempt.await {
                Ok(Some(conn)) => {
                    tracing::info!(role, "leadership acquired");
                    return Some(conn);
                }
                Ok(None) => tracing::debug!(role, "another replica leads; standing by"),
                Err(e) => {
                    tracing::warn!(role, error = %e, "cannot reach Postgres to elect a leader");
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
            () = shutdown.cancelled() => return None,
        }
    }
}
