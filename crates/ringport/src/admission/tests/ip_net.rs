use super::{ip, net};
use crate::admission::{IpNet, IpNetError};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[test]
fn ranges_parse_and_print_back() {
    for s in [
        "10.0.0.0/8",
        "0.0.0.0/0",
        "192.0.2.7/32",
        "::1/128",
        "::/0",
        "2001:db8::/32",
        "fe80::/10",
    ] {
        assert_eq!(net(s).to_string(), s);
    }
}

#[test]
fn a_bare_address_is_a_single_host() {
    assert_eq!(net("192.0.2.7"), net("192.0.2.7/32"));
    assert_eq!(net("::1"), net("::1/128"));
    assert_eq!(net("::1").prefix_len(), 128);
    assert_eq!(IpNet::from(ip("10.1.2.3")), net("10.1.2.3/32"));
}

#[test]
fn host_bits_are_cleared() {
    let n = net("10.1.2.3/8");
    assert_eq!(n, net("10.0.0.0/8"));
    assert_eq!(n.network(), ip("10.0.0.0"));
    assert_eq!(n.to_string(), "10.0.0.0/8");
    assert_eq!(net("2001:db8:ffff::1/32").to_string(), "2001:db8::/32");
}

#[test]
fn bad_text_gives_the_matching_error() {
    assert_eq!(
        "10.0.0/8".parse::<IpNet>(),
        Err(IpNetError::Address("10.0.0".into()))
    );
    assert_eq!("".parse::<IpNet>(), Err(IpNetError::Address("".into())));
    assert_eq!(
        "[::1]/128".parse::<IpNet>(),
        Err(IpNetError::Address("[::1]".into()))
    );
    for bad_len in ["", "+8", "-1", "8 ", "x", "1000"] {
        assert_eq!(
            format!("10.0.0.0/{bad_len}").parse::<IpNet>(),
            Err(IpNetError::PrefixLength(bad_len.into())),
            "{bad_len:?}"
        );
    }
    assert_eq!(
        "10.0.0.0/33".parse::<IpNet>(),
        Err(IpNetError::PrefixTooLong { len: 33, max: 32 })
    );
    assert_eq!(
        "::/129".parse::<IpNet>(),
        Err(IpNetError::PrefixTooLong { len: 129, max: 128 })
    );
    assert_eq!(
        "::/999".parse::<IpNet>(),
        Err(IpNetError::PrefixTooLong { len: 999, max: 128 })
    );
    assert!(IpNet::new(ip("10.0.0.0"), 33).is_err());
    // The errors say what was wrong.
    let msg = "10.0.0.0/40".parse::<IpNet>().unwrap_err().to_string();
    assert!(msg.contains("40") && msg.contains("32"), "{msg}");
}

#[test]
fn contains_respects_the_prefix_at_its_edges() {
    let n = net("192.168.4.0/22");
    assert!(n.contains(ip("192.168.4.0")));
    assert!(n.contains(ip("192.168.7.255")));
    assert!(!n.contains(ip("192.168.8.0")));
    assert!(!n.contains(ip("192.168.3.255")));
    assert!(net("0.0.0.0/0").contains(ip("255.255.255.255")));
    assert!(net("::/0").contains(ip("ffff::1")));
    assert!(net("::1/128").contains(ip("::1")));
    assert!(!net("::1/128").contains(ip("::2")));
    assert!(net("2001:db8::/33").contains(ip("2001:db8:7fff::1")));
    assert!(!net("2001:db8::/33").contains(ip("2001:db8:8000::1")));
}

