//! `PerIpLimiter`: connections and accept rate per peer address (or per address prefix),
//! in bounded memory.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use super::ip_net::{mask_v4, mask_v6, IpNetError};
use super::refuse_reason::RefuseReason;
use super::token_bucket::TokenBucket;

/// How many address groups [`PerIpLimiter::new`] tracks at most.
pub const DEFAULT_MAX_TRACKED_IPS: usize = 65_536;

/// The prefix length grouping IPv4 peers by default: each address on its own.
pub const DEFAULT_IPV4_PREFIX: u8 = 32;

/// The prefix length grouping IPv6 peers by default: one `/64`, the block a single
/// subscriber or host is usually given (a client choosing its own interface identifier
/// can pick any of 2^64 addresses inside it).
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// How many refilled addresses one `try_open` or `close` forgets at most.
const FORGET_BUDGET: usize = 8;

/// What is known about one address group.
#[derive(Debug, Clone)]
struct Tracked {
    /// Connections open from it.
    open: u32,
    /// Its own rate limit, if the limiter has one.
    bucket: Option<TokenBucket>,
    /// The sequence number of its record in `refilling`, if it has one.
    queued: Option<u64>,
}

impl Tracked {
    /// Whether the entry says nothing a fresh one would not: no connection open and a
    /// full bucket.
    fn is_idle(&self, now: Instant) -> bool {
        self.open == 0 && self.bucket.as_ref().map_or(true, |b| b.is_full(now))
    }
}

/// Per-address limits: how many connections each peer may hold at once, and optionally
/// how fast it may open them.
///
/// Call [`try_open`](Self::try_open) when a connection from `ip` is accepted and
/// [`close`](Self::close) when that connection closes.
///
/// **Grouping.** Peers are counted per prefix ([`with_prefixes`](Self::with_prefixes)):
/// by default each IPv4 address on its own ([`DEFAULT_IPV4_PREFIX`]) and each IPv6 `/64`
/// as one ([`DEFAULT_IPV6_PREFIX`]), so a host cannot dodge its limits by hopping between
/// the addresses of its own IPv6 subnet. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, as
/// a dual-stack socket reports IPv4 peers) count as the IPv4 address they carry, under the
/// IPv4 prefix.
///
/// **Memory.** A group is tracked only while it says something a fresh entry would not:
/// while it has a connection open, or while its rate bucket is refilling after its last
/// connection closed (at most [`TokenBucket::refill_time`]). Groups whose bucket has
/// refilled are forgotten a few at a time by later calls, or all at once by
/// [`forget_refilled`](Self::forget_refilled). The number of tracked groups is capped
/// ([`with_max_tracked`](Self::with_max_tracked), default [`DEFAULT_MAX_TRACKED_IPS`]).
///
/// **A full table** never refuses a newcomer while there is an entry without a live
/// connection: it first forgets every group whose bucket has refilled, then evicts the
/// group that closed its last connection longest ago (whose bucket is nearest to full;
/// that group starts afresh if it comes back, which costs the limit at most one burst of
/// a peer that had to outlast [`max_tracked`](Self::max_tracked) other groups). Only when
/// every tracked group holds a live connection is a new group refused, with
/// [`RefuseReason::PerIpTableFull`]; groups already tracked keep being served. Each live
/// group holds at least one connection, so a table at least as large as the server's
/// connection cap can never be full of live groups before the cap itself refuses (the
/// engine sizes it so; see [`crate::AdmissionConfig::max_tracked_ips`]).
#[derive(Debug, Clone)]
pub struct PerIpLimiter {
    max_per_ip: u32,
    max_tracked: usize,
    /// Prefix lengths grouping IPv4 and IPv6 peers.
    v4_prefix: u8,
    v6_prefix: u8,
    /// The bucket each new group starts with (full), if rates are limited.
    rate: Option<TokenBucket>,
    /// Keyed by the group's network address (host bits cleared; IPv4 for mapped peers).
    tracked: HashMap<IpAddr, Tracked>,
    /// Groups that closed their last connection before their bucket was full, each with
    /// a time by which it is full (`None`: a refill time too long for `Instant`, never),
    /// in time order, with a sequence number (a record whose number no longer matches its
    /// group's `queued` is stale and skipped). Every tracked group with no connection open
    /// has a live record here, which is what makes eviction cheap.
    refilling: VecDeque<(IpAddr, Option<Instant>, u64)>,
    next_seq: u64,
    /// Groups evicted from a full table so far.
    evicted: u64,
}

