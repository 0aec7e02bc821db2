//! The load tool: many connections on a ringport `Client`, every echoed byte verified.
//! `run` drives one measured run in one of four modes:
//!
//! - closed loop (default, `load.rs`): each connection keeps `pipeline` messages in flight;
//! - rate (`rate.rs`): open loop, a fixed total message rate on a schedule;
//! - churn (`churn.rs`): connect, echo, close, reconnect, as fast as it goes;
//! - idle (`idle.rs`): open many connections and hold them without traffic.
//!
//! `--attack` (`attack/`) plays a hostile client instead, on plain sockets, and `--udp`
//! (`udp/`) loads a UDP echo server, also on plain sockets.

mod attack;
mod churn;
mod echo;
mod idle;
mod load;
mod poller;
mod progress;
mod rate;
mod shared;
pub mod udp;

pub use attack::{Attack, AttackReport};

use crate::pattern::Shape;
use crate::report::{BenchReport, Latency, ModeName};
use anyhow::Context;
use load::Load;
use progress::Progress;
use ringport::{Client, Handler};
use shared::Shared;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long past the connect timeout connects may take before a run starts anyway (the
/// engine fails them at its connect timeout; this only guards against a lost callback).
const CONNECT_GRACE: Duration = Duration::from_secs(5);
/// How long connections get, once sending stops, to receive their last echoes.
const DRAIN_WAIT: Duration = Duration::from_secs(5);
/// Flush deadline of the client's shutdown.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(2);

/// The kind of load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Each connection keeps `pipeline` messages in flight.
    ClosedLoop,
    /// Open loop: `per_sec` messages per second in total, spread over the connections;
    /// a connection with `max_outstanding` unanswered messages skips its turn.
    Rate {
        per_sec: f64,
        max_outstanding: usize,
    },
    /// Each connection slot connects, does `messages` echoes, closes, and reconnects.
    Churn { messages: usize },
    /// Open `connections` connections and hold them without traffic.
    Idle,
    /// A hostile client (see `attack/`); `interval` paces slowloris and is slow-reader's
    /// stall threshold.
    Attack { kind: Attack, interval: Duration },
}

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub addr: SocketAddr,
    pub mode: Mode,
    /// Connections (churn: concurrent slots; idle: connections held).
    pub connections: usize,
    /// Bytes per message.
    pub size: usize,
    /// Messages in flight per connection (closed loop and churn).
    pub pipeline: usize,
    /// The measured window (idle: the hold, once every connection is up).
    pub duration: Duration,
    /// Time to run before measuring.
    pub warmup: Duration,
    /// I/O workers of the client engine.
    pub workers: usize,
    /// Print a progress line to stderr every second.
    pub progress: bool,
    /// Local source addresses to spread connections over, round robin (empty: any).
    pub sources: Vec<IpAddr>,
    /// The engine's connect timeout.
    pub connect_timeout: Duration,
    /// How messages are framed (the server must speak the same codec): `size` is the
    /// payload; a length header or a line end comes on top.
    pub codec: ringport::Codec,
}

impl BenchOptions {
    /// What each message looks like on the wire.
    pub fn shape(&self) -> anyhow::Result<Shape> {
        Shape::framed(&self.codec, self.size)
    }
}

/// Run the load against `opts.addr` and report. Errors seen by connections (failed
/// connects, mismatches, unexpected closes) are counted in the report, not returned:
/// see [`BenchReport::check`]. An `Err` means the run could not be carried out.
pub fn run(opts: BenchOptions) -> anyhow::Result<BenchReport> {
    anyhow::ensure!(opts.connections > 0, "need at least one connection");
    anyhow::ensure!(opts.size > 0, "message size must be at least 1 byte");
    anyhow::ensure!(opts.pipeline > 0, "pipeline depth must be at least 1");
    for ip in &opts.sources {
        anyhow::ensure!(
            ip.is_ipv4() == opts.addr.is_ipv4(),
            "source address {ip} is not of the same family as {}",
            opts.addr
        );
    }
    match opts.mode {
        Mode::ClosedLoop => closed_loop(&opts),
        Mode::Rate {
            per_sec,
            max_outstanding,
        } => rate::run(&opts, per_sec, max_outstanding),
        Mode::Churn { messages } => churn::run(&opts, messages),
        Mode::Idle => idle::run(&opts),
        Mode::Attack { kind, interval } => attack::run(&opts, kind, interval),
    }
}

/// Where connections go, and from which source addresses.
pub(crate) struct Target {
    addr: SocketAddr,
    sources: Vec<IpAddr>,
    next: AtomicUsize,
}

