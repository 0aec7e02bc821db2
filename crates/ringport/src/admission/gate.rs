//! `Gate`: the admission state one engine shares between its workers, and the settings
//! (`AdmissionConfig`) it is built from.

use super::per_ip::{DEFAULT_IPV4_PREFIX, DEFAULT_IPV6_PREFIX, DEFAULT_MAX_TRACKED_IPS};
use super::{
    AccessList, IpNet, IpNetError, PerIpLimiter, RateLimitError, RefuseReason, TokenBucket, Verdict,
};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Admission settings of a server; every limit is off by default. Checked at accept, in
/// order: allow/deny lists, the connection cap, the per-address limits, the server-wide
/// rate, then the handler's `on_accept`. A refused connection is closed at once, runs no
/// callback and is counted under its [`RefuseReason`].
///
/// The per-address limits (`max_per_ip`, `accept_rate_per_ip`) count peers in groups:
/// each IPv4 address alone and each IPv6 `/64` as one by default (`ipv4_prefix`,
/// `ipv6_prefix`); an IPv4-mapped IPv6 peer counts as its IPv4 address. See
/// [`PerIpLimiter`] for how its table stays bounded.
///
/// Non-exhaustive: start from [`AdmissionConfig::default`] (nothing limited) and set the
/// fields you need, or use the builders' setters (`max_connections`, `allow`, ...).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AdmissionConfig {
    /// Most inbound connections open at once, over all workers. Default: none.
    pub max_connections: Option<u64>,
    /// Most connections open at once from one address group. Default: none.
    pub max_per_ip: Option<u32>,
    /// Accepts per second over the whole server, and the burst allowed (a token bucket).
    /// Default: none.
    pub accept_rate: Option<(f64, u32)>,
    /// Accepts per second from one address group, and the burst. Default: none.
    pub accept_rate_per_ip: Option<(f64, u32)>,
    /// Prefix length (0 to 32) grouping IPv4 peers for the per-address limits: 32 counts
    /// each address alone, 24 counts each `/24` as one peer. Default:
    /// [`DEFAULT_IPV4_PREFIX`] (32).
    pub ipv4_prefix: u8,
    /// Prefix length (0 to 128) grouping IPv6 peers for the per-address limits. Default:
    /// [`DEFAULT_IPV6_PREFIX`] (64: one subscriber's subnet counts as one peer, whichever
    /// of its addresses it connects from); 128 counts each address alone.
    pub ipv6_prefix: u8,
    /// Most address groups the per-address table tracks at once. The table is made at
    /// least `max_connections` large when there is a cap, so it never refuses anyone
    /// before the cap would; without a cap, a new group arriving while every tracked group
    /// has a live connection is refused ([`RefuseReason::PerIpTableFull`]). Groups with no
    /// live connection are evicted before that happens. 0 counts as 1. Default:
    /// [`DEFAULT_MAX_TRACKED_IPS`] (65,536).
    pub max_tracked_ips: usize,
    /// If not empty, only these ranges may connect. Default: empty.
    pub allow: Vec<IpNet>,
    /// These ranges may not connect. Default: empty.
    pub deny: Vec<IpNet>,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            max_connections: None,
            max_per_ip: None,
            accept_rate: None,
            accept_rate_per_ip: None,
            ipv4_prefix: DEFAULT_IPV4_PREFIX,
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
            max_tracked_ips: DEFAULT_MAX_TRACKED_IPS,
            allow: Vec::new(),
            deny: Vec::new(),
        }
    }
}

