use super::ip;
use crate::admission::{PerIpLimiter, RefuseReason, TokenBucket, DEFAULT_MAX_TRACKED_IPS};
use proptest::prelude::*;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn nth_ip(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
}

#[test]
fn each_address_gets_its_own_connection_cap() {
    let now = Instant::now();
    let mut limiter = PerIpLimiter::new(2);
    assert_eq!(limiter.max_tracked(), DEFAULT_MAX_TRACKED_IPS);
    let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
    assert_eq!(limiter.try_open(a, now), Ok(()));
    assert_eq!(limiter.try_open(a, now), Ok(()));
    assert_eq!(limiter.try_open(a, now), Err(RefuseReason::MaxPerIp));
    assert_eq!(limiter.try_open(b, now), Ok(()));
    assert_eq!(limiter.open_count(a), 2);
    limiter.close(a, now);
    assert_eq!(limiter.try_open(a, now), Ok(()));
    assert_eq!(limiter.max_per_ip(), 2);
}

#[test]
fn ipv4_mapped_addresses_count_as_the_ipv4_address() {
    let now = Instant::now();
    let mut limiter = PerIpLimiter::new(1);
    assert_eq!(limiter.try_open(ip("192.0.2.1"), now), Ok(()));
    assert_eq!(
        limiter.try_open(ip("::ffff:192.0.2.1"), now),
        Err(RefuseReason::MaxPerIp)
    );
    limiter.close(ip("::ffff:192.0.2.1"), now);
    assert_eq!(limiter.open_count(ip("192.0.2.1")), 0);
    assert_eq!(limiter.tracked(), 0);
}

#[test]
fn without_a_rate_an_address_is_forgotten_with_its_last_connection() {
    let now = Instant::now();
    let mut limiter = PerIpLimiter::new(10);
    for i in 0..100 {
        limiter.try_open(nth_ip(i), now).unwrap();
        limiter.try_open(nth_ip(i), now).unwrap();
    }
    assert_eq!(limiter.tracked(), 100);
    for i in 0..100 {
        limiter.close(nth_ip(i), now);
    }
    assert_eq!(limiter.tracked(), 100);
    for i in 0..100 {
        limiter.close(nth_ip(i), now);
    }
    assert_eq!(limiter.tracked(), 0);
    // Closing what is not open changes nothing.
    limiter.close(nth_ip(5), now);
    assert_eq!(limiter.tracked(), 0);
}

#[test]
fn a_per_address_rate_refuses_fast_reconnects() {
    let t0 = Instant::now();
    let mut limiter = PerIpLimiter::new(100).with_rate(TokenBucket::new(10.0, 2).unwrap());
    let a = ip("192.0.2.1");
    for _ in 0..2 {
        limiter.try_open(a, t0).unwrap();
        limiter.close(a, t0);
    }
    assert_eq!(limiter.try_open(a, t0), Err(RefuseReason::RateLimitedPerIp));
    // Another address has its own bucket.
    assert_eq!(limiter.try_open(ip("192.0.2.2"), t0), Ok(()));
    assert_eq!(limiter.try_open(a, t0 + ms(100)), Ok(()));
}

#[test]
fn a_refusal_for_the_connection_cap_spends_no_token() {
    let t0 = Instant::now();
    let mut limiter = PerIpLimiter::new(1).with_rate(TokenBucket::new(1.0, 2).unwrap());
    let a = ip("192.0.2.1");
    limiter.try_open(a, t0).unwrap();
    for _ in 0..10 {
        assert_eq!(limiter.try_open(a, t0), Err(RefuseReason::MaxPerIp));
    }
    limiter.close(a, t0);
    assert_eq!(
        limiter.try_open(a, t0),
        Ok(()),
        "the second token is still there"
    );
}

#[test]
fn an_address_is_remembered_until_its_bucket_refills_then_forgotten() {
    let t0 = Instant::now();
    // Refill time: 3 tokens at 10/s = 300 ms.
    let mut limiter = PerIpLimiter::new(5).with_rate(TokenBucket::new(10.0, 3).unwrap());
    for i in 0..50 {
        limiter.try_open(nth_ip(i), t0).unwrap();
        limiter.close(nth_ip(i), t0);
    }
    assert_eq!(
        limiter.tracked(),
        50,
        "buckets not full yet: forgetting would reset them"
    );
    assert_eq!(limiter.forget_refilled(t0 + ms(299)), 0);
    // Ordinary calls forget a bounded few at a time once the buckets are full.
    limiter.close(ip("203.0.113.1"), t0 + ms(300));
    assert!((50 - 8..50).contains(&limiter.tracked()));
    assert!(limiter.forget_refilled(t0 + ms(300)) > 0);
    assert_eq!(limiter.tracked(), 0);
}

