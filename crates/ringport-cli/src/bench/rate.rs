//! Open-loop fixed rate (`--rate R`): R messages per second in total, spread evenly over
//! the open connections, sent on schedule whether or not earlier echoes are back.
//!
//! The client engine has no timers, so the calling thread drives the schedule: global
//! message `n` is due at `t0 + n / R` and goes to connection `n % k`. The driver wakes at
//! least every millisecond, sends everything due through each connection's `ConnRef`
//! (thread-safe, ordered), and first pushes the message's *intended* time on the
//! connection's queue, which `on_data` pops. Latency is measured from that intended time,
//! so a stalled server or driver shows up in the percentiles (no coordinated omission).
//! A connection with `max_outstanding` messages unanswered skips its turn: counted in
//! `errors.behind`.

use super::echo::{message, EchoRx};
use super::progress::Progress;
use super::shared::{lock, Recorder, Shared, WorkerSlot};
use super::{finish_report, start_client, wait_until, BenchOptions, Target};
use super::{CONNECT_GRACE, DRAIN_WAIT, SHUTDOWN_DEADLINE};
use crate::report::{BenchReport, ModeName};
use ringport::{CloseReason, Conn, ConnRef, Handler};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The longest the driver sleeps between two looks at the schedule.
const TICK: Duration = Duration::from_millis(1);
/// Sends per look at the schedule at most, so a driver far behind still notices the end
/// of the run and prints progress.
const BATCH: u32 = 65_536;

/// One open connection as the driver sees it.
pub struct RateConn {
    token: u64,
    handle: ConnRef,
    state: Mutex<RateState>,
}

#[derive(Default)]
struct RateState {
    /// Intended send time of every message in flight, oldest first.
    in_flight: VecDeque<Instant>,
    /// Sequence number of the next message the driver sends.
    next_send: u64,
    /// The connection has closed: send nothing more.
    closed: bool,
    /// The driver closed it on purpose (run over, all echoes back).
    closing: bool,
}

/// The rate-mode handler: receives and verifies; the driver thread sends.
pub struct RateLoad {
    shared: Arc<Shared>,
    /// Open connections by token (tokens are `0..connections`).
    conns: Arc<Vec<OnceLock<Arc<RateConn>>>>,
}

pub struct Session {
    slot: Arc<WorkerSlot>,
    conn: Arc<RateConn>,
    rx: EchoRx,
    logged: bool,
}

impl Handler for RateLoad {
    type Session = Session;

    fn on_open(&self, conn: &mut Conn) -> Session {
        let sh = &self.shared;
        let rc = Arc::new(RateConn {
            token: conn.token(),
            handle: conn.handle(),
            state: Mutex::new(RateState::default()),
        });
        if let Some(cell) = self.conns.get(conn.token() as usize) {
            let _ = cell.set(rc.clone());
        }
        sh.open.fetch_add(1, Relaxed);
        sh.unresolved.fetch_sub(1, Relaxed);
        Session {
            slot: sh.worker_slot(),
            conn: rc,
            rx: EchoRx::new(conn.token()),
            logged: false,
        }
    }

    fn on_data(&self, s: &mut Session, conn: &mut Conn, data: &[u8]) {
        let sh = &*self.shared;
        let fed = {
            let mut st = lock(&s.conn.state);
            let mut rec = Recorder::new(&s.slot, sh, Instant::now());
            s.rx.feed(data, &sh.shape, &mut st.in_flight, |due, _| rec.record(due))
        };
        if sh.check_fed(&fed, &mut s.logged, conn, s.rx.seq) {
            lock(&s.conn.state).closing = true;
            conn.abort();
        }
    }

