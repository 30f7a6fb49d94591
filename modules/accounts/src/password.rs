//! Password hashing with argon2id (the `argon2` crate, PHC strings), on the blocking pool: a hash
//! costs tens of milliseconds of one core and must not stall the async workers.
//!
//! A login for an unknown email verifies the password against a hash of a random password made
//! once with the same parameters ([`Hasher::verify_or_dummy`]), so it costs what a login for a
//! known email costs and its timing does not tell whether the email exists.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::values::Password;

/// argon2id's cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Memory, in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for Cost {
    /// OWASP's first recommendation for argon2id (and the `argon2` crate's default): 19 MiB,
    /// 2 passes, 1 lane.
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl std::fmt::Display for Cost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "argon2id v19, m={} KiB, t={}, p={}",
            self.memory_kib, self.iterations, self.parallelism
        )
    }
}

/// A fresh random salt (16 bytes, argon2's recommended length).
fn salt() -> SaltString {
    let bytes: [u8; 16] = rand::random();
    // 16 bytes are within the PHC salt's length limits: encoding cannot fail.
    SaltString::encode_b64(&bytes).expect("a 16-byte salt encodes")
}

struct Inner {
    argon2: Argon2<'static>,
    dummy: String,
}

/// Hashes and verifies passwords. Cheap to clone.
#[derive(Clone)]
pub struct Hasher(Arc<Inner>);

impl Hasher {
    /// A hasher with `cost`.
    ///
    /// # Errors
    /// When the parameters are out of argon2's range.
    pub fn new(cost: Cost) -> anyhow::Result<Self> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| anyhow::anyhow!("argon2 parameters {cost}: {e}"))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let random: [u8; 32] = rand::random();
        let dummy = argon2
            .hash_password(&random, &salt())
            .map_err(|e| anyhow::anyhow!("hashing: {e}"))?
            .to_string();
        Ok(Self(Arc::new(Inner { argon2, dummy })))
    }

    /// The PHC string of `password` with a fresh salt.
    ///
    /// # Errors
    /// Never for a parsed password (argon2 refuses only absurd lengths).
    pub async fn hash(&self, password: &Password) -> anyhow::Result<String> {
        let this = self.clone();
        let password = password.expose().to_owned();
        tokio::task::spawn_blocking(move || {
            this.0
                .argon2
                .hash_password(password.as_bytes(), &salt())
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("hashing: {e}"))
        })
        .await?
    }

    /// Whether `password` matches `stored`; with no stored hash (an unknown email), the same
    /// work against the dummy hash, answering `false`.
    ///
    /// # Errors
    /// When the blocking pool is gone.
    pub async fn verify_or_dummy(
        &self,
        stored: Option<String>,
        password: &str,
    ) -> anyhow::Result<bool> {
        let this = self.clone();
        let password = password.to_owned();
        Ok(
            tokio::task::spawn_blocking(move || this.verify_blocking(stored.as_deref(), &password))
                .await?,
        )
    }

    /// [`Hasher::verify_or_dummy`] on the calling thread (for measuring the bare cost).
    pub fn verify_blocking(&self, stored: Option<&str>, password: &str) -> bool {
        let known = stored.is_some();
        let hash = stored.unwrap_or(&self.0.dummy);
        let matches = PasswordHash::new(hash).is_ok_and(|parsed| {
            // The parameters recorded in the hash are the ones verified with, so a hash made
            // under older parameters still verifies after the configuration changes.
            self.0
                .argon2
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        });
        known && matches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Hasher {
        Hasher::new(Cost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .expect("valid parameters")
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hasher = cheap();
        let password = Password::parse("correct horse battery".to_owned()).expect("valid");
        let hash = hasher.hash(&password).await.expect("hashed");
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{hash}");
        assert!(hasher
            .verify_or_dummy(Some(hash.clone()), "correct horse battery")
            .await
            .expect("verified"));
        assert!(!hasher
            .verify_or_dummy(Some(hash), "correct horse battery!")
            .await
            .expect("verified"));
    }

    #[tokio::test]
    async fn an_unknown_email_is_verified_against_the_dummy_and_never_matches() {
        let hasher = cheap();
        // The dummy is a real hash of the same parameters: the same work as a known email's.
        assert!(hasher.0.dummy.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(!hasher
            .verify_or_dummy(None, "anything at all")
            .await
            .expect("verified"));
    }

    #[test]
    fn the_default_cost_is_owasps_argon2id() {
        assert_eq!(
            Cost::default().to_string(),
            "argon2id v19, m=19456 KiB, t=2, p=1"
        );
    }
}
