//! `AccessList`: allow and deny ranges, with temporary bans.

use std::net::IpAddr;
use std::time::Instant;

use super::ip_net::IpNet;
use super::net_set::NetSet;
use super::refuse_reason::RefuseReason;

/// How many deny rules of each family one [`AccessList::check`] looks at for expiry. Bans
/// come from connections that were checked, so the cursor sweeps the list at least as fast
/// as bans are added and expired bans cannot pile up.
const PRUNE_BUDGET: usize = 4;

/// The answer of an admission check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Let the connection in (as far as this check goes).
    Admit,
    /// Refuse it, for this reason.
    Refuse(RefuseReason),
}

impl Verdict {
    /// Whether this is [`Verdict::Admit`].
    pub fn is_admit(self) -> bool {
        self == Verdict::Admit
    }
}

/// Allow and deny lists of address ranges, consulted on every accept.
///
/// [`check`](Self::check) decides in this order:
/// 1. a live deny range contains the peer: [`RefuseReason::Denied`] (deny wins over allow);
/// 2. the allow list is not empty and no allow range contains the peer:
///    [`RefuseReason::NotAllowed`];
/// 3. otherwise [`Verdict::Admit`].
///
/// IPv4 peers get the same answer in either spelling (`10.1.2.3` or `::ffff:10.1.2.3`; see
/// [`IpNet`]). A deny range may expire ([`deny_until`](Self::deny_until)): a temporary ban
/// is ignored from its expiry on, and removed by later checks a few rules at a time (each
/// `check` looks at no more than a fixed handful of rules for expiry), or all at once
/// by [`prune_expired`](Self::prune_expired). Adding a range equal to one already present
/// merges them (a permanent deny beats a ban; of two bans the later expiry wins), so
/// banning the same address again does not grow the list.
///
/// Cost: a check scans the rules of the peer's address family, one AND and one compare
/// each over a flat array; a few hundred rules take well under a microsecond, with no
/// allocation. There is no clock inside: the caller passes `now`.
#[derive(Debug, Clone, Default)]
pub struct AccessList {
    allow: NetSet,
    deny: NetSet,
}

impl AccessList {
    /// An empty list: admits everyone.
    pub fn new() -> AccessList {
        AccessList::default()
    }

    /// Adds `net` to the allow list. Once the allow list is not empty, only peers inside
    /// one of its ranges (and in no deny range) are admitted.
    pub fn allow(&mut self, net: IpNet) -> &mut AccessList {
        self.allow.insert(net, None);
        self
    }

    /// Adds `net` to the deny list for good.
    pub fn deny(&mut self, net: IpNet) -> &mut AccessList {
        self.deny.insert(net, None);
        self
    }

    /// Denies `net` until `until` (a temporary ban): from `until` on it no longer counts.
    /// If `net` is already denied, the later of the two expiries is kept.
    pub fn deny_until(&mut self, net: IpNet, until: Instant) -> &mut AccessList {
        self.deny.insert(net, Some(until));
        self
    }

    /// Removes the allow range equal to `net`; false if there was none.
    pub fn remove_allow(&mut self, net: IpNet) -> bool {
        self.allow.remove(net)
    }

    /// Removes the deny range (or ban) equal to `net`; false if there was none.
    pub fn remove_deny(&mut self, net: IpNet) -> bool {
        self.deny.remove(net)
    }

    /// Decides about a peer at `ip` at time `now`, and removes at most a few expired bans.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Verdict {
        self.deny.prune_step(now, PRUNE_BUDGET);
        self.peek(ip, now)
    }

    /// Decides like [`check`](Self::check) without pruning anything (for a shared,
    /// read-only list).
    pub fn peek(&self, ip: IpAddr, now: Instant) -> Verdict {
        let ip = ip.to_canonical();
        if self.deny.contains_canonical(ip, now) {
            Verdict::Refuse(RefuseReason::Denied)
        } else if !self.allow.is_empty() && !self.allow.contains_canonical(ip, now) {
            Verdict::Refuse(RefuseReason::NotAllowed)
        } else {
            Verdict::Admit
        }
    }

    /// Removes every ban expired at `now`; returns how many. O(deny list length).
    pub fn prune_expired(&mut self, now: Instant) -> usize {
        self.deny.prune_all(now)
    }

    /// Ranges in the allow list.
    pub fn allow_len(&self) -> usize {
        self.allow.len()
    }

    /// Ranges in the deny list, counting expired bans not yet pruned.
    pub fn deny_len(&self) -> usize {
        self.deny.len()
    }
}
