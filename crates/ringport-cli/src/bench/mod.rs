//! The load tool: many connections on a ringport `Client`, each keeping `pipeline` echo
//! messages in flight, every echoed byte verified. `run` drives one measured run.

mod load;
mod progress;

use crate::report::{BenchReport, Errors, Latency};
use anyhow::Context;
use load::{Load, Shared};
use progress::Progress;
use ringport::Client;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long connects may take before the run starts anyway (the engine's own connect
/// timeout, 10 s by default, fails them before this).
const CONNECT_WAIT: Duration = Duration::from_secs(15);
/// How long connections get, once sending stops, to receive their last echoes.
const DRAIN_WAIT: Duration = Duration::from_secs(5);
/// Flush deadline of the client's shutdown.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(2);

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub addr: SocketAddr,
    pub connections: usize,
    /// Bytes per message.
    pub size: usize,
    /// Messages in flight per connection.
    pub pipeline: usize,
    /// The measured window.
    pub duration: Duration,
    /// Time to run before measuring.
    pub warmup: Duration,
    /// I/O workers of the client engine.
    pub workers: usize,
    /// Print a progress line to stderr every second.
    pub progress: bool,
}

/// Run the load against `opts.addr` and report. Errors seen by connections (failed
/// connects, mismatches, unexpected closes) are counted in the report, not returned:
/// see [`BenchReport::check`]. An `Err` means the run could not be carried out.
pub fn run(opts: BenchOptions) -> anyhow::Result<BenchReport> {
    anyhow::ensure!(opts.connections > 0, "need at least one connection");
    anyhow::ensure!(opts.size > 0, "message size must be at least 1 byte");
    anyhow::ensure!(opts.pipeline > 0, "pipeline depth must be at least 1");
    let shared = Arc::new(Shared::new(opts.connections, opts.size, opts.pipeline));
    let client = Client::builder()
        .workers(opts.workers)
        .start(Load {
            shared: shared.clone(),
        })
        .context("starting the client engine")?;
    for token in 0..opts.connections as u64 {
        client
            .connect(opts.addr, token)
            .with_context(|| format!("connecting to {}", opts.addr))?;
    }

    wait_until(CONNECT_WAIT, || shared.unresolved.load(Relaxed) == 0);
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
    measure(&shared, start, opts.duration, opts.progress);
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

    Ok(report(&opts, &shared, elapsed))
}

/// Wait for the measured window to pass, printing progress each second. Returns early if
/// every connection is gone.
fn measure(shared: &Shared, start: Instant, duration: Duration, progress: bool) {
    let end = start + duration;
    let mut progress = Progress::new(progress);
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
            progress.tick(start.elapsed(), shared.messages(), shared.errors());
            next_tick += Duration::from_secs(1);
        }
    }
    progress.finish();
}

/// Poll `done` every few milliseconds until it holds (true) or `limit` passes (false).
fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn report(opts: &BenchOptions, shared: &Shared, elapsed: Duration) -> BenchReport {
    let messages = shared.messages();
    let secs = elapsed.as_secs_f64().max(1e-9);
    let hist = shared.merged_histogram();
    BenchReport {
        connections: opts.connections,
        size: opts.size,
        pipeline: opts.pipeline,
        duration_secs: elapsed.as_secs_f64(),
        messages,
        msgs_per_sec: messages as f64 / secs,
        mb_per_sec: (messages as f64 * opts.size as f64) / secs / 1e6,
        latency_us: Latency::from_nanos(&hist),
        errors: Errors {
            connect: shared.connect_errors.load(Relaxed),
            mismatch: shared.mismatches.load(Relaxed),
            closed: shared.unexpected_closes.load(Relaxed),
        },
    }
}
