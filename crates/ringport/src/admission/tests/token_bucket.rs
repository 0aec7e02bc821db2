use crate::admission::{RateLimitError, TokenBucket};
use proptest::prelude::*;
use std::time::{Duration, Instant};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Polls every `step` for `span` (both ends included), taking as many tokens as there are
/// at each poll; returns the total taken.
fn drain_polling(bucket: &mut TokenBucket, t0: Instant, step: Duration, span: Duration) -> u64 {
    let mut taken = 0;
    let mut t = Duration::ZERO;
    while t <= span {
        while bucket.try_take(t0 + t) {
            taken += 1;
        }
        t += step;
    }
    taken
}

#[test]
fn three_seconds_at_100_per_second_burst_20_admit_320_at_most() {
    let t0 = Instant::now();
    let limit = 100 * 3 + 20;
    // Taking everything available at each 1 ms poll.
    let mut bucket = TokenBucket::new(100.0, 20).unwrap();
    let taken = drain_polling(&mut bucket, t0, ms(1), Duration::from_secs(3));
    assert!(taken <= limit && taken * 100 >= limit * 95, "{taken}");
    assert_eq!(
        taken, limit,
        "polling covers the whole span, so nothing is lost"
    );
    // Taking at most one per 1 ms poll.
    let mut bucket = TokenBucket::new(100.0, 20).unwrap();
    let taken = (0..=3000).filter(|&i| bucket.try_take(t0 + ms(i))).count() as u64;
    assert!(taken <= limit && taken * 100 >= limit * 95, "{taken}");
}

#[test]
fn a_new_bucket_is_full_then_refills_one_per_interval() {
    let t0 = Instant::now();
    let mut bucket = TokenBucket::new(10.0, 5).unwrap();
    assert!(bucket.is_full(t0));
    assert_eq!(bucket.available(t0), 5);
    assert_eq!((0..10).filter(|_| bucket.try_take(t0)).count(), 5);
    assert_eq!(bucket.available(t0), 0);
    assert!(!bucket.try_take(t0 + ms(99)));
    assert!(bucket.try_take(t0 + ms(100)));
    assert!(!bucket.try_take(t0 + ms(100)));
    assert_eq!(bucket.available(t0 + ms(350)), 2);
    assert!(!bucket.is_full(t0 + ms(599)));
    assert!(bucket.is_full(t0 + ms(600)));
    assert_eq!(
        bucket.available(t0 + ms(10_000)),
        5,
        "never more than the burst"
    );
    assert_eq!(bucket.refill_time(), ms(500));
}

#[test]
fn unused_time_refills_the_bucket_but_not_beyond_the_burst() {
    let t0 = Instant::now();
    let mut bucket = TokenBucket::new(1.0, 3).unwrap();
    assert!((0..3).all(|_| bucket.try_take(t0)));
    let later = t0 + Duration::from_secs(3600);
    assert_eq!((0..10).filter(|_| bucket.try_take(later)).count(), 3);
}

#[test]
fn long_runs_at_awkward_rates_do_not_drift() {
    let t0 = Instant::now();
    // 3 per second for an hour, polled every millisecond: 1/3 s is not a whole number of
    // nanoseconds, so per-call rounding would show up here.
    let mut bucket = TokenBucket::new(3.0, 2).unwrap();
    let taken = drain_polling(&mut bucket, t0, ms(1), Duration::from_secs(3600));
    assert_eq!(taken, 3 * 3600 + 2);
    // 999,983 per second for 7 s, polled every microsecond (a burst of 2, so the bucket
    // can hold the fraction of a token that builds up between polls).
    let mut bucket = TokenBucket::new(999_983.0, 2).unwrap();
    let taken = drain_polling(
        &mut bucket,
        t0,
        Duration::from_micros(1),
        Duration::from_secs(7),
    );
    assert!(taken.abs_diff(999_983 * 7 + 2) <= 1, "{taken}");
    // Half a token per second: one every two seconds.
    let mut bucket = TokenBucket::new(0.5, 1).unwrap();
    let taken = drain_polling(&mut bucket, t0, ms(100), Duration::from_secs(100));
    assert_eq!(taken, 51);
}

#[test]
fn a_clock_going_backwards_never_admits_more() {
    let t0 = Instant::now();
    let mut bucket = TokenBucket::new(10.0, 1).unwrap();
    assert!(bucket.try_take(t0 + ms(1000)));
    // Earlier than the first take, and earlier than the last.
    assert!(!bucket.try_take(t0));
    assert!(!bucket.try_take(t0 + ms(1050)));
    assert!(bucket.try_take(t0 + ms(1100)));
}

#[test]
fn bad_rates_and_an_empty_burst_are_refused() {
    for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e300] {
        assert!(
            matches!(TokenBucket::new(rate, 1), Err(RateLimitError::Rate(_))),
            "{rate}"
        );
    }
    assert_eq!(
        TokenBucket::new(1.0, 0).unwrap_err(),
        RateLimitError::ZeroBurst
    );
    // Extreme but valid rates work.
    let t0 = Instant::now();
    let mut slow = TokenBucket::new(1e-12, 1).unwrap();
    assert!(slow.try_take(t0));
    assert!(!slow.try_take(t0 + Duration::from_secs(1_000_000)));
    let mut fast = TokenBucket::new(1e14, 1).unwrap();
    assert!(fast.try_take(t0));
    assert!(fast.try_take(t0 + Duration::from_nanos(1)));
    assert_eq!(fast.rate(), 1e14);
    assert_eq!(fast.burst(), 1);
}

proptest! {
    /// Between any two polls at times a <= b, the takes at those polls and the ones
    /// between number at most rate * (b - a) + burst; and draining at every poll takes
    /// what a fluid model (tokens flow in at `rate`, capped at `burst`) says, give or
    /// take the last token's rounding.
    #[test]
    fn no_window_exceeds_rate_times_span_plus_burst(
        rate in 0.5f64..5_000.0,
        burst in 1u32..50,
        steps in prop::collection::vec((0u64..20_000, 0u32..4), 1..150),
    ) {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(rate, burst).unwrap();
        let mut t = Duration::ZERO;
        let mut polls: Vec<(Duration, u64)> = Vec::new();
        let (mut fluid, mut fluid_taken, mut taken) = (f64::from(burst), 0u64, 0u64);
        for (advance_us, extra) in steps {
            let dt = Duration::from_micros(advance_us);
            t += dt;
            // Take everything, then a few more tries that must fail.
            let mut n = 0;
            while bucket.try_take(t0 + t) {
                n += 1;
            }
            for _ in 0..extra {
                prop_assert!(!bucket.try_take(t0 + t));
            }
            polls.push((t, n));
            taken += n;
            fluid = (fluid + rate * dt.as_secs_f64()).min(f64::from(burst));
            let whole = (fluid + 1e-9).floor();
            fluid = (fluid - whole).max(0.0);
            fluid_taken += whole as u64;
            prop_assert!(taken.abs_diff(fluid_taken) <= 1, "{} taken, model {}", taken, fluid_taken);
        }
        for i in 0..polls.len() {
            let mut sum = 0;
            for j in i..polls.len() {
                sum += polls[j].1;
                let span = (polls[j].0 - polls[i].0).as_secs_f64();
                let bound = (rate * span + f64::from(burst) + 1e-6).floor() as u64;
                prop_assert!(sum <= bound, "{} taken in {}s (bound {})", sum, span, bound);
            }
        }
    }
}