    fn on_close(&self, s: Session, conn: &Conn, reason: CloseReason) {
        let sh = &self.shared;
        let (closing, in_flight) = {
            let mut st = lock(&s.conn.state);
            st.closed = true;
            (st.closing, st.in_flight.len())
        };
        if !closing {
            sh.unexpected_closes.fetch_add(1, Relaxed);
            if sh.may_warn() {
                tracing::warn!(conn = %conn.id(), in_flight, %reason, "connection closed unexpectedly");
            }
        }
        sh.open.fetch_sub(1, Relaxed);
        sh.remaining.fetch_sub(1, Relaxed);
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

/// Send message `seq` of `rc` if it is not too far behind; false if it was skipped.
fn send_due(rc: &RateConn, sh: &Shared, due: Instant, max_outstanding: usize) -> bool {
    let seq = {
        let mut st = lock(&rc.state);
        if st.closed || st.closing {
            return true;
        }
        if st.in_flight.len() >= max_outstanding {
            return false;
        }
        st.in_flight.push_back(due);
        st.next_send += 1;
        st.next_send - 1
    };
    // Ordered after every earlier send of this connection; if the worker has stopped the
    // close is reported through `on_close`.
    let _ = rc.handle.send(message(rc.token, seq, &sh.shape));
    true
}

/// Run the open-loop load.
pub fn run(
    opts: &BenchOptions,
    per_sec: f64,
    max_outstanding: usize,
) -> anyhow::Result<BenchReport> {
    anyhow::ensure!(
        per_sec.is_finite() && per_sec > 0.0,
        "--rate must be positive"
    );
    anyhow::ensure!(max_outstanding > 0, "--max-outstanding must be at least 1");
    let shared = Arc::new(Shared::new(opts.connections, opts.shape()?, opts.pipeline));
    let conns: Arc<Vec<OnceLock<Arc<RateConn>>>> =
        Arc::new((0..opts.connections).map(|_| OnceLock::new()).collect());
    let client = start_client(
        opts,
        RateLoad {
            shared: shared.clone(),
            conns: conns.clone(),
        },
    )?;
    let target = Target::new(opts);
    for token in 0..opts.connections as u64 {
        target.connect(&client, token)?;
    }
    wait_until(opts.connect_timeout + CONNECT_GRACE, || {
        shared.unresolved.load(Relaxed) == 0
    });
    let open: Vec<Arc<RateConn>> = conns.iter().filter_map(|c| c.get().cloned()).collect();
    anyhow::ensure!(!open.is_empty(), "no connection could be opened");

    let t0 = Instant::now();
    let start = t0 + opts.warmup;
    let end = start + opts.duration;
    let mut progress = Progress::new(opts.progress, "msgs");
    let mut next_tick = start + Duration::from_secs(1);
    let mut n: u64 = 0;
    // When message `n` is due; None if beyond any representable instant (a tiny rate).
    let due_at = |n: u64| {
        Duration::try_from_secs_f64(n as f64 / per_sec)
            .ok()
            .and_then(|d| t0.checked_add(d))
    };
    let mut recording = false;
    loop {
        let now = Instant::now();
        if !recording && now >= start {
            shared.recording.store(true, Relaxed);
            recording = true;
        }
        if now >= end {
            break;
        }
        // Everything due up to now, in schedule order.
        for _ in 0..BATCH {
            let Some(due) = due_at(n).filter(|&due| due <= now) else {
                break;
            };
            let rc = &open[(n % open.len() as u64) as usize];
            if !send_due(rc, &shared, due, max_outstanding) {
                shared.behind.fetch_add(1, Relaxed);
            }
            n += 1;
        }
        if now >= next_tick {
            progress.tick(now - start, shared.messages(), shared.errors());
            next_tick += Duration::from_secs(1);
        }
        if shared.remaining.load(Relaxed) == 0 {
            tracing::warn!("every connection has closed; ending the run early");
            break;
        }
        let wake = due_at(n)
            .unwrap_or(end)
            .min(next_tick)
            .min(end)
            .min(now + TICK);
        std::thread::sleep(wake.saturating_duration_since(Instant::now()));
    }
    progress.finish();
    shared.recording.store(false, Relaxed);
    shared.stopping.store(true, Relaxed);
    let elapsed = Instant::now().saturating_duration_since(start);

    // Let the last echoes arrive, then close every connection whose echoes are all back
    // (the rest are closed by the shutdown and counted as unexpected closes).
    let drained = || open.iter().all(|rc| lock(&rc.state).in_flight.is_empty());
    if !wait_until(DRAIN_WAIT, drained) {
        tracing::warn!("connections still waiting for echoes at the drain deadline");
    }
    for rc in &open {
        let mut st = lock(&rc.state);
        if st.in_flight.is_empty() && !st.closed {
            st.closing = true;
            drop(st);
            let _ = rc.handle.close();
        }
    }
    wait_until(DRAIN_WAIT, || shared.remaining.load(Relaxed) == 0);
    let shutdown = client.shutdown(SHUTDOWN_DEADLINE);
    tracing::debug!(?shutdown, scheduled = n, "client engine stopped");

    let mut report = finish_report(opts, &shared, elapsed, ModeName::Rate);
    report.target_rate = Some(per_sec);
    Ok(report)
}
