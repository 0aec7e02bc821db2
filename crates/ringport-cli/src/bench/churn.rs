//! Connection churn (`--churn`): each of `connections` slots repeatedly connects, does
//! `--churn-messages` verified echo round trips (up to `pipeline` in flight), closes, and
//! reconnects at once from `on_close`. A cycle counts when its connection closed on our
//! initiative after all its echoes came back.
//!
//! The handler reconnects through a `Weak` reference to the client that runs it (set
//! once the client has started). The driving thread holds the only strong reference and
//! takes the client back with `Arc::try_unwrap` to shut it down, so a worker never drops
//! the last reference to its own engine.

use super::echo::{send_message, EchoRx};
use super::progress::Progress;
use super::shared::{Recorder, Shared, WorkerSlot};
use super::{finish_report, measure, start_client, wait_until, BenchOptions, Target};
use super::{DRAIN_WAIT, SHUTDOWN_DEADLINE};
use crate::report::{BenchReport, ModeName};
use ringport::{CloseReason, Conn, Handler};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

/// Bits of the token that hold the slot number; the cycle number sits above them, so
/// every connection of a slot has a token (and message content) of its own.
const SLOT_BITS: u32 = 32;

fn slot_of(token: u64) -> u64 {
    token & ((1 << SLOT_BITS) - 1)
}

fn next_token(token: u64) -> u64 {
    let cycle = (token >> SLOT_BITS).wrapping_add(1) & ((1 << (64 - SLOT_BITS)) - 1);
    cycle << SLOT_BITS | slot_of(token)
}

/// The churn handler.
pub struct Churn {
    shared: Arc<Shared>,
    target: Arc<Target>,
    client: Arc<OnceLock<Weak<ringport::Client<Churn>>>>,
    /// Echo round trips per connection.
    per_cycle: u64,
}

pub struct Session {
    slot: Arc<WorkerSlot>,
    token: u64,
    next_send: u64,
    rx: EchoRx,
    /// Send time of every message in flight, oldest first.
    sent_at: VecDeque<Instant>,
    /// We closed it on purpose (cycle done, or run over and echoes back).
    closing: bool,
    logged: bool,
}

impl Churn {
    /// Start the slot's next connection, or retire the slot once the run is stopping.
    fn reconnect(&self, token: u64) {
        let sh = &self.shared;
        if sh.stopping.load(Relaxed) {
            sh.remaining.fetch_sub(1, Relaxed);
            return;
        }
        let Some(client) = self.client.get().and_then(Weak::upgrade) else {
            sh.remaining.fetch_sub(1, Relaxed);
            return;
        };
        if let Err(e) = self.target.connect(&client, next_token(token)) {
            tracing::warn!(slot = slot_of(token), "reconnect failed: {e:#}");
            sh.connect_errors.fetch_add(1, Relaxed);
            sh.remaining.fetch_sub(1, Relaxed);
        }
    }

    fn send_more(&self, s: &mut Session, conn: &mut Conn, now: Instant) {
        let sh = &self.shared;
        if sh.stopping.load(Relaxed) {
            return;
        }
        while s.sent_at.len() < sh.pipeline && s.next_send < self.per_cycle {
            send_message(conn, s.token, s.next_send, &sh.shape);
            s.sent_at.push_back(now);
            s.next_send += 1;
        }
    }
}

impl Handler for Churn {
    type Session = Session;

    fn on_open(&self, conn: &mut Conn) -> Session {
        let sh = &self.shared;
        sh.open.fetch_add(1, Relaxed);
        let mut s = Session {
            slot: sh.worker_slot(),
            token: conn.token(),
            next_send: 0,
            rx: EchoRx::new(conn.token()),
            sent_at: VecDeque::with_capacity(sh.pipeline),
            closing: false,
            logged: false,
        };
        if sh.stopping.load(Relaxed) {
            s.closing = true;
            conn.close();
        } else {
            self.send_more(&mut s, conn, Instant::now());
        }
        s
    }