impl Target {
    fn new(opts: &BenchOptions) -> Target {
        Target {
            addr: opts.addr,
            sources: opts.sources.clone(),
            next: AtomicUsize::new(0),
        }
    }

    /// Start one connect, from the next source address in turn if any were given.
    fn connect<H: Handler>(&self, client: &Client<H>, token: u64) -> anyhow::Result<()> {
        let result = if self.sources.is_empty() {
            client.connect(self.addr, token)
        } else {
            let i = self.next.fetch_add(1, Relaxed) % self.sources.len();
            client.connect_from(self.addr, SocketAddr::new(self.sources[i], 0), token)
        };
        result.with_context(|| format!("connecting to {}", self.addr))
    }
}

fn start_client<H: Handler>(opts: &BenchOptions, handler: H) -> anyhow::Result<Client<H>> {
    Client::builder()
        .workers(opts.workers)
        .connect_timeout(opts.connect_timeout)
        .start(handler)
        .context("starting the client engine")
}

/// The closed-loop run.
fn closed_loop(opts: &BenchOptions) -> anyhow::Result<BenchReport> {
    let shared = Arc::new(Shared::new(opts.connections, opts.shape()?, opts.pipeline));
    let client = start_client(
        opts,
        Load {
            shared: shared.clone(),
        },
    )?;
    let target = Target::new(opts);
    for token in 0..opts.connections as u64 {
        target.connect(&client, token)?;
    }

    wait_until(opts.connect_timeout + CONNECT_GRACE, || {
        shared.unresolved.load(Relaxed) == 0
    });
    let unresolved = shared.unresolved.load(Relaxed);
    if unresolved > 0 {
        tracing::warn!(
            unresolved,
            "some connects are still pending; starting anyway"
        );
    }
    if !opts.warmup.is_zero() {
        std::thread::sleep(opts.warmup);
    }

    shared.recording.store(true, Relaxed);
    let start = Instant::now();
    let progress = Progress::new(opts.progress, "msgs");
    measure(&shared, start, opts.duration, progress, || {
        shared.messages()
    });
    shared.recording.store(false, Relaxed);
    shared.stopping.store(true, Relaxed);
    let elapsed = start.elapsed();

    if !wait_until(DRAIN_WAIT, || shared.remaining.load(Relaxed) == 0) {
        tracing::warn!(
            remaining = shared.remaining.load(Relaxed),
            "connections still waiting for echoes at the drain deadline"
        );
    }
    let shutdown = client.shutdown(SHUTDOWN_DEADLINE);
    tracing::debug!(?shutdown, "client engine stopped");

    Ok(finish_report(opts, &shared, elapsed, ModeName::ClosedLoop))
}

/// Wait for the measured window to pass, printing `count()` each second. Returns early
/// if every connection (churn: slot) is gone.
fn measure(
    shared: &Shared,
    start: Instant,
    duration: Duration,
    mut progress: Progress,
    count: impl Fn() -> u64,
) {
    let end = start + duration;
    let mut next_tick = start + Duration::from_secs(1);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if shared.remaining.load(Relaxed) == 0 {
            tracing::warn!("every connection has closed; ending the run early");
            break;
        }
        let wake = next_tick.min(end);
        // Short naps so an early end (all connections gone) is noticed promptly.
        std::thread::sleep((wake - now).min(Duration::from_millis(100)));
        if Instant::now() >= next_tick {
            progress.tick(start.elapsed(), count(), shared.errors());
            next_tick += Duration::from_secs(1);
        }
    }
    progress.finish();
}

/// Poll `done` every millisecond until it holds (true) or `limit` passes (false).
fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The report fields every mode shares; the mode fills in its own afterwards.
fn finish_report(
    opts: &BenchOptions,
    shared: &Shared,
    elapsed: Duration,
    mode: ModeName,
) -> BenchReport {
    let messages = shared.messages();
    let secs = elapsed.as_secs_f64().max(1e-9);
    let hist = shared.merged_histogram();
    BenchReport {
        mode,
        connections: opts.connections,
        size: opts.size,
        pipeline: opts.pipeline,
        codec: opts.codec.to_string(),
        duration_secs: elapsed.as_secs_f64(),
        messages,
        msgs_per_sec: messages as f64 / secs,
        mb_per_sec: (messages as f64 * opts.size as f64) / secs / 1e6,
        latency_us: Latency::from_nanos(&hist),
        errors: shared.error_counts(),
        target_rate: None,
        connections_per_sec: None,
        cycles: None,
        idle_connections: None,
        all_up_secs: None,
        attack: None,
    }
}