/// Why a [`Gate`] could not be built from an [`AdmissionConfig`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum GateError {
    /// A rate or burst is out of range.
    #[error(transparent)]
    Rate(#[from] RateLimitError),
    /// A per-address prefix is longer than its address.
    #[error("per-address grouping: {0}")]
    Prefix(#[from] IpNetError),
}

/// The admission state of one engine, shared by its workers (each check takes an
/// uncontended lock at most; with nothing configured, none).
#[derive(Debug)]
pub(crate) struct Gate {
    access: Mutex<AccessList>,
    /// The access list has entries (else it is not consulted).
    access_active: AtomicBool,
    max_connections: Option<u64>,
    /// Admitted inbound connections open now (counted only with a cap).
    open: AtomicU64,
    rate: Option<Mutex<TokenBucket>>,
    per_ip: Option<Mutex<PerIpLimiter>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave it half-updated in a way
    // that matters more than refusing to serve; take the data as it is.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Gate {
    pub(crate) fn new(cfg: &AdmissionConfig) -> Result<Gate, GateError> {
        let mut access = AccessList::new();
        for net in &cfg.allow {
            access.allow(*net);
        }
        for net in &cfg.deny {
            access.deny(*net);
        }
        let per_ip = if cfg.max_per_ip.is_some() || cfg.accept_rate_per_ip.is_some() {
            // Live groups hold a connection each: with a cap, a table that large can
            // never be full of live groups before the cap refuses on its own.
            let cap = cfg
                .max_connections
                .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
            let mut limiter = PerIpLimiter::new(cfg.max_per_ip.unwrap_or(u32::MAX))
                .with_prefixes(cfg.ipv4_prefix, cfg.ipv6_prefix)?
                .with_max_tracked(cfg.max_tracked_ips.max(cap).max(1));
            if let Some((rate, burst)) = cfg.accept_rate_per_ip {
                limiter = limiter.with_rate(TokenBucket::new(rate, burst)?);
            }
            Some(Mutex::new(limiter))
        } else {
            None
        };
        let rate = match cfg.accept_rate {
            Some((rate, burst)) => Some(Mutex::new(TokenBucket::new(rate, burst)?)),
            None => None,
        };
        Ok(Gate {
            access_active: AtomicBool::new(!cfg.allow.is_empty() || !cfg.deny.is_empty()),
            access: Mutex::new(access),
            max_connections: cfg.max_connections,
            open: AtomicU64::new(0),
            rate,
            per_ip,
        })
    }

    /// Admit a connection from `ip` (counting it) or say why not.
    pub(crate) fn admit(&self, ip: IpAddr, now: Instant) -> Result<(), RefuseReason> {
        if self.access_active.load(Ordering::Relaxed) {
            if let Verdict::Refuse(why) = lock(&self.access).check(ip, now) {
                return Err(why);
            }
        }
        if let Some(max) = self.max_connections {
            if self.open.fetch_add(1, Ordering::AcqRel) >= max {
                self.open.fetch_sub(1, Ordering::AcqRel);
                return Err(RefuseReason::MaxConnections);
            }
        }
        if let Some(per_ip) = &self.per_ip {
            if let Err(why) = lock(per_ip).try_open(ip, now) {
                self.release_count();
                return Err(why);
            }
        }
        if let Some(rate) = &self.rate {
            if !lock(rate).try_take(now) {
                self.release(ip, now);
                return Err(RefuseReason::RateLimited);
            }
        }
        Ok(())
    }

    /// An admitted connection from `ip` closed (or was vetoed after admission).
    pub(crate) fn release(&self, ip: IpAddr, now: Instant) {
        self.release_count();
        if let Some(per_ip) = &self.per_ip {
            lock(per_ip).close(ip, now);
        }
    }

    fn release_count(&self) {
        if self.max_connections.is_some() {
            self.open.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Refuse `net` from now on, or until `until`.
    pub(crate) fn deny(&self, net: IpNet, until: Option<Instant>) {
        let mut access = lock(&self.access);
        match until {
            Some(t) => access.deny_until(net, t),
            None => access.deny(net),
        };
        self.access_active.store(true, Ordering::Relaxed);
    }

    /// Add `net` to the allow list (once it has entries, only they may connect).
    pub(crate) fn allow(&self, net: IpNet) {
        lock(&self.access).allow(net);
        self.access_active.store(true, Ordering::Relaxed);
    }

    /// Lift a deny entry or ban; true if there was one.
    pub(crate) fn remove_deny(&self, net: IpNet) -> bool {
        lock(&self.access).remove_deny(net)
    }
}

/// The admission setters of a builder whose `AdmissionConfig` sits at `self.<path>`
/// (the server builder's, server-wide; a listener's, for that listener only).
macro_rules! admission_setters {
    ($($field:ident).+) => {
        /// At most `n` inbound connections open at once (over all workers); more are
        /// refused at accept ([`crate::admission::RefuseReason::MaxConnections`]).
        pub fn max_connections(mut self, n: u64) -> Self {
            self.$($field).+.max_connections = Some(n);
            self
        }

        /// At most `n` connections open at once from one address (or address group; see
        /// `per_ip_prefixes`).
        pub fn max_per_ip(mut self, n: u32) -> Self {
            self.$($field).+.max_per_ip = Some(n);
            self
        }

        /// At most `rate` accepts per second, in bursts of up to `burst`.
        pub fn accept_rate(mut self, rate: f64, burst: u32) -> Self {
            self.$($field).+.accept_rate = Some((rate, burst));
            self
        }

        /// At most `rate` accepts per second from one address, in bursts of up to `burst`.
        pub fn accept_rate_per_ip(mut self, rate: f64, burst: u32) -> Self {
            self.$($field).+.accept_rate_per_ip = Some((rate, burst));
            self
        }

        /// Group peers by prefix for the per-address limits: IPv4 peers by their first
        /// `ipv4` bits (default 32: each address alone), IPv6 peers by their first `ipv6`
        /// bits (default 64). A prefix longer than its address fails `start`.
        pub fn per_ip_prefixes(mut self, ipv4: u8, ipv6: u8) -> Self {
            self.$($field).+.ipv4_prefix = ipv4;
            self.$($field).+.ipv6_prefix = ipv6;
            self
        }

        /// Track at most `n` address groups for the per-address limits (default 65,536;
        /// see [`crate::AdmissionConfig::max_tracked_ips`]).
        pub fn max_tracked_ips(mut self, n: usize) -> Self {
            self.$($field).+.max_tracked_ips = n;
            self
        }

        /// Allow `net` (once any range is allowed, only allowed ranges may connect).
        pub fn allow(mut self, net: crate::admission::IpNet) -> Self {
            self.$($field).+.allow.push(net);
            self
        }

        /// Refuse connections from `net`.
        pub fn deny(mut self, net: crate::admission::IpNet) -> Self {
            self.$($field).+.deny.push(net);
            self
        }
    };
}
pub(crate) use admission_setters;
