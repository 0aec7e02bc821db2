//! Admission for datagrams: the allow and deny lists and a token bucket per source, as
//! for connections, checked on every datagram before its handler sees it. Sans-IO like
//! the rest of `admission/`.
//!
//! One gate per datagram socket per worker, unlocked: SO_REUSEPORT sends a source's
//! datagrams to one worker, so a per-worker bucket is the source's bucket. The table of
//! buckets is bounded (`max_sources`); a flood of (possibly spoofed) sources that fills
//! it empties it and starts over — memory stays bounded, and what is lost is only the
//! buckets' state (each source starts again with a full burst), never a refusal of a
//! source that has not sent.

use super::{AccessList, IpNet, RefuseReason, TokenBucket, Verdict};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// Most sources whose buckets a gate keeps, by default.
pub const DEFAULT_MAX_SOURCES: usize = 65_536;

/// What may send datagrams to one socket.
#[derive(Debug, Clone, Default)]
pub(crate) struct DatagramAdmission {
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
    /// Datagrams per second per source (each IPv4 address, each IPv6 /64), and the burst.
    pub rate_per_source: Option<(f64, u32)>,
    pub max_sources: Option<usize>,
}

/// The checks, as one worker's socket makes them.
#[derive(Debug)]
pub(crate) struct DatagramGate {
    access: Option<AccessList>,
    rate: Option<TokenBucket>,
    buckets: HashMap<IpAddr, TokenBucket>,
    max_sources: usize,
    /// Times the table filled and started over.
    pub resets: u64,
}

impl DatagramGate {
    pub(crate) fn new(cfg: &DatagramAdmission) -> Result<DatagramGate, super::RateLimitError> {
        let access = (!cfg.allow.is_empty() || !cfg.deny.is_empty()).then(|| {
            let mut a = AccessList::new();
            cfg.allow.iter().for_each(|n| {
                a.allow(*n);
            });
            cfg.deny.iter().for_each(|n| {
                a.deny(*n);
            });
            a
        });
        let rate = match cfg.rate_per_source {
            Some((rate, burst)) => Some(TokenBucket::new(rate, burst)?),
            None => None,
        };
        Ok(DatagramGate {
            access,
            rate,
            buckets: HashMap::new(),
            max_sources: cfg.max_sources.unwrap_or(DEFAULT_MAX_SOURCES).max(1),
            resets: 0,
        })
    }

    /// Nothing to check: every datagram passes.
    pub(crate) fn is_open(&self) -> bool {
        self.access.is_none() && self.rate.is_none()
    }

    /// May a datagram from `ip` reach the handler now?
    pub(crate) fn admit(&mut self, ip: IpAddr, now: Instant) -> Result<(), RefuseReason> {
        if let Some(access) = self.access.as_mut() {
            if let Verdict::Refuse(why) = access.check(ip, now) {
                return Err(why);
            }
        }
        let Some(template) = &self.rate else {
            return Ok(());
        };
        let group = source_group(ip);
        if !self.buckets.contains_key(&group) && self.buckets.len() >= self.max_sources {
            self.buckets.clear();
            self.resets += 1;
        }
        let bucket = self
            .buckets
            .entry(group)
            .or_insert_with(|| template.clone());
        if bucket.try_take(now) {
            Ok(())
        } else {
            Err(RefuseReason::RateLimitedPerIp)
        }
    }
}

/// The group a source's rate is counted under: each IPv4 address (also spelled as an
/// IPv4-mapped IPv6 one), each IPv6 /64.
fn source_group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn gate(cfg: DatagramAdmission) -> DatagramGate {
        DatagramGate::new(&cfg).unwrap()
    }

    #[test]
    fn lists_refuse_with_their_reason() {
        let mut g = gate(DatagramAdmission {
            allow: vec!["10.0.0.0/8".parse().unwrap()],
            deny: vec!["10.6.6.6".parse().unwrap()],
            ..Default::default()
        });
        let now = Instant::now();
        assert_eq!(g.admit("10.1.1.1".parse().unwrap(), now), Ok(()));
        assert_eq!(
            g.admit("10.6.6.6".parse().unwrap(), now),
            Err(RefuseReason::Denied)
        );
        assert_eq!(
            g.admit("192.0.2.1".parse().unwrap(), now),
            Err(RefuseReason::NotAllowed)
        );
    }

    #[test]
    fn each_source_has_its_own_bucket_and_an_ipv6_64_is_one_source() {
        let mut g = gate(DatagramAdmission {
            rate_per_source: Some((1.0, 2)),
            ..Default::default()
        });
        let now = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!((g.admit(a, now), g.admit(a, now)), (Ok(()), Ok(())));
        assert_eq!(g.admit(a, now), Err(RefuseReason::RateLimitedPerIp));
        assert_eq!(g.admit("192.0.2.2".parse().unwrap(), now), Ok(()));
        assert_eq!(g.admit(a, now + Duration::from_secs(1)), Ok(()), "refilled");
        let v6a: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::2".parse().unwrap();
        assert_eq!((g.admit(v6a, now), g.admit(v6b, now)), (Ok(()), Ok(())));
        assert_eq!(
            g.admit(v6a, now),
            Err(RefuseReason::RateLimitedPerIp),
            "one /64"
        );
    }

    #[test]
    fn a_flood_of_sources_keeps_the_table_bounded() {
        let mut g = gate(DatagramAdmission {
            rate_per_source: Some((1.0, 1)),
            max_sources: Some(100),
            ..Default::default()
        });
        let now = Instant::now();
        for i in 0..10_000u32 {
            assert_eq!(
                g.admit(IpAddr::V4(i.into()), now),
                Ok(()),
                "a new source passes"
            );
            assert!(g.buckets.len() <= 100);
        }
        assert_eq!(g.resets, 99);
    }
}
