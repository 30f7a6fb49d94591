//! The store's errors: a conflict the caller can retry, the store being unreachable, or a fault.

/// Why an operation on the log failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An expectation failed or an idempotency key was taken meanwhile; nothing was written.
    #[error("append conflict: {}", .0.join("; "))]
    Conflict(Vec<String>),
    /// The database cannot be reached right now; retrying later may work.
    #[error("the event store is unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// A stored event this build cannot read back.
    #[error("cannot decode a stored event: {0}")]
    Decode(String),
    /// Anything else: a bug or a broken database.
    #[error("event store failure")]
    Database(#[source] sqlx::Error),
}

impl StoreError {
    /// Sorts an sqlx error into unavailable (connection-level) or a database fault.
    pub fn from_sqlx(err: sqlx::Error) -> Self {
        if let Some(claims) = beside_conflicts(&err) {
            return Self::Conflict(claims);
        }
        if is_unavailable(&err) {
            Self::Unavailable(err)
        } else {
            Self::Database(err)
        }
    }

    /// Whether the database refused the statement itself: a value it cannot store, a constraint, a
    /// trigger (SQLSTATE classes 22 and 23, and any other error the server reports for the
    /// statement). The transaction was rolled back, so nothing was written and the work may be
    /// done again without whatever caused it. A connection that broke is
    /// [`StoreError::Unavailable`] instead, and a fault after the server answered (reading the
    /// result) is not a refusal: the statement may have committed.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Database(sqlx::Error::Database(_)))
    }

    /// The names of the conflicting streams or keys, when this is a conflict.
    pub fn conflicts(&self) -> Option<&[String]> {
        match self {
            Self::Conflict(c) => Some(c),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        Self::from_sqlx(err)
    }
}

/// The SQLSTATE with which an append reports claims made beside the log that no longer hold (one
/// per line of the message); nothing of the batch was written.
pub const BESIDE_CONFLICT: &str = "QL409";

fn beside_conflicts(err: &sqlx::Error) -> Option<Vec<String>> {
    match err {
        sqlx::Error::Database(db) if db.code().as_deref() == Some(BESIDE_CONFLICT) => {
            Some(db.message().lines().map(str::to_owned).collect())
        }
        _ => None,
    }
}

/// Whether an sqlx error means the database is out of reach (as opposed to a query's fault).
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 57P0x: shutdown / cannot connect now; 53300: too many connections.
            code.starts_with("08") || code.starts_with("57P") || code == "53300"
        }),
        _ => false,
    }
}
