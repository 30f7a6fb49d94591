//! The token secret: configured, or else a development secret generated once and kept in the
//! database so that every process on it (and every restart) signs and checks alike.

use anyhow::{bail, Context as _};
use rand::RngCore;
use sqlx::PgPool;

const DEV_SECRET: &str = "dev_token_secret";

/// The shortest secret questlog signs with: HS256 is only as strong as its key, and a key shorter
/// than the hash it keys (32 bytes) can be guessed from one token offline.
pub const MIN_SECRET_BYTES: usize = 32;

/// The configured secret (`None`: unset, or set to nothing), checked before anything else starts.
///
/// # Errors
/// When it is shorter than [`MIN_SECRET_BYTES`]. The message gives its length, never the secret.
pub fn configured_secret(configured: Option<&str>) -> anyhow::Result<Option<&[u8]>> {
    let Some(secret) = configured.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if secret.len() < MIN_SECRET_BYTES {
        bail!(
            "QUESTLOG_TOKEN_SECRET (--token-secret) is {} bytes long; a token secret must be at \
             least {MIN_SECRET_BYTES} bytes (for example the output of `openssl rand -hex 32`), or \
             unset for a development secret kept in the database",
            secret.len()
        );
    }
    Ok(Some(secret.as_bytes()))
}

/// The secret to sign tokens with.
///
/// # Errors
/// When the configured secret is too short ([`configured_secret`]), or when no secret is
/// configured and the database cannot be read or written.
pub async fn token_secret(configured: Option<&str>, pool: &PgPool) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = configured_secret(configured)? {
        return Ok(secret.to_vec());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_shorter_than_32_bytes_is_refused_without_being_shown() {
        let short = "s3cr3t-but-only-31-bytes-long!!";
        assert_eq!(short.len(), 31);
        let refusal = configured_secret(Some(short)).expect_err("refused");
        let message = refusal.to_string();
        assert!(message.contains("31 bytes long"), "{message}");
        assert!(message.contains("at least 32 bytes"), "{message}");
        assert!(
            !message.contains(short),
            "the message shows the secret: {message}"
        );
    }

    #[test]
    fn a_secret_of_32_bytes_or_more_is_taken_as_it_is() {
        let secret = "x".repeat(32);
        assert_eq!(
            configured_secret(Some(&secret)).ok().flatten(),
            Some(secret.as_bytes())
        );
    }

    #[test]
    fn an_unset_or_empty_secret_leaves_the_choice_to_the_database() {
        assert_eq!(configured_secret(None).ok(), Some(None));
        assert_eq!(configured_secret(Some("")).ok(), Some(None));
    }
}
