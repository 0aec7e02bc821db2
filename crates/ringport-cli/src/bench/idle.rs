//! Idle connections (`--idle C`): open C connections, send nothing, hold them for
//! `--duration` once all are up, then close them all. Reports how long it took until
//! every connection was open; prints `all C connections up after X s` on stdout the
//! moment they are (for a script sampling the server's memory while they are held).

use super::progress::Progress;
use super::shared::Shared;
use super::{finish_report, measure, start_client, BenchOptions, Target};
use super::{CONNECT_GRACE, SHUTDOWN_DEADLINE};
use crate::report::{BenchReport, ModeName};
use ringport::{CloseReason, Conn, Handler};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The idle handler: counts opens and closes; any byte received is an error.
pub struct Idle {
    shared: Arc<Shared>,
}

impl Handler for Idle {
    type Session = bool;

    fn on_open(&self, _conn: &mut Conn) -> bool {
        self.shared.open.fetch_add(1, Relaxed);
        self.shared.unresolved.fetch_sub(1, Relaxed);
        false
    }

    fn on_data(&self, logged: &mut bool, conn: &mut Conn, _data: &[u8]) {
        self.shared
            .mismatch(logged, conn, 0, "bytes arrived on an idle connection");
    }

    fn on_close(&self, _logged: bool, conn: &Conn, reason: CloseReason) {
        let sh = &self.shared;
        sh.open.fetch_sub(1, Relaxed);
        sh.remaining.fetch_sub(1, Relaxed);
        if !sh.stopping.load(Relaxed) {
            sh.unexpected_closes.fetch_add(1, Relaxed);
            if sh.may_warn() {
                tracing::warn!(conn = %conn.id(), %reason, "idle connection closed");
            }
        }
    }

    fn on_connect_failed(&self, token: u64, addr: SocketAddr, reason: CloseReason) {
        let sh = &self.shared;
        sh.connect_errors.fetch_add(1, Relaxed);
        sh.unresolved.fetch_sub(1, Relaxed);
        sh.remaining.fetch_sub(1, Relaxed);
        if sh.may_warn() {
            tracing::warn!(token, %addr, %reason, "connect failed");
        }
    }
}

/// Run the idle hold.
pub fn run(opts: &BenchOptions) -> anyhow::Result<BenchReport> {
    let count = opts.connections;
    let shared = Arc::new(Shared::new(count, opts.shape()?, opts.pipeline));
    let client = start_client(
        opts,
        Idle {
            shared: shared.clone(),
        },
    )?;
    let target = Target::new(opts);
    let t0 = Instant::now();
    for token in 0..count as u64 {
        target.connect(&client, token)?;
    }

    // Connect phase: poll until every connect has resolved, with progress each second.
    let deadline = t0 + opts.connect_timeout + CONNECT_GRACE;
    let mut progress = Progress::gauge(opts.progress, "conns open");
    let mut next_tick = t0 + Duration::from_secs(1);
    while shared.unresolved.load(Relaxed) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
        if Instant::now() >= next_tick {
            progress.tick(t0.elapsed(), shared.open.load(Relaxed), shared.errors());
            next_tick += Duration::from_secs(1);
        }
    }
    progress.finish();
    let up = shared.open.load(Relaxed);
    let all_up = (up == count as u64).then(|| t0.elapsed());
    match all_up {
        Some(t) => {
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "all {count} connections up after {:.3} s",
                t.as_secs_f64()
            )?;
            out.flush()?;
        }
        None => tracing::warn!(
            up,
            count,
            unresolved = shared.unresolved.load(Relaxed),
            failed = shared.connect_errors.load(Relaxed),
            "not every connection came up"
        ),
    }

    // Hold: no traffic, until the duration has passed (or every connection is gone).
    shared.recording.store(true, Relaxed);
    let start = Instant::now();
    let progress = Progress::gauge(opts.progress, "conns open");
    measure(&shared, start, opts.duration, progress, || {
        shared.open.load(Relaxed)
    });
    shared.recording.store(false, Relaxed);
    shared.stopping.store(true, Relaxed);
    let elapsed = start.elapsed();
    let shutdown = client.shutdown(SHUTDOWN_DEADLINE);
    tracing::debug!(
        ?shutdown,
        "client engine stopped; every idle connection closed"
    );

    let mut report = finish_report(opts, &shared, elapsed, ModeName::Idle);
    report.idle_connections = Some(count);
    report.all_up_secs = all_up.map(|d| d.as_secs_f64());
    Ok(report)
}