impl PerIpLimiter {
    /// A limiter allowing each group `max_per_ip` connections at once, tracking at most
    /// [`DEFAULT_MAX_TRACKED_IPS`] groups, with the default prefixes (IPv4 `/32`, IPv6
    /// `/64`) and no per-group rate.
    pub fn new(max_per_ip: u32) -> PerIpLimiter {
        PerIpLimiter {
            max_per_ip,
            max_tracked: DEFAULT_MAX_TRACKED_IPS,
            v4_prefix: DEFAULT_IPV4_PREFIX,
            v6_prefix: DEFAULT_IPV6_PREFIX,
            rate: None,
            tracked: HashMap::new(),
            refilling: VecDeque::new(),
            next_seq: 0,
            evicted: 0,
        }
    }

    /// Tracks at most `max` groups (see the type's documentation).
    pub fn with_max_tracked(mut self, max: usize) -> PerIpLimiter {
        self.max_tracked = max;
        self
    }

    /// Groups IPv4 peers by their first `v4` bits (0 to 32) and IPv6 peers by their first
    /// `v6` bits (0 to 128): every peer of one group shares its limits. Fails for a
    /// prefix longer than its address.
    pub fn with_prefixes(mut self, v4: u8, v6: u8) -> Result<PerIpLimiter, IpNetError> {
        for (len, max) in [(v4, 32), (v6, 128)] {
            if len > max {
                return Err(IpNetError::PrefixTooLong {
                    len: u32::from(len),
                    max,
                });
            }
        }
        self.v4_prefix = v4;
        self.v6_prefix = v6;
        Ok(self)
    }

    /// Gives every group its own copy of `bucket` (new groups start with it full).
    pub fn with_rate(mut self, bucket: TokenBucket) -> PerIpLimiter {
        self.rate = Some(bucket);
        self
    }

    /// The most connections one group may hold.
    pub fn max_per_ip(&self) -> u32 {
        self.max_per_ip
    }

    /// The most groups tracked at once.
    pub fn max_tracked(&self) -> usize {
        self.max_tracked
    }

    /// The prefix lengths grouping IPv4 and IPv6 peers, in that order.
    pub fn prefixes(&self) -> (u8, u8) {
        (self.v4_prefix, self.v6_prefix)
    }

    /// Groups tracked now.
    pub fn tracked(&self) -> usize {
        self.tracked.len()
    }