#[test]
fn a_reopened_address_is_not_forgotten_while_open() {
    let t0 = Instant::now();
    let mut limiter = PerIpLimiter::new(5).with_rate(TokenBucket::new(10.0, 1).unwrap());
    let a = ip("192.0.2.1");
    limiter.try_open(a, t0).unwrap();
    limiter.close(a, t0); // queued: full at t0 + 100 ms
    limiter.try_open(a, t0 + ms(100)).unwrap(); // open again before anyone looked
    assert_eq!(limiter.forget_refilled(t0 + ms(150)), 0);
    assert_eq!(limiter.open_count(a), 1);
    assert_eq!(
        limiter.try_open(a, t0 + ms(150)),
        Err(RefuseReason::RateLimitedPerIp)
    );
    limiter.close(a, t0 + ms(150)); // bucket full at t0 + 200 ms
    assert_eq!(limiter.forget_refilled(t0 + ms(199)), 0);
    assert_eq!(limiter.tracked(), 1);
    assert_eq!(limiter.forget_refilled(t0 + ms(250)), 1);
    assert_eq!(limiter.tracked(), 0);
}

#[test]
fn a_full_table_refuses_new_addresses_but_serves_known_ones() {
    let now = Instant::now();
    let mut limiter = PerIpLimiter::new(4).with_max_tracked(3);
    for i in 0..3 {
        limiter.try_open(nth_ip(i), now).unwrap();
    }
    assert_eq!(
        limiter.try_open(nth_ip(3), now),
        Err(RefuseReason::PerIpTableFull)
    );
    assert_eq!(limiter.try_open(nth_ip(0), now), Ok(()));
    assert_eq!(limiter.tracked(), 3);
    limiter.close(nth_ip(2), now);
    assert_eq!(limiter.try_open(nth_ip(3), now), Ok(()));
}

#[test]
fn a_cap_of_zero_refuses_everyone() {
    let mut limiter = PerIpLimiter::new(0);
    assert_eq!(
        limiter.try_open(ip("192.0.2.1"), Instant::now()),
        Err(RefuseReason::MaxPerIp)
    );
    assert_eq!(limiter.tracked(), 0);
}

#[test]
fn churn_from_many_addresses_keeps_the_table_bounded() {
    let t0 = Instant::now();
    // Refill time 50 ms; a new address every 100 us for 10 s: 100,000 addresses, of
    // which only the last ~500 may still be refilling at any time.
    let mut limiter = PerIpLimiter::new(4).with_rate(TokenBucket::new(20.0, 1).unwrap());
    let mut most = 0;
    for i in 0..100_000u32 {
        let now = t0 + Duration::from_micros(u64::from(i) * 100);
        limiter.try_open(nth_ip(i), now).unwrap();
        limiter.close(nth_ip(i), now);
        most = most.max(limiter.tracked());
    }
    assert!(most <= 600, "{most} addresses tracked at once");
}

#[derive(Debug, Clone)]
enum Op {
    Open(u8, u16),
    Close(u8, u16),
}

proptest! {
    /// Connection counts follow a plain map of counts; without a rate, exactly the
    /// addresses with a connection open are tracked, never more than the cap.
    #[test]
    fn counts_follow_a_model_and_the_table_stays_within_its_cap(
        max_per_ip in 0u32..4,
        max_tracked in 1usize..6,
        ops in prop::collection::vec(
            prop_oneof![
                (0u8..8, 0u16..50).prop_map(|(a, t)| Op::Open(a, t)),
                (0u8..8, 0u16..50).prop_map(|(a, t)| Op::Close(a, t)),
            ],
            1..200,
        ),
    ) {
        let t0 = Instant::now();
        let mut limiter = PerIpLimiter::new(max_per_ip).with_max_tracked(max_tracked);
        let mut model: HashMap<u8, u32> = HashMap::new();
        let mut elapsed = 0u64;
        for op in ops {
            match op {
                Op::Open(a, dt) => {
                    elapsed += u64::from(dt);
                    let open = model.get(&a).copied().unwrap_or(0);
                    let expect = if open >= max_per_ip {
                        Err(RefuseReason::MaxPerIp)
                    } else if open == 0 && model.len() >= max_tracked {
                        Err(RefuseReason::PerIpTableFull)
                    } else {
                        Ok(())
                    };
                    prop_assert_eq!(limiter.try_open(nth_ip(a.into()), t0 + ms(elapsed)), expect);
                    if expect.is_ok() {
                        *model.entry(a).or_default() += 1;
                    }
                }
                Op::Close(a, dt) => {
                    elapsed += u64::from(dt);
                    limiter.close(nth_ip(a.into()), t0 + ms(elapsed));
                    if let Some(n) = model.get_mut(&a) {
                        *n -= 1;
                        if *n == 0 {
                            model.remove(&a);
                        }
                    }
                }
            }
            prop_assert_eq!(limiter.tracked(), model.len());
            prop_assert!(limiter.tracked() <= max_tracked);
            for a in 0..8u8 {
                prop_assert_eq!(limiter.open_count(nth_ip(a.into())), model.get(&a).copied().unwrap_or(0));
            }
        }
    }
}
