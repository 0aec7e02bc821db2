//! The echo server's defence flags: admission control (caps, accept rates, allow and deny
//! lists), connection timeouts and the send-queue cap, parsed and applied to a
//! `ServerBuilder`.

use ringport::admission::{IpNet, TokenBucket};
use ringport::{SendQueueLimits, ServerBuilder, Timeouts};
use std::time::Duration;

/// An accept rate: `rate` per second in bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub rate: f64,
    pub burst: u32,
}

/// Parse `R` or `R/BURST`; the burst defaults to `max(1, ceil(R))` (one second's worth).
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    let (rate_text, burst_text) = match text.split_once('/') {
        Some((r, b)) => (r, Some(b)),
        None => (text, None),
    };
    let rate: f64 = rate_text
        .trim()
        .parse()
        .map_err(|_| format!("{rate_text:?} is not a number of accepts per second"))?;
    if !rate.is_finite() || rate <= 0.0 {
        return Err(format!("the rate must be above zero, not {rate_text:?}"));
    }
    let burst = match burst_text {
        Some(b) => b
            .trim()
            .parse::<u32>()
            .map_err(|_| format!("{b:?} is not a burst size (a whole number)"))?,
        // `as` saturates at u32::MAX for absurd rates; the bucket check below decides.
        None => (rate.ceil() as u32).max(1),
    };
    // The library's own validation, so the flag fails here rather than at start.
    TokenBucket::new(rate, burst).map_err(|e| e.to_string())?;
    Ok(Rate { rate, burst })
}

/// Parse a positive number of seconds (fractions allowed).
pub fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if secs.is_nan() || secs <= 0.0 {
        return Err(format!("{text:?}: a timeout must be above zero"));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{text:?} is not a duration"))
}

/// Admission control, timeouts and the send-queue cap of `echo-server` (all off unless
/// given).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DefenceArgs {
    /// Most connections open at once; more are refused at accept.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,
    /// Most connections open at once from one IP address.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_per_ip: Option<u32>,
    /// Accepts per second over the server, in bursts of up to BURST (default: one
    /// second's worth, at least 1); e.g. 100 or 100/20.
    #[arg(long, value_name = "R[/BURST]", value_parser = parse_rate)]
    pub accept_rate: Option<Rate>,
    /// Accepts per second from one IP address, in bursts of up to BURST.
    #[arg(long, value_name = "R[/BURST]", value_parser = parse_rate)]
    pub accept_rate_per_ip: Option<Rate>,
    /// Per-IP limits count IPv4 peers by their first LEN bits (default 32: each address
    /// alone; 24: each /24 as one peer).
    #[arg(long, value_name = "LEN", value_parser = clap::value_parser!(u8).range(0..=32))]
    pub ipv4_prefix: Option<u8>,
    /// Per-IP limits count IPv6 peers by their first LEN bits (default 64: each /64 as one
    /// peer; 128: each address alone).
    #[arg(long, value_name = "LEN", value_parser = clap::value_parser!(u8).range(0..=128))]
    pub ipv6_prefix: Option<u8>,
    /// Accept only from this range, e.g. 10.0.0.0/8 or ::1 (repeatable; once given,
    /// every other address is refused).
    #[arg(long = "allow", value_name = "CIDR")]
    pub allow: Vec<IpNet>,
    /// Refuse this range (repeatable; wins over --allow).
    #[arg(long = "deny", value_name = "CIDR")]
    pub deny: Vec<IpNet>,
    /// Close a connection that sends nothing within SECS of connecting.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub first_data_timeout: Option<Duration>,
    /// Close a connection with no traffic either way for SECS.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub idle_timeout: Option<Duration>,
    /// Close a connection that started a frame and did not finish it within SECS (raw
    /// codec: received nothing for SECS).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub read_timeout: Option<Duration>,
    /// Close a connection whose queued replies made no progress for SECS.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub write_timeout: Option<Duration>,
    /// Close a connection as a slow reader once more than BYTES of replies are queued
    /// for it.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub send_queue_max: Option<u64>,
    /// Bytes each worker may hold in partly received frames before the connection whose
    /// frame grows past it is closed (default 64 MiB; 0: frames must arrive within one
    /// receive).
    #[arg(long, value_name = "BYTES")]
    pub frame_budget: Option<u64>,
}

