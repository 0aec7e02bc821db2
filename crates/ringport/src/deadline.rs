//! Durations too long to mean anything but "never", and deadlines that cannot overflow.
//!
//! Every duration the API takes (timeouts, timers, connect and shutdown deadlines, bans)
//! may be anything up to `Duration::MAX`. Adding such a duration to an `Instant` panics,
//! and turning it into microseconds or a kernel timespec wraps; so the engine reads any
//! duration at or beyond [`NEVER`] as "never", and clamps what it hands to the kernel.

use std::time::{Duration, Instant};

/// A hundred years: at or beyond this a duration means "never".
pub(crate) const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The instant `d` after `now`, or `None` for never (`d` at or beyond [`NEVER`], or past
/// what an `Instant` can hold).
pub(crate) fn after(now: Instant, d: Duration) -> Option<Instant> {
    if d >= NEVER {
        None
    } else {
        now.checked_add(d)
    }
}

/// `d`, or [`NEVER`] if it is longer: a duration every backend can wait for (a kernel
/// timespec, an epoll timeout, an `Instant` sum) without overflowing.
pub(crate) fn clamp(d: Duration) -> Duration {
    d.min(NEVER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_past_never_have_no_deadline() {
        let now = Instant::now();
        assert_eq!(after(now, Duration::MAX), None);
        assert_eq!(after(now, NEVER), None);
        let d = Duration::from_secs(5);
        assert_eq!(after(now, d), Some(now + d));
        assert_eq!(clamp(Duration::MAX), NEVER);
        assert_eq!(clamp(d), d);
        // What the backends do with a clamped duration must not overflow.
        let _ = now + clamp(Duration::MAX);
    }
}