    /// Groups evicted from a full table so far (each had no connection open).
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The group `ip` counts under: its network address with host bits cleared (an
    /// IPv4-mapped address gives the IPv4 network).
    pub fn group_of(&self, ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask_v4(self.v4_prefix))),
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask_v6(self.v6_prefix))),
        }
    }

    /// Connections counted as open from `ip`'s group.
    pub fn open_count(&self, ip: IpAddr) -> u32 {
        self.tracked.get(&self.group_of(ip)).map_or(0, |t| t.open)
    }

    /// Counts a new connection from `ip` at `now`, or says why it must be refused:
    /// [`RefuseReason::MaxPerIp`] (the group is at its maximum; no token is spent),
    /// [`RefuseReason::RateLimitedPerIp`] (its bucket is empty) or
    /// [`RefuseReason::PerIpTableFull`] (a new group, and every tracked group has a
    /// connection open).
    pub fn try_open(&mut self, ip: IpAddr, now: Instant) -> Result<(), RefuseReason> {
        self.forget_some(now, FORGET_BUDGET);
        let key = self.group_of(ip);
        if !self.tracked.contains_key(&key) {
            if self.max_per_ip == 0 {
                return Err(RefuseReason::MaxPerIp);
            }
            if self.tracked.len() >= self.max_tracked && !self.make_room(now) {
                return Err(RefuseReason::PerIpTableFull);
            }
        }
        match self.tracked.entry(key) {
            MapEntry::Occupied(mut seen) => {
                let seen = seen.get_mut();
                if seen.open >= self.max_per_ip {
                    return Err(RefuseReason::MaxPerIp);
                }
                if let Some(bucket) = seen.bucket.as_mut() {
                    if !bucket.try_take(now) {
                        return Err(RefuseReason::RateLimitedPerIp);
                    }
                }
                seen.open += 1;
            }
            MapEntry::Vacant(new) => {
                let mut bucket = self.rate.clone();
                if let Some(bucket) = bucket.as_mut() {
                    // A full bucket has at least one token: this always succeeds.
                    if !bucket.try_take(now) {
                        return Err(RefuseReason::RateLimitedPerIp);
                    }
                }
                new.insert(Tracked {
                    open: 1,
                    bucket,
                    queued: None,
                });
            }
        }
        Ok(())
    }

    /// Counts a connection from `ip` as closed at `now` (one that `try_open` admitted;
    /// closing a group with no open connection does nothing).
    pub fn close(&mut self, ip: IpAddr, now: Instant) {
        let key = self.group_of(ip);
        if let Some(seen) = self.tracked.get_mut(&key) {
            if seen.open > 0 {
                seen.open -= 1;
                if seen.open == 0 {
                    self.settle(key, now);
                }
            }
        }
        self.forget_some(now, FORGET_BUDGET);
    }

    /// Forgets every group whose bucket has refilled by `now`; returns how many.
    pub fn forget_refilled(&mut self, now: Instant) -> usize {
        self.forget_some(now, usize::MAX)
    }

    /// Frees one place in a full table: forgets the groups whose buckets have refilled,
    /// else evicts the group without a connection that has waited longest. False if
    /// every tracked group has a connection open.
    fn make_room(&mut self, now: Instant) -> bool {
        if self.forget_refilled(now) > 0 {
            return true;
        }
        while let Some((key, _, seq)) = self.refilling.pop_front() {
            let Some(seen) = self.tracked.get_mut(&key) else {
                continue; // stale: forgotten since
            };
            if seen.queued != Some(seq) {
                continue; // stale: queued again since
            }
            seen.queued = None;
            if seen.open == 0 {
                self.tracked.remove(&key);
                self.evicted += 1;
                tracing::debug!(group = %key, "per-address table full: evicted an idle group");
                return true;
            }
            // Open again since it was queued: it is queued anew when it next goes idle.
        }
        false
    }

    /// Handles records in `refilling` that are due at `now`, at most `budget` of them;
    /// returns how many groups were forgotten.
    fn forget_some(&mut self, now: Instant, budget: usize) -> usize {
        let mut forgotten = 0;
        for _ in 0..budget {
            let Some(&(key, Some(due), seq)) = self.refilling.front() else {
                break; // empty, or never due (then neither is anything behind it)
            };
            if due > now {
                break;
            }
            self.refilling.pop_front();
            match self.tracked.get_mut(&key) {
                Some(seen) if seen.queued == Some(seq) => {
                    seen.queued = None;
                    if seen.open == 0 {
                        forgotten += usize::from(self.settle(key, now));
                    }
                }
                _ => {} // stale record: the group was forgotten or queued again since
            }
        }
        forgotten
    }

    /// For a group with no connection open: forgets it if its bucket is full, or queues
    /// it to be looked at again once the bucket has surely refilled. Returns whether it
    /// was forgotten.
    fn settle(&mut self, key: IpAddr, now: Instant) -> bool {
        let Some(seen) = self.tracked.get_mut(&key) else {
            return false;
        };
        if seen.is_idle(now) {
            self.tracked.remove(&key);
            return true;
        }
        if seen.queued.is_none() {
            // The last take was at or before `now`, so the bucket is full one refill time
            // from now. Every record is due `now + refill_time` with the same refill time,
            // so pushing at the back keeps the queue in time order. A refill time too long
            // for `Instant` is never due (`None`, behind every due record): the group
            // stays until it opens again or is evicted.
            let refill = seen.bucket.as_ref().map(TokenBucket::refill_time);
            let due = refill.and_then(|r| now.checked_add(r));
            let seq = self.next_seq;
            self.next_seq += 1;
            seen.queued = Some(seq);
            self.refilling.push_back((key, due, seq));
        }
        false
    }
}