impl DefenceArgs {
    /// The builder with every flag that was given applied.
    pub fn apply(&self, mut builder: ServerBuilder) -> anyhow::Result<ServerBuilder> {
        if let Some(n) = self.max_connections {
            builder = builder.max_connections(n);
        }
        if let Some(n) = self.max_per_ip {
            builder = builder.max_per_ip(n);
        }
        if let Some(r) = self.accept_rate {
            builder = builder.accept_rate(r.rate, r.burst);
        }
        if let Some(r) = self.accept_rate_per_ip {
            builder = builder.accept_rate_per_ip(r.rate, r.burst);
        }
        if self.ipv4_prefix.is_some() || self.ipv6_prefix.is_some() {
            builder = builder.per_ip_prefixes(
                self.ipv4_prefix
                    .unwrap_or(ringport::admission::DEFAULT_IPV4_PREFIX),
                self.ipv6_prefix
                    .unwrap_or(ringport::admission::DEFAULT_IPV6_PREFIX),
            );
        }
        for net in &self.allow {
            builder = builder.allow(*net);
        }
        for net in &self.deny {
            builder = builder.deny(*net);
        }
        let mut timeouts = Timeouts::default();
        timeouts.first_data = self.first_data_timeout;
        timeouts.idle = self.idle_timeout;
        timeouts.read = self.read_timeout;
        timeouts.write = self.write_timeout;
        if timeouts != Timeouts::default() {
            builder = builder.timeouts(timeouts);
        }
        if let Some(max) = self.send_queue_max {
            let max = usize::try_from(max)
                .map_err(|_| anyhow::anyhow!("--send-queue-max {max}: too large"))?;
            let mut limits = SendQueueLimits::default();
            limits.max = Some(max);
            builder = builder.send_queue(limits);
        }
        if let Some(budget) = self.frame_budget {
            builder = builder.frame_budget(usize::try_from(budget).unwrap_or(usize::MAX));
        }
        Ok(builder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_take_an_optional_burst() {
        assert_eq!(
            parse_rate("100"),
            Ok(Rate {
                rate: 100.0,
                burst: 100
            })
        );
        assert_eq!(
            parse_rate("2.5"),
            Ok(Rate {
                rate: 2.5,
                burst: 3
            })
        );
        assert_eq!(
            parse_rate("0.1"),
            Ok(Rate {
                rate: 0.1,
                burst: 1
            })
        );
        assert_eq!(
            parse_rate("50/5"),
            Ok(Rate {
                rate: 50.0,
                burst: 5
            })
        );
        for bad in [
            "", "0", "-1", "abc", "nan", "inf", "10/0", "10/x", "10/-1", "10/2/3",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn prefix_flags_are_bounded_by_the_address_width() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            d: DefenceArgs,
        }
        use clap::Parser as _;
        let ok = Cli::try_parse_from(["x", "--ipv6-prefix", "56", "--ipv4-prefix", "24"]).unwrap();
        assert_eq!((ok.d.ipv4_prefix, ok.d.ipv6_prefix), (Some(24), Some(56)));
        assert!(ok.d.apply(ringport::Server::builder()).is_ok());
        for bad in [
            ["--ipv6-prefix", "129"],
            ["--ipv4-prefix", "33"],
            ["--ipv4-prefix", "x"],
        ] {
            assert!(
                Cli::try_parse_from(["x", bad[0], bad[1]]).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn seconds_must_be_positive() {
        assert_eq!(parse_secs("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_secs("30"), Ok(Duration::from_secs(30)));
        for bad in ["0", "-1", "x", "nan", "1e300"] {
            assert!(parse_secs(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