    fn on_data(&self, s: &mut Session, conn: &mut Conn, data: &[u8]) {
        let sh = &*self.shared;
        let now = Instant::now();
        let fed = {
            let mut rec = Recorder::new(&s.slot, sh, now);
            s.rx.feed(data, &sh.shape, &mut s.sent_at, |sent, _| rec.record(sent))
        };
        if sh.check_fed(&fed, &mut s.logged, conn, s.rx.seq) {
            s.closing = true;
            conn.abort();
            return;
        }
        self.send_more(s, conn, now);
        if s.sent_at.is_empty() && !s.closing {
            // All echoes of this cycle are back (or the run is stopping).
            s.closing = true;
            conn.close();
        }
    }

    fn on_close(&self, s: Session, conn: &Conn, reason: CloseReason) {
        let sh = &self.shared;
        sh.open.fetch_sub(1, Relaxed);
        if !s.closing {
            sh.unexpected_closes.fetch_add(1, Relaxed);
            if sh.may_warn() {
                tracing::warn!(
                    conn = %conn.id(),
                    slot = slot_of(s.token),
                    in_flight = s.sent_at.len(),
                    %reason,
                    "connection closed unexpectedly"
                );
            }
        } else if s.rx.seq == self.per_cycle && sh.recording.load(Relaxed) {
            s.slot.cycles.fetch_add(1, Relaxed);
        }
        self.reconnect(s.token);
    }

    fn on_connect_failed(&self, token: u64, addr: SocketAddr, reason: CloseReason) {
        let sh = &self.shared;
        sh.connect_errors.fetch_add(1, Relaxed);
        if sh.may_warn() {
            tracing::warn!(slot = slot_of(token), %addr, %reason, "connect failed");
        }
        self.reconnect(token);
    }
}

/// Run the churn load.
pub fn run(opts: &BenchOptions, per_cycle: usize) -> anyhow::Result<BenchReport> {
    anyhow::ensure!(per_cycle > 0, "--churn-messages must be at least 1");
    anyhow::ensure!(
        (opts.connections as u64) < 1 << SLOT_BITS,
        "too many churn slots"
    );
    let shared = Arc::new(Shared::new(opts.connections, opts.shape()?, opts.pipeline));
    let cell = Arc::new(OnceLock::new());
    let target = Arc::new(Target::new(opts));
    let mut client = Arc::new(start_client(
        opts,
        Churn {
            shared: shared.clone(),
            target: target.clone(),
            client: cell.clone(),
            per_cycle: per_cycle as u64,
        },
    )?);
    let _ = cell.set(Arc::downgrade(&client));
    for slot in 0..opts.connections as u64 {
        target.connect(&client, slot)?;
    }
    if !opts.warmup.is_zero() {
        std::thread::sleep(opts.warmup);
    }

    shared.recording.store(true, Relaxed);
    let start = Instant::now();
    let progress = Progress::new(opts.progress, "conns");
    measure(&shared, start, opts.duration, progress, || shared.cycles());
    shared.recording.store(false, Relaxed);
    shared.stopping.store(true, Relaxed);
    let elapsed = start.elapsed();

    if !wait_until(DRAIN_WAIT, || shared.remaining.load(Relaxed) == 0) {
        tracing::warn!(
            remaining = shared.remaining.load(Relaxed),
            "churn slots still busy at the drain deadline"
        );
    }
    // Workers hold the client only for the length of a reconnect call.
    let client = loop {
        match Arc::try_unwrap(client) {
            Ok(c) => break c,
            Err(again) => {
                client = again;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    };
    let shutdown = client.shutdown(SHUTDOWN_DEADLINE);
    tracing::debug!(?shutdown, "client engine stopped");

    let mut report = finish_report(opts, &shared, elapsed, ModeName::Churn);
    let cycles = shared.cycles();
    report.cycles = Some(cycles);
    report.connections_per_sec = Some(cycles as f64 / elapsed.as_secs_f64().max(1e-9));
    Ok(report)
}
