//! `PerIpLimiter`: connections and accept rate per peer address, in bounded memory.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Instant;

use super::refuse_reason::RefuseReason;
use super::token_bucket::TokenBucket;

/// How many addresses [`PerIpLimiter::new`] tracks at most.
pub const DEFAULT_MAX_TRACKED_IPS: usize = 65_536;

/// How many refilled addresses one `try_open` or `close` forgets at most.
const FORGET_BUDGET: usize = 8;

/// What is known about one address.
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

/// Per-address limits: how many connections each peer address may hold at once, and
/// optionally how fast it may open them.
///
/// Call [`try_open`](Self::try_open) when a connection from `ip` is accepted and
/// [`close`](Self::close) when that connection closes. IPv4-mapped IPv6 addresses count
/// as the IPv4 address they carry.
///
/// Memory is bounded. An address is tracked only while it says something a fresh entry
/// would not: while it has a connection open, or while its rate bucket is refilling after
/// its last connection closed (at most [`TokenBucket::refill_time`]). Addresses whose
/// bucket has refilled are forgotten a few at a time by later calls, or all at once by
/// [`forget_refilled`](Self::forget_refilled). On top of that the number of tracked
/// addresses is capped ([`with_max_tracked`](Self::with_max_tracked), default
/// [`DEFAULT_MAX_TRACKED_IPS`]): when the table is full, a connection from an address
/// not in it is refused with [`RefuseReason::PerIpTableFull`] instead of growing the
/// table, while addresses already tracked keep being served. Keep the cap at or above the
/// server's maximum connection count so that, without a per-address rate, it can only
/// bite when that maximum would anyway.
#[derive(Debug, Clone)]
pub struct PerIpLimiter {
    max_per_ip: u32,
    max_tracked: usize,
    /// The bucket each new address starts with (full), if rates are limited.
    rate: Option<TokenBucket>,
    tracked: HashMap<IpAddr, Tracked>,
    /// Addresses that closed their last connection before their bucket was full, each
    /// with a time by which it is full, in time order, with a sequence number (a record
    /// whose number no longer matches its address's `queued` is stale and skipped).
    refilling: VecDeque<(IpAddr, Instant, u64)>,
    next_seq: u64,
}

impl PerIpLimiter {
    /// A limiter allowing each address `max_per_ip` connections at once, tracking at most
    /// [`DEFAULT_MAX_TRACKED_IPS`] addresses, with no per-address rate.
    pub fn new(max_per_ip: u32) -> PerIpLimiter {
        PerIpLimiter {
            max_per_ip,
            max_tracked: DEFAULT_MAX_TRACKED_IPS,
            rate: None,
            tracked: HashMap::new(),
            refilling: VecDeque::new(),
            next_seq: 0,
        }
    }

    /// Tracks at most `max` addresses (see the type's documentation).
    pub fn with_max_tracked(mut self, max: usize) -> PerIpLimiter {
        self.max_tracked = max;
        self
    }

    /// Gives every address its own copy of `bucket` (new addresses start with it full).
    pub fn with_rate(mut self, bucket: TokenBucket) -> PerIpLimiter {
        self.rate = Some(bucket);
        self
    }

    /// The most connections one address may hold.
    pub fn max_per_ip(&self) -> u32 {
        self.max_per_ip
    }

    /// The most addresses tracked at once.
    pub fn max_tracked(&self) -> usize {
        self.max_tracked
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.tracked.len()
    }

    /// Connections counted as open from `ip`.
    pub fn open_count(&self, ip: IpAddr) -> u32 {
        self.tracked.get(&ip.to_canonical()).map_or(0, |t| t.open)
    }

    /// Counts a new connection from `ip` at `now`, or says why it must be refused:
    /// [`RefuseReason::MaxPerIp`] (the address is at its maximum; no token is spent),
    /// [`RefuseReason::RateLimitedPerIp`] (its bucket is empty) or
    /// [`RefuseReason::PerIpTableFull`] (a new address and no room to track it).
    pub fn try_open(&mut self, ip: IpAddr, now: Instant) -> Result<(), RefuseReason> {
        self.forget_some(now, FORGET_BUDGET);
        let ip = ip.to_canonical();
        let room = self.tracked.len() < self.max_tracked;
        match self.tracked.entry(ip) {
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
                if self.max_per_ip == 0 {
                    return Err(RefuseReason::MaxPerIp);
                }
                if !room {
                    return Err(RefuseReason::PerIpTableFull);
                }
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
    /// closing an address with no open connection does nothing).
    pub fn close(&mut self, ip: IpAddr, now: Instant) {
        let ip = ip.to_canonical();
        if let Some(seen) = self.tracked.get_mut(&ip) {
            if seen.open > 0 {
                seen.open -= 1;
                if seen.open == 0 {
                    self.settle(ip, now);
                }
            }
        }
        self.forget_some(now, FORGET_BUDGET);
    }

    /// Forgets every address whose bucket has refilled by `now`; returns how many.
    pub fn forget_refilled(&mut self, now: Instant) -> usize {
        self.forget_some(now, usize::MAX)
    }

    /// Handles records in `refilling` that are due at `now`, at most `budget` of them;
    /// returns how many addresses were forgotten.
    fn forget_some(&mut self, now: Instant, budget: usize) -> usize {
        let mut forgotten = 0;
        for _ in 0..budget {
            let Some(&(ip, due, seq)) = self.refilling.front() else {
                break;
            };
            if due > now {
                break;
            }
            self.refilling.pop_front();
            match self.tracked.get_mut(&ip) {
                Some(seen) if seen.queued == Some(seq) => {
                    seen.queued = None;
                    if seen.open == 0 {
                        forgotten += usize::from(self.settle(ip, now));
                    }
                }
                _ => {} // stale record: the address was forgotten or queued again since
            }
        }
        forgotten
    }

    /// For an address with no connection open: forgets it if its bucket is full, or
    /// queues it to be looked at again once the bucket has surely refilled. Returns
    /// whether it was forgotten.
    fn settle(&mut self, ip: IpAddr, now: Instant) -> bool {
        let Some(seen) = self.tracked.get_mut(&ip) else {
            return false;
        };
        if seen.is_idle(now) {
            self.tracked.remove(&ip);
            return true;
        }
        if seen.queued.is_none() {
            // The last take was at or before `now`, so the bucket is full one refill time
            // from now. Every record is due `now + refill_time` with the same refill time,
            // so pushing at the back keeps the queue in time order. A refill time too long
            // for `Instant` is never due: the address stays until it opens again.
            let refill = seen.bucket.as_ref().map(TokenBucket::refill_time);
            if let Some(due) = refill.and_then(|r| now.checked_add(r)) {
                let seq = self.next_seq;
                self.next_seq += 1;
                seen.queued = Some(seq);
                self.refilling.push_back((ip, due, seq));
            }
        }
        false
    }
}
