//! Hostile clients (`bench ADDR --attack KIND`), to see how a server (any server) defends
//! itself. They do not use ringport's engine: plain non-blocking sockets on one epoll
//! loop in one thread, at most --connections sockets at a time, for --duration, and only
//! to the address given. Each reports what it saw; a server that defends itself by
//! closing or refusing connections is a result, not an error.
//!
//! - silent, slowloris, slow-reader (`hold.rs`): open the connections once and hold them;
//! - flood, reset (`cycle.rs`): cycle connections through --connections slots.

mod cycle;
mod hold;
mod net;
mod report;

pub use report::AttackReport;

use super::progress::Progress;
use super::BenchOptions;
use crate::report::{BenchReport, Errors, Latency, ModeName};
use anyhow::Context;
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use serde::Serialize;
use std::time::{Duration, Instant};

/// The most sockets one attack opens at a time.
pub const MAX_SOCKETS: usize = 9000;
/// How often connects are checked against the connect timeout.
const CONNECT_SCAN: Duration = Duration::from_millis(100);
/// File descriptors beyond the sockets (stdio, epoll, the runtime's own).
const SPARE_FDS: u64 = 64;

/// The hostile client to play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Attack {
    /// Open the connections and send nothing.
    Silent,
    /// Send a frame one byte per --interval.
    Slowloris,
    /// Send messages without end, never read (4 KiB receive buffer).
    SlowReader,
    /// Keep --connections connects going, reconnecting as connections end.
    Flood,
    /// Connect, send part of a message, close with RST; again and again.
    Reset,
}

impl Attack {
    pub fn as_str(self) -> &'static str {
        match self {
            Attack::Silent => "silent",
            Attack::Slowloris => "slowloris",
            Attack::SlowReader => "slow-reader",
            Attack::Flood => "flood",
            Attack::Reset => "reset",
        }
    }
}

/// Run `attack` against `opts.addr` with `opts.connections` sockets for `opts.duration`.
/// `Err` only when the tool itself fails (no sockets to be had, epoll failing).
pub fn run(opts: &BenchOptions, attack: Attack, interval: Duration) -> anyhow::Result<BenchReport> {
    anyhow::ensure!(
        opts.connections <= MAX_SOCKETS,
        "--attack opens at most {MAX_SOCKETS} connections at a time (asked for {})",
        opts.connections
    );
    anyhow::ensure!(
        !interval.is_zero(),
        "--interval must be more than 0 seconds"
    );
    ensure_fd_limit(opts.connections as u64 + SPARE_FDS)?;
    if !opts.addr.ip().is_loopback() {
        tracing::warn!(target = %opts.addr, "attacking an address that is not loopback");
    }
    let shape = opts.shape()?;
    let mut message = vec![0; shape.len()];
    shape.fill(crate::pattern::seed(0, 0), &mut message);
    let dialer = net::Dialer::new(opts.addr, opts.sources.clone());
    let target = opts.addr.to_string();
    let report = match attack {
        Attack::Silent | Attack::Slowloris | Attack::SlowReader => {
            let data = if attack == Attack::SlowReader {
                // Whole messages, enough of them that one write is never tiny.
                message.repeat((64 * 1024 / message.len()).max(1))
            } else {
                message
            };
            let plan = hold::Plan {
                attack,
                connections: opts.connections,
                duration: opts.duration,
                connect_timeout: opts.connect_timeout,
                interval,
                data,
                progress: opts.progress,
            };
            hold::run(&plan, dialer, target)?
        }
        Attack::Flood | Attack::Reset => {
            // Half the message (at least one byte): a frame header and part of its payload.
            let partial = message[..message.len().div_ceil(2)].to_vec();
            let plan = cycle::Plan {
                attack,
                connections: opts.connections,
                duration: opts.duration,
                connect_timeout: opts.connect_timeout,
                partial,
                progress: opts.progress,
            };
            cycle::run(&plan, dialer, target)?
        }
    };
    Ok(BenchReport {
        mode: ModeName::Attack,
        connections: opts.connections,
        size: opts.size,
        pipeline: opts.pipeline,
        codec: opts.codec.to_string(),
        duration_secs: report.duration_secs,
        messages: 0,
        msgs_per_sec: 0.0,
        mb_per_sec: 0.0,
        latency_us: Latency::default(),
        errors: Errors::default(),
        target_rate: None,
        connections_per_sec: None,
        cycles: None,
        idle_connections: None,
        all_up_secs: None,
        attack: Some(report),
    })
}

/// Raise the soft limit on open files to `need` if it is lower (up to the hard limit).
fn ensure_fd_limit(need: u64) -> anyhow::Result<()> {
    let limit = getrlimit(Resource::Nofile);
    match limit.current {
        Some(current) if current < need => {}
        _ => return Ok(()),
    }
    if let Some(max) = limit.maximum {
        anyhow::ensure!(
            max >= need,
            "this attack needs about {need} open files, the hard limit is {max} (ulimit -Hn)"
        );
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(need),
            maximum: limit.maximum,
        },
    )
    .with_context(|| format!("raising the open-file limit to {need}"))
}

/// The once-a-second progress line of an attack.
struct Ticker {
    progress: Progress,
    start: Instant,
    next: Instant,
}

impl Ticker {
    fn new(enabled: bool, start: Instant) -> Ticker {
        Ticker {
            progress: Progress::new(enabled, ""),
            start,
            next: start + Duration::from_secs(1),
        }
    }

    /// When the next line is due.
    fn next(&self) -> Instant {
        self.next
    }

    fn due(&self, now: Instant) -> bool {
        now >= self.next
    }

    fn print(&mut self, now: Instant, what: &str) {
        self.progress.line(now - self.start, what);
        while self.next <= now {
            self.next += Duration::from_secs(1);
        }
    }

    fn finish(&mut self) {
        self.progress.finish();
    }
}
