//! `TokenBucket`: a rate with bursts, kept as one integer timestamp.
//!
//! Written here rather than taken from `governor` because the engine owns the clock: a
//! worker reads the time once per loop turn and hands it to every limiter, and a limiter
//! must be a plain value it can keep per address without atomics or a clock source.
//!
//! The bucket is the generic cell rate algorithm (GCRA): instead of a token count that is
//! topped up (and rounded) on every call, it keeps the "theoretical arrival time" `tat` at
//! which the bucket would next be empty of debt. A take at time `t` is allowed while
//! `max(tat, t) - t <= (burst - 1) * interval`, and pushes `tat` one interval further.
//! Time is counted in 2^-20 ns since the first take, as integers, so long runs do not
//! drift: the only rounding is of `interval` itself, below one part in a billion for any
//! rate up to a million per second.

use std::time::{Duration, Instant};

/// Time units per nanosecond (`tat` and `interval` are in 2^-20 ns).
const UNITS_PER_NANO: u128 = 1 << 20;
/// Time units per second.
const UNITS_PER_SEC: f64 = 1e9 * UNITS_PER_NANO as f64;

/// Why a [`TokenBucket`] could not be built.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimitError {
    /// The rate is not a finite number above zero, or is too high to time (above about
    /// 10^15 per second).
    #[error("a rate of {0} per second is not a positive finite rate")]
    Rate(f64),
    /// A burst of zero would never admit anything.
    #[error("a burst of 0 would never admit anything")]
    ZeroBurst,
}

/// A rate limit: on average `rate` takes per second, with up to `burst` at once.
///
/// A new bucket is full: its first `burst` takes succeed at once, after which one more
/// succeeds every `1 / rate` seconds; time not used fills the bucket again, up to `burst`.
/// Over any span of `s` seconds from a full bucket it admits at most `rate * s + burst`.
/// There is no clock inside: every call gets `now`, which should not go backwards; if it
/// does, the bucket only gets stricter (an earlier `now` sees less refill), never looser.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: u32,
    /// Time units per token: `1 / rate` seconds.
    interval: u128,
    /// The `now` of the first take; `tat` counts from it.
    origin: Option<Instant>,
    /// Theoretical arrival time, in units since `origin`.
    tat: u128,
}

impl TokenBucket {
    /// A full bucket allowing `rate` takes per second on average and `burst` at once.
    pub fn new(rate: f64, burst: u32) -> Result<TokenBucket, RateLimitError> {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(RateLimitError::Rate(rate));
        }
        // `as` saturates: a tiny rate gives a huge (but valid) interval.
        let interval = (UNITS_PER_SEC / rate).round() as u128;
        if interval == 0 {
            return Err(RateLimitError::Rate(rate));
        }
        if burst == 0 {
            return Err(RateLimitError::ZeroBurst);
        }
        Ok(TokenBucket {
            rate,
            burst,
            interval,
            origin: None,
            tat: 0,
        })
    }

    /// The average rate, per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The most takes that succeed at once (the bucket's size).
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Takes one token if there is one at `now`.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let origin = *self.origin.get_or_insert(now);
        let t = units_since(origin, now);
        let tat = self.tat.max(t);
        if tat - t > self.tolerance() {
            return false;
        }
        self.tat = tat.saturating_add(self.interval);
        true
    }

    /// How many takes would succeed at `now`, one after the other.
    pub fn available(&self, now: Instant) -> u32 {
        let debt = self.debt(now);
        // Each whole or partial interval of debt is one token missing.
        let missing = debt.div_ceil(self.interval);
        let missing = u32::try_from(missing).unwrap_or(u32::MAX);
        self.burst.saturating_sub(missing)
    }

    /// Whether the bucket holds all `burst` tokens at `now` (it then behaves exactly like
    /// a new bucket, so a caller may drop it and make a new one later).
    pub fn is_full(&self, now: Instant) -> bool {
        self.debt(now) == 0
    }

    /// How long an empty bucket takes to become full again (`burst / rate`, rounded up to
    /// the nanosecond).
    pub fn refill_time(&self) -> Duration {
        let units = self.interval.saturating_mul(u128::from(self.burst));
        let nanos = units.div_ceil(UNITS_PER_NANO);
        let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
        // The remainder is below 10^9, so it fits.
        let sub = (nanos % 1_000_000_000) as u32;
        Duration::new(secs, sub)
    }

    /// How far `tat` is ahead of `now`, in units (0 when full).
    fn debt(&self, now: Instant) -> u128 {
        match self.origin {
            None => 0,
            Some(origin) => self.tat.saturating_sub(units_since(origin, now)),
        }
    }

    /// How far ahead of `now` `tat` may be for a take to succeed.
    fn tolerance(&self) -> u128 {
        self.interval.saturating_mul(u128::from(self.burst - 1))
    }
}

/// Time units from `origin` to `now` (0 if `now` is earlier).
fn units_since(origin: Instant, now: Instant) -> u128 {
    now.saturating_duration_since(origin)
        .as_nanos()
        .saturating_mul(UNITS_PER_NANO)
}
