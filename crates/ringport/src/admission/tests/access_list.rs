use super::{ip, net};
use crate::admission::{AccessList, IpNet, RefuseReason, Verdict};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

const DENIED: Verdict = Verdict::Refuse(RefuseReason::Denied);
const NOT_ALLOWED: Verdict = Verdict::Refuse(RefuseReason::NotAllowed);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn an_empty_list_admits_everyone() {
    let mut list = AccessList::new();
    let now = Instant::now();
    assert_eq!(list.check(ip("203.0.113.9"), now), Verdict::Admit);
    assert_eq!(list.check(ip("2001:db8::1"), now), Verdict::Admit);
    assert!(Verdict::Admit.is_admit() && !DENIED.is_admit());
}

#[test]
fn deny_wins_over_allow_and_a_non_empty_allow_list_excludes_the_rest() {
    let mut list = AccessList::new();
    list.allow(net("10.0.0.0/8"))
        .allow(net("2001:db8::/32"))
        .deny(net("10.6.0.0/16"));
    let now = Instant::now();
    assert_eq!(list.check(ip("10.1.2.3"), now), Verdict::Admit);
    assert_eq!(list.check(ip("2001:db8::5"), now), Verdict::Admit);
    assert_eq!(list.check(ip("10.6.1.1"), now), DENIED);
    assert_eq!(list.check(ip("11.0.0.1"), now), NOT_ALLOWED);
    assert_eq!(list.check(ip("2001:db9::1"), now), NOT_ALLOWED);
    assert_eq!(list.allow_len(), 2);
    assert_eq!(list.deny_len(), 1);
}

#[test]
fn an_ipv4_only_allow_list_refuses_ipv6_peers() {
    let mut list = AccessList::new();
    list.allow(net("127.0.0.0/8"));
    let now = Instant::now();
    assert_eq!(list.check(ip("::1"), now), NOT_ALLOWED);
    assert_eq!(list.check(ip("127.0.0.1"), now), Verdict::Admit);
}

#[test]
fn ipv4_peers_get_the_same_verdict_in_both_spellings() {
    let mut list = AccessList::new();
    list.deny(net("192.0.2.0/24"))
        .allow(net("::ffff:198.51.100.0/120"));
    let now = Instant::now();
    for (v4, v6) in [
        ("192.0.2.1", "::ffff:192.0.2.1"),
        ("198.51.100.7", "::ffff:198.51.100.7"),
        ("203.0.113.1", "::ffff:203.0.113.1"),
    ] {
        assert_eq!(list.check(ip(v4), now), list.check(ip(v6), now), "{v4}");
    }
    assert_eq!(list.check(ip("::ffff:192.0.2.1"), now), DENIED);
    assert_eq!(list.check(ip("198.51.100.7"), now), Verdict::Admit);
}

#[test]
fn a_temporary_ban_ends_at_its_expiry() {
    let t0 = Instant::now();
    let mut list = AccessList::new();
    list.deny_until(net("203.0.113.5"), t0 + secs(60));
    assert_eq!(list.check(ip("203.0.113.5"), t0), DENIED);
    assert_eq!(list.check(ip("203.0.113.5"), t0 + secs(59)), DENIED);
    assert_eq!(list.check(ip("203.0.113.5"), t0 + secs(60)), Verdict::Admit);
    assert_eq!(list.check(ip("203.0.113.6"), t0), Verdict::Admit);
}

#[test]
fn banning_again_merges_and_keeps_the_longer_ban() {
    let t0 = Instant::now();
    let mut list = AccessList::new();
    let bad = net("203.0.113.5");
    list.deny_until(bad, t0 + secs(60));
    list.deny_until(bad, t0 + secs(10)); // shorter: ignored
    list.deny_until(bad, t0 + secs(90)); // longer: extends
    assert_eq!(list.deny_len(), 1);
    assert_eq!(list.check(ip("203.0.113.5"), t0 + secs(80)), DENIED);
    assert_eq!(list.check(ip("203.0.113.5"), t0 + secs(90)), Verdict::Admit);
    // A permanent deny beats any ban, in either order.
    list.deny(bad);
    list.deny_until(bad, t0 + secs(1));
    assert_eq!(list.deny_len(), 1);
    assert_eq!(list.check(ip("203.0.113.5"), t0 + secs(10_000)), DENIED);
    assert_eq!(list.prune_expired(t0 + secs(10_000)), 0);
}

#[test]
fn expired_bans_are_pruned_a_few_per_check() {
    let t0 = Instant::now();
    let mut list = AccessList::new();
    list.deny(net("198.51.100.0/24"));
    for i in 0..200u32 {
        list.deny_until(
            IpNet::from(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))),
            t0 + secs(1),
        );
        list.deny_until(net(&format!("2001:db8::{i:x}")), t0 + secs(1));
    }
    assert_eq!(list.deny_len(), 401);
    let later = t0 + secs(2);
    // One check prunes a bounded handful, not the whole list.
    list.check(ip("192.0.2.1"), later);
    let after_one = list.deny_len();
    assert!((401 - 16..401).contains(&after_one), "{after_one}");
    // Checks alone eventually prune everything expired, in both families.
    for _ in 0..200 {
        list.check(ip("192.0.2.1"), later);
    }
    assert_eq!(list.deny_len(), 1);
    assert_eq!(list.check(ip("198.51.100.1"), later), DENIED);
}

