//! Admission control: the checks a worker makes on an accepted connection before the
//! handler sees it.
//!
//! The pieces are sans-IO: no sockets, no clock (each call takes `now`), no threads, no
//! `unsafe`. An engine builds one shared gate from its [`AdmissionConfig`] (so caps and
//! rates hold over all workers together) and consults the pieces in this order, cheapest
//! and most decisive first; the first refusal wins and is counted under its
//! [`RefuseReason`]:
//!
//! 1. [`AccessList::check`]: deny ranges and temporary bans ([`RefuseReason::Denied`]),
//!    then the allow list ([`RefuseReason::NotAllowed`]);
//! 2. the server-wide connection cap ([`RefuseReason::MaxConnections`]);
//! 3. [`PerIpLimiter::try_open`], per address group (each IPv4 address, each IPv6 `/64`
//!    by default) ([`RefuseReason::MaxPerIp`], [`RefuseReason::RateLimitedPerIp`],
//!    [`RefuseReason::PerIpTableFull`]);
//! 4. a server-wide [`TokenBucket`] ([`RefuseReason::RateLimited`]);
//! 5. `Handler::on_accept` ([`RefuseReason::HandlerVeto`]).
//!
//! ```
//! use ringport::admission::{AccessList, IpNet, RefuseReason, TokenBucket, Verdict};
//! use std::time::{Duration, Instant};
//!
//! let now = Instant::now();
//! let mut access = AccessList::new();
//! access.allow("10.0.0.0/8".parse::<IpNet>()?);
//! access.deny_until("10.6.6.6".parse()?, now + Duration::from_secs(60));
//! assert_eq!(access.check("10.1.2.3".parse()?, now), Verdict::Admit);
//! assert_eq!(access.check("::ffff:10.6.6.6".parse()?, now), Verdict::Refuse(RefuseReason::Denied));
//! assert_eq!(access.check("192.0.2.1".parse()?, now), Verdict::Refuse(RefuseReason::NotAllowed));
//!
//! let mut rate = TokenBucket::new(100.0, 20)?; // 100 accepts per second, bursts of 20
//! assert!((0..20).all(|_| rate.try_take(now)));
//! assert!(!rate.try_take(now));
//! assert!(rate.try_take(now + Duration::from_millis(10)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod access_list;
mod datagram_gate;
mod gate;
mod ip_net;
mod net_set;
mod per_ip;
mod refuse_reason;
mod token_bucket;

pub use access_list::{AccessList, Verdict};
pub use datagram_gate::DEFAULT_MAX_SOURCES;
pub(crate) use datagram_gate::{DatagramAdmission, DatagramGate};
pub use gate::AdmissionConfig;
pub(crate) use gate::{admission_setters, Gate};
pub use ip_net::{IpNet, IpNetError};
pub use per_ip::{PerIpLimiter, DEFAULT_IPV4_PREFIX, DEFAULT_IPV6_PREFIX, DEFAULT_MAX_TRACKED_IPS};
pub use refuse_reason::RefuseReason;
pub use token_bucket::{RateLimitError, TokenBucket};

#[cfg(test)]
mod tests;
