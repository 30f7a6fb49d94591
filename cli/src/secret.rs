//! The token secret: configured, or else a development secret generated once and kept in the
//! database so that every process on it (and every restart) signs and checks alike.

use anyhow::Context as _;
use rand::RngCore;
use sqlx::PgPool;

const DEV_SECRET: &str = "dev_token_secret";

/// The secret to sign tokens with.
///
/// # Errors
/// When no secret is configured and the database cannot be read or written.
pub async fn token_secret(configured: Option<&str>, pool: &PgPool) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = configured.filter(|s| !s.is_empty()) {
        return Ok(secret.as_bytes().to_vec());
    }
    let mut fresh = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut fresh);
    sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(DEV_SECRET)
        .bind(hex::encode(fresh))
        .execute(pool)
        .await
        .context("storing the development token secret")?;
    let stored: String = sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
        .bind(DEV_SECRET)
        .fetch_one(pool)
        .await
        .context("reading the development token secret")?;
    tracing::warn!(
        "QUESTLOG_TOKEN_SECRET is not set: tokens are signed with a development secret kept in the \
         database. Set a secret of your own in production."
    );
    Ok(stored.into_bytes())
}
