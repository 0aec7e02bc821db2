//! The per-address table by prefix (IPv6 `/64`s, IPv4 prefixes, mapped addresses) and
//! what a full table does: evict groups with no live connection before refusing anyone.

use super::ip;
use crate::admission::{
    AdmissionConfig, Gate, PerIpLimiter, RefuseReason, TokenBucket, DEFAULT_IPV4_PREFIX,
    DEFAULT_IPV6_PREFIX,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// The `i`th address inside the `/64` numbered `subnet` under 2001:db8::/32, with an
/// interface identifier that differs in every 16-bit group a client could pick.
fn v6(subnet: u32, i: u64) -> IpAddr {
    let prefix = (0x2001_0db8_u128 << 96) | (u128::from(subnet) << 64);
    let iid = u128::from(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    IpAddr::V6(Ipv6Addr::from(prefix | iid))
}

fn v4(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
}

#[test]
fn the_defaults_are_ipv4_per_address_and_ipv6_per_64() {
    let limiter = PerIpLimiter::new(1);
    assert_eq!(limiter.prefixes(), (32, 64));
    assert_eq!((DEFAULT_IPV4_PREFIX, DEFAULT_IPV6_PREFIX), (32, 64));
    let cfg = AdmissionConfig::default();
    assert_eq!((cfg.ipv4_prefix, cfg.ipv6_prefix), (32, 64));
    assert_eq!(
        limiter.group_of(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
        ip("2001:db8:1:2::")
    );
    assert_eq!(limiter.group_of(ip("192.0.2.77")), ip("192.0.2.77"));
}

#[test]
fn a_thousand_addresses_inside_one_64_share_one_limit() {
    let now = Instant::now();
    let mut limiter = PerIpLimiter::new(10);
    let mut admitted = 0;
    let mut refused = 0;
    for i in 0..1000 {
        match limiter.try_open(v6(7, i), now) {
            Ok(()) => admitted += 1,
            Err(RefuseReason::MaxPerIp) => refused += 1,
            Err(other) => panic!("refused for {other:?}"),
        }
    }
    assert_eq!((admitted, refused), (10, 990));
    assert_eq!(limiter.tracked(), 1, "one group for the whole /64");
    assert_eq!(limiter.open_count(v6(7, 123_456)), 10);
    // Any address of the /64 closing frees a place for any other.
    limiter.close(v6(7, 999), now);
    assert_eq!(limiter.try_open(v6(7, 5000), now), Ok(()));
}

#[test]
fn addresses_in_different_64s_have_their_own_limits() {
    let now = Instant::now();
    let mut limiter = PerIpLimiter::new(2);
    for subnet in 0..500 {
        for i in 0..2 {
            assert_eq!(
                limiter.try_open(v6(subnet, i), now),
                Ok(()),
                "/64 #{subnet}"
            );
        }
        assert_eq!(
            limiter.try_open(v6(subnet, 2), now),
            Err(RefuseReason::MaxPerIp)
        );
    }
    assert_eq!(limiter.tracked(), 500);
}

#[test]
fn the_rate_is_per_64_too() {
    let t0 = Instant::now();
    let mut limiter = PerIpLimiter::new(u32::MAX).with_rate(TokenBucket::new(1.0, 5).unwrap());
    let results: Vec<_> = (0..20).map(|i| limiter.try_open(v6(1, i), t0)).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 5);
    assert!(results[5..]
        .iter()
        .all(|r| *r == Err(RefuseReason::RateLimitedPerIp)));
    assert_eq!(limiter.try_open(v6(2, 0), t0), Ok(()), "another /64");
}

#[test]
fn prefixes_are_configurable_and_checked() {
    let now = Instant::now();
    // IPv6 per address, IPv4 per /24.
    let mut limiter = PerIpLimiter::new(1).with_prefixes(24, 128).unwrap();
    assert_eq!(limiter.try_open(v6(1, 1), now), Ok(()));
    assert_eq!(limiter.try_open(v6(1, 2), now), Ok(()));
    assert_eq!(limiter.try_open(ip("198.51.100.1"), now), Ok(()));
    assert_eq!(
        limiter.try_open(ip("198.51.100.200"), now),
        Err(RefuseReason::MaxPerIp)
    );
    assert_eq!(limiter.try_open(ip("198.51.101.1"), now), Ok(()));
    // A /48 for IPv6: two /64s of one site share.
    let mut site = PerIpLimiter::new(1).with_prefixes(32, 48).unwrap();
    assert_eq!(site.try_open(ip("2001:db8:5:1::1"), now), Ok(()));
    assert_eq!(
        site.try_open(ip("2001:db8:5:2::1"), now),
        Err(RefuseReason::MaxPerIp)
    );
    assert!(PerIpLimiter::new(1).with_prefixes(33, 64).is_err());
    assert!(PerIpLimiter::new(1).with_prefixes(32, 129).is_err());
    assert!(PerIpLimiter::new(1).with_prefixes(0, 0).is_ok());
}

#[test]
fn ipv4_mapped_addresses_count_under_the_ipv4_prefix() {
    let now = Instant::now();
    let mut limiter = PerIpLimiter::new(2).with_prefixes(24, 64).unwrap();
    assert_eq!(limiter.try_open(ip("::ffff:192.0.2.1"), now), Ok(()));
    assert_eq!(limiter.try_open(ip("192.0.2.2"), now), Ok(()));
    assert_eq!(
        limiter.try_open(ip("::ffff:192.0.2.3"), now),
        Err(RefuseReason::MaxPerIp),
        "mapped and plain IPv4 of one /24 share, not the ::ffff:0:0/64 IPv6 group"
    );
    assert_eq!(limiter.group_of(ip("::ffff:192.0.2.9")), ip("192.0.2.0"));
    // Every IPv4 peer is inside ::/64 when seen as IPv6; they must not all share one limit.
    assert_eq!(limiter.try_open(ip("::ffff:203.0.113.5"), now), Ok(()));
    assert_eq!(limiter.tracked(), 2);
    limiter.close(ip("192.0.2.1"), now);
    assert_eq!(limiter.open_count(ip("::ffff:192.0.2.200")), 1);
}

#[test]
fn a_full_table_evicts_groups_without_connections_and_admits() {
    let t0 = Instant::now();
    // Refill time 100 s: closed groups stay tracked (refilling) for the whole test.
    let mut limiter = PerIpLimiter::new(4)
        .with_rate(TokenBucket::new(0.01, 1).unwrap())
        .with_max_tracked(100);
    for i in 0..100 {
        limiter.try_open(v4(i), t0).unwrap();
        limiter.close(v4(i), t0);
    }
    assert_eq!(limiter.tracked(), 100, "full of dead, refilling entries");
    // A stranger is admitted: the oldest dead entry makes room.
    assert_eq!(limiter.try_open(ip("192.0.2.1"), t0), Ok(()));
    assert_eq!(limiter.tracked(), 100);
    assert_eq!(limiter.evicted(), 1);
    // The evicted one (v4(0)) starts afresh; one still tracked keeps its empty bucket.
    assert_eq!(
        limiter.try_open(v4(99), t0),
        Err(RefuseReason::RateLimitedPerIp)
    );
    assert_eq!(limiter.try_open(v4(0), t0), Ok(()));
    assert_eq!(limiter.evicted(), 2);
    // A thousand more newcomers: each gets in, the table never grows.
    for i in 0..1000 {
        assert_eq!(limiter.try_open(v6(i, 0), t0), Ok(()), "newcomer {i}");
        limiter.close(v6(i, 0), t0);
        assert!(limiter.tracked() <= 100);
    }
}

#[test]
fn refilled_entries_are_forgotten_first_when_the_table_is_full() {
    let t0 = Instant::now();
    let mut limiter = PerIpLimiter::new(4)
        .with_rate(TokenBucket::new(10.0, 1).unwrap()) // refilled after 100 ms
        .with_max_tracked(50);
    for i in 0..50 {
        limiter.try_open(v4(i), t0).unwrap();
        limiter.close(v4(i), t0);
    }
    let later = t0 + Duration::from_millis(150);
    for i in 0..50 {
        assert_eq!(limiter.try_open(v6(i, 0), later), Ok(()), "newcomer {i}");
    }
    assert_eq!(
        limiter.evicted(),
        0,
        "refilled entries were forgotten, none evicted"
    );
    assert_eq!(limiter.tracked(), 50);
    // Now every entry is live: a new group is refused, a known one is served.
    assert_eq!(
        limiter.try_open(v6(50, 0), later),
        Err(RefuseReason::PerIpTableFull)
    );
    let next_token = later + Duration::from_millis(100);
    assert_eq!(limiter.try_open(v6(0, 1), next_token), Ok(()));
}

#[test]
fn strangers_filling_the_table_do_not_refuse_a_newcomer_below_the_limits() {
    let t0 = Instant::now();
    // 10,000 strangers, each from its own /64, each opening and closing once within a
    // second, with a slow per-group rate: every one leaves a refilling entry behind.
    let mut limiter = PerIpLimiter::new(2)
        .with_rate(TokenBucket::new(0.1, 2).unwrap())
        .with_max_tracked(1000);
    for i in 0..10_000u32 {
        let now = t0 + Duration::from_micros(u64::from(i) * 100);
        assert_eq!(limiter.try_open(v6(i, 1), now), Ok(()), "stranger {i}");
        limiter.close(v6(i, 1), now);
    }
    assert_eq!(limiter.tracked(), 1000);
    let now = t0 + Duration::from_secs(1);
    for i in 0..2 {
        assert_eq!(
            limiter.try_open(ip("2001:db8:ffff:ffff::1"), now),
            Ok(()),
            "{i}"
        );
    }
    // Its own limits still hold.
    assert_eq!(
        limiter.try_open(ip("2001:db8:ffff:ffff::2"), now),
        Err(RefuseReason::MaxPerIp)
    );
}

#[test]
fn a_table_full_of_live_groups_refuses_a_new_group_as_table_full() {
    let now = Instant::now();
    let mut limiter = PerIpLimiter::new(4).with_max_tracked(3);
    for i in 0..3 {
        limiter.try_open(v6(i, 0), now).unwrap();
    }
    assert_eq!(
        limiter.try_open(v6(9, 0), now),
        Err(RefuseReason::PerIpTableFull)
    );
    // A tracked group's other addresses are still served.
    assert_eq!(limiter.try_open(v6(0, 77), now), Ok(()));
    assert_eq!(limiter.evicted(), 0);
}

#[test]
fn the_gate_sizes_the_table_to_the_connection_cap() {
    let now = Instant::now();
    // A tiny table but a cap of 50: 50 live groups get in; the 51st is refused by the
    // cap, never as table-full.
    let gate = Gate::new(&AdmissionConfig {
        max_connections: Some(50),
        max_per_ip: Some(1),
        max_tracked_ips: 10,
        ..AdmissionConfig::default()
    })
    .unwrap();
    for i in 0..50 {
        assert_eq!(gate.admit(v6(i, 0), now), Ok(()), "group {i}");
    }
    assert_eq!(
        gate.admit(v6(50, 0), now),
        Err(RefuseReason::MaxConnections)
    );
    gate.release(v6(3, 0), now);
    assert_eq!(gate.admit(v6(3, 1), now), Ok(()), "the same /64 again");
    assert_eq!(gate.admit(v6(3, 2), now), Err(RefuseReason::MaxConnections));
    gate.release(v6(3, 1), now);
    assert_eq!(gate.admit(v6(3, 2), now), Ok(()));
}

#[test]
fn the_gate_groups_by_the_configured_prefixes_and_rejects_bad_ones() {
    let now = Instant::now();
    let gate = Gate::new(&AdmissionConfig {
        max_per_ip: Some(1),
        ipv4_prefix: 24,
        ipv6_prefix: 56,
        ..AdmissionConfig::default()
    })
    .unwrap();
    assert_eq!(gate.admit(ip("10.1.1.1"), now), Ok(()));
    assert_eq!(
        gate.admit(ip("::ffff:10.1.1.2"), now),
        Err(RefuseReason::MaxPerIp)
    );
    assert_eq!(gate.admit(ip("2001:db8:0:100::1"), now), Ok(()));
    assert_eq!(
        gate.admit(ip("2001:db8:0:1ff::1"), now),
        Err(RefuseReason::MaxPerIp),
        "same /56"
    );
    assert_eq!(gate.admit(ip("2001:db8:0:200::1"), now), Ok(()));
    let bad = Gate::new(&AdmissionConfig {
        max_per_ip: Some(1),
        ipv6_prefix: 200,
        ..AdmissionConfig::default()
    });
    assert!(bad.unwrap_err().to_string().contains("200 bits"));
}

proptest::proptest! {
    /// With a per-group rate (so closed groups linger), the table never exceeds its cap
    /// and refuses a group as table-full only when that many groups have live
    /// connections; connection counts follow a plain model.
    #[test]
    fn table_full_only_when_every_entry_is_live(
        max_tracked in 1usize..6,
        ops in proptest::collection::vec((0u8..10, proptest::bool::ANY, 0u16..300), 1..300),
    ) {
        let t0 = Instant::now();
        let mut limiter = PerIpLimiter::new(3)
            .with_rate(TokenBucket::new(5.0, 2).unwrap())
            .with_max_tracked(max_tracked);
        let mut open = [0u32; 10];
        let mut elapsed = 0u64;
        for (g, is_open, dt) in ops {
            elapsed += u64::from(dt);
            let now = t0 + Duration::from_millis(elapsed);
            let addr = v6(u32::from(g), elapsed);
            if is_open {
                let live = open.iter().filter(|&&n| n > 0).count();
                match limiter.try_open(addr, now) {
                    Ok(()) => open[usize::from(g)] += 1,
                    Err(RefuseReason::PerIpTableFull) => {
                        proptest::prop_assert_eq!(open[usize::from(g)], 0);
                        proptest::prop_assert!(live >= max_tracked, "{live} live of {max_tracked}");
                    }
                    Err(RefuseReason::MaxPerIp) => proptest::prop_assert_eq!(open[usize::from(g)], 3),
                    Err(RefuseReason::RateLimitedPerIp) => {}
                    Err(other) => proptest::prop_assert!(false, "refused for {other:?}"),
                }
            } else if open[usize::from(g)] > 0 {
                limiter.close(addr, now);
                open[usize::from(g)] -= 1;
            }
            proptest::prop_assert!(limiter.tracked() <= max_tracked);
            for (i, n) in open.iter().enumerate() {
                proptest::prop_assert_eq!(limiter.open_count(v6(i as u32, 0)), *n);
            }
        }
    }
}
