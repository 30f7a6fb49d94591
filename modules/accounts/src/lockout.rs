//! Repeated failed logins lock an email for a while: after `max_failures` attempts that did not
//! succeed within `window`, every attempt is refused (429 `locked`, `Retry-After`) until the
//! oldest of them leaves the window, whether the email has an account or not (so the lock says
//! nothing about it either).
//!
//! An attempt is recorded *before* its password is checked, under a transaction-scoped advisory
//! lock on the email: parallel guesses are counted as they start, so no burst of concurrent
//! requests gets more than `max_failures` checks in. A success deletes the email's attempts.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// The lockout rule and its table (`account_login_attempts`).
#[derive(Clone)]
pub struct Lockout {
    pool: PgPool,
    pub max_failures: i64,
    pub window: Duration,
}

/// An attempt allowed to check its password.
#[derive(Debug, Clone, Copy)]
pub struct Attempt(());

impl Lockout {
    pub fn new(pool: PgPool, max_failures: u32, window: Duration) -> Self {
        Self {
            pool,
            max_failures: i64::from(max_failures.max(1)),
            window,
        }
    }

    /// Records an attempt for `email_key` at `now`, or says how many seconds the email stays
    /// locked.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn begin(
        &self,
        email_key: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<Attempt, u64>, sqlx::Error> {
        let since = now - self.window;
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('account-login:' || $1, 0))")
            .bind(email_key)
            .execute(&mut *tx)
            .await?;
        let recent: Vec<(DateTime<Utc>,)> = sqlx::query_as(
            "SELECT attempted_at FROM account_login_attempts \
             WHERE email_key = $1 AND attempted_at > $2 \
             ORDER BY attempted_at DESC LIMIT $3",
        )
        .bind(email_key)
        .bind(since)
        .bind(self.max_failures)
        .fetch_all(&mut *tx)
        .await?;
        if i64::try_from(recent.len()).unwrap_or(i64::MAX) >= self.max_failures {
            // Unlocked when the oldest of the last `max_failures` attempts leaves the window.
            let oldest = recent.last().map_or(now, |(at,)| *at);
            let left = (oldest + self.window - now).num_milliseconds().max(1);
            let secs = u64::try_from((left + 999) / 1000).unwrap_or(1);
            tx.rollback().await?;
            return Ok(Err(secs));
        }
        let attempt = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO account_login_attempts (attempt_id, email_key, attempted_at) \
             VALUES ($1, $2, $3)",
        )
        .bind(attempt)
        .bind(email_key)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // What left the window is forgotten, a few rows per attempt.
        sqlx::query(
            "DELETE FROM account_login_attempts WHERE attempt_id IN \
             (SELECT attempt_id FROM account_login_attempts WHERE attempted_at <= $1 LIMIT 100)",
        )
        .bind(since)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(Attempt(())))
    }

    /// The attempt succeeded: the email's failures are forgiven.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn succeeded(&self, email_key: &str, _attempt: Attempt) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM account_login_attempts WHERE email_key = $1")
            .bind(email_key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
