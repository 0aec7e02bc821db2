//! `NetSet`: the flat range lists behind [`super::AccessList`].
//!
//! A list of a few hundred ranges is consulted on every accept, so each family is a plain
//! vector of `(network, mask)` integers: a match is one AND and one compare per rule over
//! contiguous memory, with no pointer chasing and no allocation. Rules may expire; expired
//! rules are skipped when matching and removed a few at a time by a rotating cursor, so no
//! call does more than a fixed amount of pruning.

use std::net::IpAddr;
use std::ops::BitAnd;
use std::time::Instant;

use super::ip_net::{IpNet, NetBits};

/// One range as integers, live until `expires` (for ever if `None`).
#[derive(Debug, Clone, Copy)]
struct Rule<B> {
    network: B,
    mask: B,
    expires: Option<Instant>,
}

impl<B> Rule<B> {
    fn is_live(&self, now: Instant) -> bool {
        self.expires.map_or(true, |until| now < until)
    }
}

/// The later of two expiries, where `None` (never) is the latest.
fn later(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => None,
    }
}

/// The rules of one address family.
#[derive(Debug, Clone)]
struct RuleList<B> {
    rules: Vec<Rule<B>>,
    /// Where the next prune step starts.
    cursor: usize,
    /// How many rules have an expiry (pruning is skipped while there are none).
    expiring: usize,
}

impl<B> Default for RuleList<B> {
    fn default() -> Self {
        RuleList {
            rules: Vec::new(),
            cursor: 0,
            expiring: 0,
        }
    }
}

impl<B: Copy + Eq + BitAnd<Output = B>> RuleList<B> {
    /// Adds a rule, or merges it into an equal range already present (keeping the later
    /// expiry), so repeating a ban does not grow the list.
    fn insert(&mut self, network: B, mask: B, expires: Option<Instant>) {
        if let Some(rule) = self
            .rules
            .iter_mut()
            .find(|r| r.network == network && r.mask == mask)
        {
            let merged = later(rule.expires, expires);
            if rule.expires.is_some() && merged.is_none() {
                self.expiring -= 1;
            }
            rule.expires = merged;
            return;
        }
        if expires.is_some() {
            self.expiring += 1;
        }
        self.rules.push(Rule {
            network,
            mask,
            expires,
        });
    }

    fn remove(&mut self, network: B, mask: B) -> bool {
        let Some(i) = self
            .rules
            .iter()
            .position(|r| r.network == network && r.mask == mask)
        else {
            return false;
        };
        self.remove_at(i);
        true
    }

    fn remove_at(&mut self, i: usize) {
        let rule = self.rules.swap_remove(i);
        if rule.expires.is_some() {
            self.expiring -= 1;
        }
    }

    fn matches(&self, ip: B, now: Instant) -> bool {
        self.rules
            .iter()
            .any(|r| ip & r.mask == r.network && r.is_live(now))
    }

    /// Looks at up to `budget` rules from the cursor and removes the expired ones.
    fn prune_step(&mut self, now: Instant, budget: usize) -> usize {
        let mut removed = 0;
        for _ in 0..budget {
            if self.expiring == 0 {
                break;
            }
            if self.cursor >= self.rules.len() {
                self.cursor = 0;
            }
            if self.rules[self.cursor].is_live(now) {
                self.cursor += 1;
            } else {
                // The last rule moves into the cursor's place and is looked at next.
                self.remove_at(self.cursor);
                removed += 1;
            }
        }
        removed
    }

    fn prune_all(&mut self, now: Instant) -> usize {
        let before = self.rules.len();
        self.rules.retain(|r| r.is_live(now));
        self.expiring = self.rules.iter().filter(|r| r.expires.is_some()).count();
        self.cursor = 0;
        before - self.rules.len()
    }
}

/// A set of IPv4 and IPv6 ranges, each optionally expiring.
#[derive(Debug, Clone, Default)]
pub(crate) struct NetSet {
    v4: RuleList<u32>,
    v6: RuleList<u128>,
}

impl NetSet {
    /// Adds `net` (live until `expires`, or for ever); an equal range already present
    /// keeps the later of the two expiries.
    pub(crate) fn insert(&mut self, net: IpNet, expires: Option<Instant>) {
        match net.bits() {
            NetBits::V4 { network, mask } => self.v4.insert(network, mask, expires),
            NetBits::V6 { network, mask } => self.v6.insert(network, mask, expires),
        }
    }

    /// Removes the range equal to `net`; false if there was none.
    pub(crate) fn remove(&mut self, net: IpNet) -> bool {
        match net.bits() {
            NetBits::V4 { network, mask } => self.v4.remove(network, mask),
            NetBits::V6 { network, mask } => self.v6.remove(network, mask),
        }
    }

    /// Whether a live range contains `ip`, which must already be canonical (an
    /// IPv4-mapped address turned into IPv4).
    pub(crate) fn contains_canonical(&self, ip: IpAddr, now: Instant) -> bool {
        match ip {
            IpAddr::V4(v4) => self.v4.matches(u32::from(v4), now),
            IpAddr::V6(v6) => self.v6.matches(u128::from(v6), now),
        }
    }

    /// Removes expired ranges among at most `budget` looked at in each family.
    pub(crate) fn prune_step(&mut self, now: Instant, budget: usize) -> usize {
        self.v4.prune_step(now, budget) + self.v6.prune_step(now, budget)
    }

    /// Removes every expired range.
    pub(crate) fn prune_all(&mut self, now: Instant) -> usize {
        self.v4.prune_all(now) + self.v6.prune_all(now)
    }

    /// Ranges held, counting expired ones not yet pruned.
    pub(crate) fn len(&self) -> usize {
        self.v4.rules.len() + self.v6.rules.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