#[test]
fn ipv4_mapped_addresses_match_ipv4_ranges() {
    let n = net("10.0.0.0/8");
    assert!(n.contains(ip("::ffff:10.1.2.3")));
    assert!(!n.contains(ip("::ffff:11.1.2.3")));
    // IPv4-compatible (deprecated) addresses are plain IPv6.
    assert!(!n.contains(ip("::10.1.2.3")));
    // A range written in mapped form is the IPv4 range.
    assert_eq!(net("::ffff:10.0.0.0/104"), n);
    assert_eq!(net("::ffff:10.0.0.0/104").to_string(), "10.0.0.0/8");
    assert_eq!(net("::ffff:10.9.9.9"), net("10.9.9.9/32"));
    assert_eq!(net("::ffff:0:0/96"), net("0.0.0.0/0"));
    assert!(net("::ffff:10.0.0.0/104").contains(ip("10.200.0.1")));
    // IPv6 ranges outside ::ffff:0:0/96 never contain IPv4 peers, in either spelling.
    assert!(!net("::/0").contains(ip("10.1.2.3")));
    assert!(!net("::/0").contains(ip("::ffff:10.1.2.3")));
    assert!(!net("0.0.0.0/0").contains(ip("2001:db8::1")));
}

/// Bit `i` (from the most significant) of an address, IPv4-mapped addresses as IPv4.
fn bits(addr: IpAddr) -> Vec<bool> {
    let (value, width) = match addr.to_canonical() {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    };
    (0..width)
        .map(|i| (value >> (width - 1 - i)) & 1 == 1)
        .collect()
}

fn naive_contains(network: IpAddr, len: u8, addr: IpAddr) -> bool {
    let (a, b) = (bits(network), bits(addr));
    a.len() == b.len() && a[..len as usize] == b[..len as usize]
}

fn any_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        any::<u128>().prop_map(|v| IpAddr::V6(Ipv6Addr::from(v))),
        any::<u32>().prop_map(|v| IpAddr::V6(Ipv4Addr::from(v).to_ipv6_mapped())),
    ]
}

/// A range and an address near it (sharing a random number of leading bits), so that
/// both answers come up often.
fn net_and_nearby_ip() -> impl Strategy<Value = (IpNet, IpAddr)> {
    (
        any_ip(),
        any::<u8>(),
        any::<u8>(),
        any::<u128>(),
        any::<bool>(),
    )
        .prop_map(|(addr, len, shared, noise, mapped)| {
            let width = if addr.is_ipv4() { 32 } else { 128 };
            let len = len % (width + 1);
            let shared = u32::from(shared % (width + 1));
            let near = match addr {
                IpAddr::V4(v4) => {
                    let keep = u32::MAX.checked_shl(32 - shared).unwrap_or(0);
                    let v = (u32::from(v4) & keep) | (noise as u32 & !keep);
                    let v4 = Ipv4Addr::from(v);
                    if mapped {
                        IpAddr::V6(v4.to_ipv6_mapped())
                    } else {
                        IpAddr::V4(v4)
                    }
                }
                IpAddr::V6(v6) => {
                    let keep = u128::MAX.checked_shl(128 - shared).unwrap_or(0);
                    IpAddr::V6(Ipv6Addr::from((u128::from(v6) & keep) | (noise & !keep)))
                }
            };
            (IpNet::new(addr, len).unwrap(), near)
        })
}

proptest! {
    #[test]
    fn contains_agrees_with_a_bit_by_bit_comparison((n, addr) in net_and_nearby_ip()) {
        prop_assert_eq!(n.contains(addr), naive_contains(n.network(), n.prefix_len(), addr));
    }

    #[test]
    fn contains_ignores_the_spelling_of_ipv4(n in net_and_nearby_ip().prop_map(|p| p.0), v in any::<u32>()) {
        let v4 = Ipv4Addr::from(v);
        prop_assert_eq!(n.contains(IpAddr::V4(v4)), n.contains(IpAddr::V6(v4.to_ipv6_mapped())));
    }

    #[test]
    fn printing_then_parsing_gives_the_same_range(addr in any_ip(), len in any::<u8>()) {
        let width = if addr.is_ipv4() { 32 } else { 128 };
        let n = IpNet::new(addr, len % (width + 1)).unwrap();
        prop_assert_eq!(n.to_string().parse::<IpNet>(), Ok(n));
        // The network contains itself, and the range the address it came from (unless
        // that is an IPv4-mapped address under an IPv6 prefix too short to be IPv4).
        prop_assert!(n.contains(n.network()));
        let mapped = matches!(addr, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some());
        prop_assert_eq!(n.contains(addr), !mapped || len % (width + 1) >= 96);
    }
}
