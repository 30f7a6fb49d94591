//! The per-sender limit on the commands a module marks rate-limited
//! ([`questlog_domain::Command::rate_limited`]): a sender flooding them is refused with 429 and
//! `Retry-After`, in this process, without slowing anyone else (a GCRA per sender, no queue).

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

/// How often (in checks) the limiter forgets senders whose allowance is full again, so its memory
/// follows the active senders only.
const FORGET_EVERY: u64 = 4096;

/// One allowance per sender, shared by every rate-limited command.
pub struct SenderLimiter {
    limiter: DefaultKeyedRateLimiter<Uuid>,
    clock: DefaultClock,
    checks: AtomicU64,
}

impl SenderLimiter {
    /// `per_minute` rate-limited commands a minute per sender on average, `burst` at once.
    pub fn new(per_minute: NonZeroU32, burst: NonZeroU32) -> Self {
        let clock = DefaultClock::default();
        Self {
            limiter: RateLimiter::dashmap_with_clock(
                Quota::per_minute(per_minute).allow_burst(burst),
                clock.clone(),
            ),
            clock,
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one rate-limited command of `sender`'s allowance, or says how long until there is one.
    ///
    /// # Errors
    /// The wait until the sender may send again.
    pub fn check(&self, sender: Uuid) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == FORGET_EVERY - 1 {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&sender)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_minute: u32, burst: u32) -> SenderLimiter {
        SenderLimiter::new(
            NonZeroU32::new(per_minute).expect("positive"),
            NonZeroU32::new(burst).expect("positive"),
        )
    }

    #[test]
    fn a_sender_gets_its_burst_then_waits() {
        let limits = limiter(60, 3);
        let ada = Uuid::from_u128(1);
        for _ in 0..3 {
            assert!(limits.check(ada).is_ok());
        }
        let wait = limits.check(ada).expect_err("the burst is spent");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
    }

    #[test]
    fn one_sender_flooding_leaves_the_others_their_allowance() {
        let limits = limiter(60, 2);
        let (ada, bob) = (Uuid::from_u128(1), Uuid::from_u128(2));
        while limits.check(ada).is_ok() {}
        assert!(limits.check(bob).is_ok());
        assert!(limits.check(bob).is_ok());
    }
}
