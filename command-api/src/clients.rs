//! Who is calling, by network address, for limits that must hold before any identity exists
//! (creating anonymous identities): the peer's address, or — behind a reverse proxy — the
//! address the configured trusted header carries. No other header is ever believed, so a client
//! cannot pick its own address unless the operator said the header is the proxy's.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::HeaderName;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// How the client's address is found.
#[derive(Debug, Clone, Default)]
pub struct ClientAddresses {
    /// The header the trusted reverse proxy sets (`X-Forwarded-For`, `X-Real-IP`, …); `None`
    /// when clients connect directly.
    pub trusted_header: Option<HeaderName>,
}

impl ClientAddresses {
    /// The client's address: the last address of the trusted header (the one the proxy itself
    /// appended; earlier ones were sent by the client and prove nothing), else the peer's.
    pub fn of(&self, parts: &Parts) -> Option<IpAddr> {
        if let Some(header) = &self.trusted_header {
            let proxied = parts
                .headers
                .get_all(header)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|a| parse_address(a.trim()))
                .next_back();
            if proxied.is_some() {
                return proxied;
            }
        }
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip())
    }
}

/// An address as proxies write it: `203.0.113.7`, `2001:db8::1`, `[2001:db8::1]:443`,
/// `203.0.113.7:5000`.
fn parse_address(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// How often (in checks) the limiter forgets addresses whose allowance is full again.
const FORGET_EVERY: u64 = 4096;

/// A rate limit per client address (a GCRA per address, no queue).
pub struct AddressLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
    checks: AtomicU64,
}

impl AddressLimiter {
    /// `per_minute` on average per address, `burst` at once.
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

    /// Takes one of `address`'s allowance, or says how long until there is one.
    ///
    /// # Errors
    /// The wait until the address may try again.
    pub fn check(&self, address: IpAddr) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == FORGET_EVERY - 1 {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&address)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// Whole seconds to wait, rounded up (for `Retry-After`).
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(headers: &[(&str, &str)], peer: Option<&str>) -> Parts {
        let mut request = Request::builder().uri("/v1/identity");
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let (mut parts, ()) = request.body(()).expect("request").into_parts();
        if let Some(peer) = peer {
            parts
                .extensions
                .insert(ConnectInfo(peer.parse::<SocketAddr>().expect("address")));
        }
        parts
    }

    #[test]
    fn without_a_trusted_header_only_the_peer_counts() {
        let direct = ClientAddresses::default();
        let p = parts(
            &[("x-forwarded-for", "198.51.100.1")],
            Some("192.0.2.9:4000"),
        );
        assert_eq!(direct.of(&p), "192.0.2.9".parse().ok());
    }

    #[test]
    fn behind_a_proxy_the_last_address_of_the_trusted_header_counts() {
        let proxied = ClientAddresses {
            trusted_header: Some(HeaderName::from_static("x-forwarded-for")),
        };
        let p = parts(
            &[
                ("x-forwarded-for", "10.0.0.1, 198.51.100.1"),
                ("x-real-ip", "1.2.3.4"),
            ],
            Some("192.0.2.9:4000"),
        );
        assert_eq!(proxied.of(&p), "198.51.100.1".parse().ok());
        let p = parts(&[], Some("192.0.2.9:4000"));
        assert_eq!(proxied.of(&p), "192.0.2.9".parse().ok());
        let p = parts(&[("x-forwarded-for", "[2001:db8::1]:443")], None);
        assert_eq!(proxied.of(&p), "2001:db8::1".parse().ok());
    }

    #[test]
    fn an_address_gets_its_burst_then_waits_and_others_are_untouched() {
        let limits = AddressLimiter::new(
            NonZeroU32::new(60).expect("positive"),
            NonZeroU32::new(2).expect("positive"),
        );
        let (a, b): (IpAddr, IpAddr) = (
            "192.0.2.1".parse().expect("ip"),
            "192.0.2.2".parse().expect("ip"),
        );
        assert!(limits.check(a).is_ok());
        assert!(limits.check(a).is_ok());
        assert!(limits.check(a).is_err());
        assert!(limits.check(b).is_ok());
    }
}