#[test]
fn prune_expired_removes_all_expired_at_once_and_peek_removes_nothing() {
    let t0 = Instant::now();
    let mut list = AccessList::new();
    list.deny_until(net("10.0.0.1"), t0 + secs(1));
    list.deny_until(net("10.0.0.2"), t0 + secs(5));
    list.deny_until(net("::2"), t0 + secs(1));
    assert_eq!(list.peek(ip("10.0.0.1"), t0 + secs(2)), Verdict::Admit);
    assert_eq!(list.deny_len(), 3);
    assert_eq!(list.prune_expired(t0 + secs(2)), 2);
    assert_eq!(list.deny_len(), 1);
    assert_eq!(list.check(ip("10.0.0.2"), t0 + secs(2)), DENIED);
}

#[test]
fn ranges_can_be_removed() {
    let mut list = AccessList::new();
    list.allow(net("10.0.0.0/8")).deny(net("10.1.0.0/16"));
    let now = Instant::now();
    assert!(list.remove_deny(net("10.1.0.0/16")));
    assert!(!list.remove_deny(net("10.1.0.0/16")));
    assert_eq!(list.check(ip("10.1.0.1"), now), Verdict::Admit);
    assert!(list.remove_allow(net("10.0.0.0/8")));
    assert_eq!(list.check(ip("192.0.2.1"), now), Verdict::Admit);
}

#[test]
fn a_few_hundred_ranges_still_decide_exactly() {
    let mut list = AccessList::new();
    for i in 0..300u32 {
        list.deny(IpNet::new(IpAddr::V4(Ipv4Addr::from(i << 20)), 12).unwrap());
    }
    let now = Instant::now();
    assert_eq!(
        list.check(IpAddr::V4(Ipv4Addr::from(299 << 20 | 5)), now),
        DENIED
    );
    assert_eq!(
        list.check(IpAddr::V4(Ipv4Addr::from(300 << 20)), now),
        Verdict::Admit
    );
}

/// A rule for the model: a range, whether it is an allow rule, and an expiry in seconds.
type Rule = (IpNet, bool, Option<u64>);

fn rule() -> impl Strategy<Value = Rule> {
    // Small address space so that rules and peers meet often.
    let addr = prop_oneof![
        (0u32..64).prop_map(|v| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | v << 2))),
        (0u128..64).prop_map(|v| IpAddr::V6((0x2001_0db8u128 << 96 | v << 2).into())),
    ];
    (addr, 0u8..9, any::<bool>(), prop::option::of(0u64..10)).prop_map(|(a, extra, allow, exp)| {
        // Prefixes covering 1 to 256 of the peers below.
        let len = if a.is_ipv4() { 24 + extra } else { 120 + extra };
        (
            IpNet::new(a, len).unwrap(),
            allow,
            if allow { None } else { exp },
        )
    })
}

fn peer() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u32..256).prop_map(|v| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | v))),
        (0u32..256).prop_map(|v| IpAddr::V6(Ipv4Addr::from(0x0a00_0000 | v).to_ipv6_mapped())),
        (0u128..256).prop_map(|v| IpAddr::V6((0x2001_0db8u128 << 96 | v).into())),
    ]
}

proptest! {
    /// Checks (which prune as they go) agree with a model that keeps every rule and
    /// filters by expiry, over a sequence of checks at increasing times.
    #[test]
    fn check_agrees_with_a_naive_model(
        rules in prop::collection::vec(rule(), 0..40),
        probes in prop::collection::vec((peer(), 0u64..12), 1..100),
    ) {
        let t0 = Instant::now();
        let mut list = AccessList::new();
        for &(n, allow, exp) in &rules {
            match (allow, exp) {
                (true, _) => { list.allow(n); }
                (false, None) => { list.deny(n); }
                (false, Some(s)) => { list.deny_until(n, t0 + secs(s)); }
            }
        }
        let mut probes = probes;
        probes.sort_by_key(|p| p.1);
        for (addr, at) in probes {
            let now = t0 + secs(at);
            let denied = rules.iter().any(|&(n, allow, exp)| {
                !allow && n.contains(addr) && exp.map_or(true, |s| at < s)
            });
            let has_allow = rules.iter().any(|r| r.1);
            let allowed = rules.iter().any(|&(n, allow, _)| allow && n.contains(addr));
            let expect = if denied {
                DENIED
            } else if has_allow && !allowed {
                NOT_ALLOWED
            } else {
                Verdict::Admit
            };
            prop_assert_eq!(list.peek(addr, now), expect);
            prop_assert_eq!(list.check(addr, now), expect);
        }
    }
}
