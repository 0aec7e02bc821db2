//! Tests of the admission building blocks, one file per concept.

mod access_list;
mod ip_net;
mod per_ip;
mod per_ip_groups;
mod refuse_reason;
mod token_bucket;

use std::net::IpAddr;

/// Parses an address (test shorthand).
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Parses a range (test shorthand).
fn net(s: &str) -> super::IpNet {
    s.parse().unwrap()
}
