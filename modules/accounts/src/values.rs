//! The accounts' values, parsed at the edge: past it, an [`Email`], a [`Password`] or a
//! [`Username`] is valid.

use std::collections::HashSet;
use std::sync::LazyLock;

use questlog_domain::Rejection;

/// An email address as given (its case kept for display) and its key: the address lowercased,
/// under which it is unique (`Ada@Example.org` and `ada@example.org` are one account).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub address: String,
    pub key: String,
}

fn invalid_email(why: &str) -> Rejection {
    Rejection::invalid("invalid_email", format!("not an email address: {why}"))
}

impl Email {
    /// Parses an address: `local@domain`, at most 254 characters, the local part 1–64 printable
    /// characters without spaces, the domain two or more dot-separated labels of letters, digits
    /// and `-` (not at a label's ends).
    ///
    /// # Errors
    /// `invalid_email`.
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        if raw.is_empty() || raw.chars().count() > 254 {
            return Err(invalid_email("it is 3 to 254 characters"));
        }
        if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(invalid_email(
                "it holds a space or a control character (NUL included)",
            ));
        }
        let Some((local, domain)) = raw.rsplit_once('@') else {
            return Err(invalid_email("it has no @"));
        };
        if local.is_empty() || local.chars().count() > 64 || local.contains('@') {
            return Err(invalid_email(
                "the part before the @ is 1 to 64 characters without @",
            ));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(invalid_email("the part before the @ has a misplaced dot"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let label_ok = |l: &&str| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if labels.len() < 2 || !labels.iter().all(label_ok) {
            return Err(invalid_email("the domain is not a domain name (host.tld)"));
        }
        Ok(Self {
            address: raw.to_owned(),
            key: raw.to_lowercase(),
        })
    }
}

/// The shortest password accepted, in characters.
pub const MIN_PASSWORD: usize = 8;
/// The longest password accepted, in characters (hashing cost grows with it).
pub const MAX_PASSWORD: usize = 256;

/// The shipped list of common passwords (`common-passwords.txt`), lowercased.
static COMMON: LazyLock<HashSet<String>> = LazyLock::new(|| {
    include_str!("../common-passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_lowercase)
        .collect()
});

/// A password fit to protect an account: [`MIN_PASSWORD`]–[`MAX_PASSWORD`] characters, no NUL,
/// not among common passwords (compared case-insensitively). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(…)")
    }
}

impl Password {
    /// # Errors
    /// `weak_password` when short or common; `invalid_password` when too long or holding a NUL.
    pub fn parse(raw: String) -> Result<Self, Rejection> {
        if raw.contains('\0') {
            return Err(Rejection::invalid(
                "invalid_password",
                "a password cannot hold a NUL character (U+0000)",
            ));
        }
        let length = raw.chars().count();
        if length > MAX_PASSWORD {
            return Err(Rejection::invalid(
                "invalid_password",
                format!("a password is at most {MAX_PASSWORD} characters"),
            ));
        }
        if length < MIN_PASSWORD {
            return Err(Rejection::invalid(
                "weak_password",
                format!("a password is at least {MIN_PASSWORD} characters"),
            ));
        }
        if is_common(&raw) {
            return Err(Rejection::invalid(
                "weak_password",
                "this password is among the most common ones; choose another",
            ));
        }
        Ok(Self(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Whether `password` is on the shipped list of common passwords.
pub fn is_common(password: &str) -> bool {
    COMMON.contains(&password.to_lowercase())
}

/// An account's username: 1–30 of `[A-Za-z0-9_.-]`, unique case-insensitively among accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username {
    pub name: String,
    pub key: String,
}

impl Username {
    /// # Errors
    /// `invalid_username`.
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        let ok = !raw.is_empty()
            && raw.len() <= 30
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !ok {
            return Err(Rejection::invalid(
                "invalid_username",
                "a username is 1 to 30 characters of A-Z, a-z, 0-9, _, . and -",
            ));
        }
        Ok(Self {
            name: raw.to_owned(),
            key: raw.to_lowercase(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ordinary_address_parses_and_its_key_is_lowercase() {
        let email = Email::parse("Ada.Lovelace+games@Example.ORG").expect("valid");
        assert_eq!(email.key, "ada.lovelace+games@example.org");
        assert_eq!(email.address, "Ada.Lovelace+games@Example.ORG");
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for raw in [
            "",
            "ada",
            "@example.org",
            "ada@",
            "ada@example",
            "ada@@example.org",
            "ada@exa mple.org",
            " ada@example.org",
            "ada@example.org\0",
            "ada@-example.org",
            "ada@example..org",
            ".ada@example.org",
            "a..da@example.org",
            "ada@example.org.",
        ] {
            let refused = Email::parse(raw).expect_err(raw);
            assert_eq!(refused.code, "invalid_email", "{raw:?}");
        }
        let long = format!("{}@example.org", "a".repeat(65));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn a_password_under_8_characters_is_weak() {
        let refused = Password::parse("short12".to_owned()).expect_err("7 characters");
        assert_eq!(refused.code, "weak_password");
        assert!(Password::parse("a longer passphrase".to_owned()).is_ok());
    }

    #[test]
    fn a_common_password_is_weak_whatever_its_case() {
        for raw in ["password", "PassWord123", "qwertyuiop", "iloveyou"] {
            let refused = Password::parse(raw.to_owned()).expect_err(raw);
            assert_eq!(refused.code, "weak_password", "{raw}");
        }
    }

    #[test]
    fn a_password_with_a_nul_or_over_256_characters_is_invalid() {
        assert_eq!(
            Password::parse("correct\0horse".to_owned())
                .expect_err("NUL")
                .code,
            "invalid_password"
        );
        assert_eq!(
            Password::parse("x".repeat(257)).expect_err("long").code,
            "invalid_password"
        );
    }

    #[test]
    fn the_shipped_list_is_a_real_list() {
        assert!(COMMON.len() >= 500, "{} entries", COMMON.len());
    }

    #[test]
    fn usernames_follow_the_academys_rule() {
        assert!(Username::parse("ada_l.1-x").is_ok());
        for raw in ["", "ada lovelace", "ada\0", &"a".repeat(31)] {
            assert_eq!(
                Username::parse(raw).expect_err(raw).code,
                "invalid_username"
            );
        }
    }
}
