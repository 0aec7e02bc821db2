//! `IpNet`: one CIDR range of IPv4 or IPv6 addresses.
//!
//! Written here rather than taken from the `ipnet` crate because admission needs one rule
//! that crate does not have: an IPv4 peer must get the same answer whether the kernel
//! reports it as `10.1.2.3` (IPv4 socket) or `::ffff:10.1.2.3` (dual-stack IPv6 socket).
//! The whole type is a prefix, a mask and a parser.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Why an [`IpNet`] could not be built or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IpNetError {
    /// The text before the `/` (or the whole text) is not an IPv4 or IPv6 address.
    #[error("{0:?} is not an IP address")]
    Address(String),
    /// The text after the `/` is not a decimal prefix length.
    #[error("{0:?} is not a prefix length")]
    PrefixLength(String),
    /// The prefix length is longer than the address (32 bits for IPv4, 128 for IPv6).
    #[error("a prefix of {len} bits is longer than the {max}-bit address")]
    PrefixTooLong {
        /// The prefix length asked for.
        len: u32,
        /// The address width in bits.
        max: u8,
    },
}

/// A CIDR range: every address whose first `prefix_len` bits equal the network's.
///
/// Parse one from `"10.0.0.0/8"`, `"2001:db8::/32"` or a bare address (`"::1"` is
/// `::1/128`, `"192.0.2.7"` is `192.0.2.7/32`). Host bits are cleared, so `"10.1.2.3/8"`
/// is the range `10.0.0.0/8`; `to_string()` always prints the network and the prefix
/// length, and parsing that text gives the same value back.
///
/// IPv4 addresses count the same in both spellings: an IPv4 range contains the IPv4-mapped
/// IPv6 form (`::ffff:a.b.c.d`) of each of its addresses, and a range written inside
/// `::ffff:0:0/96` (such as `::ffff:10.0.0.0/104`) *is* the IPv4 range (`10.0.0.0/8`). Any
/// other IPv6 range never contains an IPv4 peer, even one that spans the mapped block:
/// `::/0` means every IPv6 peer, `0.0.0.0/0` every IPv4 peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    network: IpAddr,
    prefix_len: u8,
}

/// An [`IpNet`] as the bits admission compares: `ip & mask == network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NetBits {
    /// An IPv4 range.
    V4 { network: u32, mask: u32 },
    /// An IPv6 range (never an IPv4-mapped one: those are `V4`).
    V6 { network: u128, mask: u128 },
}

/// The IPv4 mask with the first `len` bits set (`len` <= 32).
pub(crate) fn mask_v4(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

/// The IPv6 mask with the first `len` bits set (`len` <= 128).
pub(crate) fn mask_v6(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

impl IpNet {
    /// The range of addresses sharing the first `prefix_len` bits with `addr`.
    ///
    /// Host bits of `addr` are cleared; an IPv4-mapped `addr` with `prefix_len >= 96` gives
    /// the IPv4 range. Fails if `prefix_len` is longer than the address.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Result<IpNet, IpNetError> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix_len > max {
            return Err(IpNetError::PrefixTooLong {
                len: u32::from(prefix_len),
                max,
            });
        }
        let mapped = match addr {
            IpAddr::V6(v6) if prefix_len >= 96 => v6.to_ipv4_mapped(),
            _ => None,
        };
        let net = match (mapped, addr) {
            (Some(v4), _) => IpNet::v4(v4, prefix_len - 96),
            (None, IpAddr::V4(v4)) => IpNet::v4(v4, prefix_len),
            (None, IpAddr::V6(v6)) => IpNet {
                network: IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask_v6(prefix_len))),
                prefix_len,
            },
        };
        Ok(net)
    }

    fn v4(addr: Ipv4Addr, prefix_len: u8) -> IpNet {
        IpNet {
            network: IpAddr::V4(Ipv4Addr::from(u32::from(addr) & mask_v4(prefix_len))),
            prefix_len,
        }
    }

    /// The range holding exactly `addr` (`/32` or `/128`; an IPv4-mapped address gives
    /// the IPv4 `/32`).
    pub fn host(addr: IpAddr) -> IpNet {
        let addr = addr.to_canonical();
        let len = if addr.is_ipv4() { 32 } else { 128 };
        IpNet {
            network: addr,
            prefix_len: len,
        }
    }

    /// The first address of the range (host bits cleared).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// How many leading bits every address of the range shares with [`Self::network`].
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `ip` lies in the range. An IPv4-mapped IPv6 `ip` is looked at as the IPv4
    /// address it carries.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.bits(), ip.to_canonical()) {
            (NetBits::V4 { network, mask }, IpAddr::V4(ip)) => u32::from(ip) & mask == network,
            (NetBits::V6 { network, mask }, IpAddr::V6(ip)) => u128::from(ip) & mask == network,
            _ => false,
        }
    }

    /// The network and mask as integers.
    pub(crate) fn bits(&self) -> NetBits {
        match self.network {
            IpAddr::V4(v4) => NetBits::V4 {
                network: u32::from(v4),
                mask: mask_v4(self.prefix_len),
            },
            IpAddr::V6(v6) => NetBits::V6 {
                network: u128::from(v6),
                mask: mask_v6(self.prefix_len),
            },
        }
    }
}

impl From<IpAddr> for IpNet {
    /// The single-address range of `addr` (see [`IpNet::host`]).
    fn from(addr: IpAddr) -> IpNet {
        IpNet::host(addr)
    }
}

impl FromStr for IpNet {
    type Err = IpNetError;

    fn from_str(s: &str) -> Result<IpNet, IpNetError> {
        let (addr_text, len_text) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| IpNetError::Address(addr_text.to_owned()))?;
        let Some(len_text) = len_text else {
            return Ok(IpNet::host(addr));
        };
        // Digits only: `u32::from_str` would also take a leading '+'.
        if len_text.is_empty()
            || len_text.len() > 3
            || !len_text.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(IpNetError::PrefixLength(len_text.to_owned()));
        }
        let len: u32 = len_text
            .parse()
            .map_err(|_| IpNetError::PrefixLength(len_text.to_owned()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        match u8::try_from(len) {
            Ok(len) if len <= max => IpNet::new(addr, len),
            _ => Err(IpNetError::PrefixTooLong { len, max }),
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}
