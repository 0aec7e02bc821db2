//! `RefuseReason`: why a connection was refused at accept.

use std::fmt;

/// Why an incoming connection was refused before the handler saw it.
///
/// Each value has a stable snake_case [`name`](Self::name) for counters, logs and JSON;
/// [`ALL`](Self::ALL) lists them in a fixed order with [`index`](Self::index) giving the
/// position, so a stats array can hold one counter per reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RefuseReason {
    /// The peer matched a deny range (or an unexpired temporary ban).
    Denied,
    /// The allow list is not empty and the peer matched none of it.
    NotAllowed,
    /// The server already holds its maximum number of connections.
    MaxConnections,
    /// The peer's address already holds its maximum number of connections.
    MaxPerIp,
    /// The server-wide accept rate was exceeded.
    RateLimited,
    /// The peer's address exceeded its own accept rate.
    RateLimitedPerIp,
    /// The per-address table is at its cap, every group in it has a connection open, and
    /// this address's group is not in it yet (see [`super::PerIpLimiter`]; with a
    /// connection cap the engine sizes the table so that this cannot happen).
    PerIpTableFull,
    /// `Handler::on_accept` rejected the peer.
    HandlerVeto,
}

impl RefuseReason {
    /// Every reason, in [`index`](Self::index) order.
    pub const ALL: [RefuseReason; 8] = [
        RefuseReason::Denied,
        RefuseReason::NotAllowed,
        RefuseReason::MaxConnections,
        RefuseReason::MaxPerIp,
        RefuseReason::RateLimited,
        RefuseReason::RateLimitedPerIp,
        RefuseReason::PerIpTableFull,
        RefuseReason::HandlerVeto,
    ];

    /// A stable snake_case name: `"denied"`, `"not_allowed"`, `"max_connections"`,
    /// `"max_per_ip"`, `"rate_limited"`, `"rate_limited_per_ip"`, `"per_ip_table_full"`,
    /// `"handler_veto"`.
    pub fn name(self) -> &'static str {
        match self {
            RefuseReason::Denied => "denied",
            RefuseReason::NotAllowed => "not_allowed",
            RefuseReason::MaxConnections => "max_connections",
            RefuseReason::MaxPerIp => "max_per_ip",
            RefuseReason::RateLimited => "rate_limited",
            RefuseReason::RateLimitedPerIp => "rate_limited_per_ip",
            RefuseReason::PerIpTableFull => "per_ip_table_full",
            RefuseReason::HandlerVeto => "handler_veto",
        }
    }

    /// This reason's position in [`ALL`](Self::ALL).
    pub fn index(self) -> usize {
        match self {
            RefuseReason::Denied => 0,
            RefuseReason::NotAllowed => 1,
            RefuseReason::MaxConnections => 2,
            RefuseReason::MaxPerIp => 3,
            RefuseReason::RateLimited => 4,
            RefuseReason::RateLimitedPerIp => 5,
            RefuseReason::PerIpTableFull => 6,
            RefuseReason::HandlerVeto => 7,
        }
    }
}

impl fmt::Display for RefuseReason {
    /// Writes [`RefuseReason::name`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
