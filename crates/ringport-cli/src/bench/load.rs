//! The load handler: each connection keeps `pipeline` messages in flight, checks every
//! echoed byte against the deterministic pattern, and records each message's round trip.
//!
//! Hot-path counters and the latency histogram live in a `WorkerSlot`, one per I/O
//! worker thread (found through a thread-local on `on_open`), so a message never touches
//! a lock or cache line shared with another worker.

use crate::pattern;
use bytes::BytesMut;
use hdrhistogram::Histogram;
use ringport::{CloseReason, Conn, Handler};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Messages up to this size are built on the stack and copied by `Conn::send`.
const STACK_MSG: usize = 512;

/// A fresh latency histogram of nanoseconds (1 ns .. 1 h, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

/// One worker thread's counters and histogram; only that thread writes them during a run.
pub struct WorkerSlot {
    /// Messages completed while recording.
    pub messages: AtomicU64,
    /// Round trips (ns) of those messages.
    pub hist: Mutex<Histogram<u64>>,
}

/// State shared by the handler (on every worker) and the thread driving the run.
pub struct Shared {
    pub size: usize,
    pub pipeline: usize,
    /// Send no new message; close each connection once its echoes are back.
    pub stopping: AtomicBool,
    /// Count and time completed messages (the measured window).
    pub recording: AtomicBool,
    /// Connects neither opened nor failed yet.
    pub unresolved: AtomicU64,
    /// Connections not yet closed (or failed).
    pub remaining: AtomicU64,
    pub connect_errors: AtomicU64,
    pub mismatches: AtomicU64,
    pub unexpected_closes: AtomicU64,
    run_id: u64,
    slots: Mutex<Vec<Arc<WorkerSlot>>>,
}

static NEXT_RUN: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's slot and the run it belongs to.
    static SLOT: RefCell<Option<(u64, Arc<WorkerSlot>)>> = const { RefCell::new(None) };
}

impl Shared {
    pub fn new(connections: usize, size: usize, pipeline: usize) -> Shared {
        Shared {
            size,
            pipeline,
            stopping: AtomicBool::new(false),
            recording: AtomicBool::new(false),
            unresolved: AtomicU64::new(connections as u64),
            remaining: AtomicU64::new(connections as u64),
            connect_errors: AtomicU64::new(0),
            mismatches: AtomicU64::new(0),
            unexpected_closes: AtomicU64::new(0),
            run_id: NEXT_RUN.fetch_add(1, Relaxed),
            slots: Mutex::new(Vec::new()),
        }
    }

    /// The calling worker thread's slot, created on first use.
    fn worker_slot(&self) -> Arc<WorkerSlot> {
        SLOT.with(|cell| {
            let mut cell = cell.borrow_mut();
            if let Some((run, slot)) = cell.as_ref() {
                if *run == self.run_id {
                    return slot.clone();
                }
            }
            let slot = Arc::new(WorkerSlot {
                messages: AtomicU64::new(0),
                hist: Mutex::new(new_histogram()),
            });
            lock(&self.slots).push(slot.clone());
            *cell = Some((self.run_id, slot.clone()));
            slot
        })
    }

    /// Messages completed while recording, over all workers.
    pub fn messages(&self) -> u64 {
        lock(&self.slots)
            .iter()
            .map(|s| s.messages.load(Relaxed))
            .sum()
    }

    /// All workers' histograms merged.
    pub fn merged_histogram(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for slot in lock(&self.slots).iter() {
            all.add(&*lock(&slot.hist))
                .expect("histograms share their bounds");
        }
        all
    }

    pub fn errors(&self) -> u64 {
        self.connect_errors.load(Relaxed)
            + self.mismatches.load(Relaxed)
            + self.unexpected_closes.load(Relaxed)
    }
}

/// Lock, ignoring poisoning: a panicking callback must not hide the numbers.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One connection's state: its worker's slot and its message stream.
pub struct Session {
    slot: Arc<WorkerSlot>,
    st: Stream,
}

/// One connection's progress through its message stream.
struct Stream {
    token: u64,
    /// Sequence number of the next message to send.
    next_send: u64,
    /// Sequence number of the message being received, and how far into it.
    recv_seq: u64,
    recv_off: usize,
    /// The message being received has a wrong byte.
    recv_bad: bool,
    /// Send time of every message in flight, oldest first.
    sent_at: VecDeque<Instant>,
    /// We closed it on purpose (run over, all echoes back).
    closing: bool,
    /// A mismatch was already logged for this connection.
    logged: bool,
}

impl Stream {
    fn send_next(&mut self, conn: &mut Conn, size: usize, now: Instant) {
        let seed = pattern::seed(self.token, self.next_send);
        if size <= STACK_MSG {
            let mut buf = [0u8; STACK_MSG];
            pattern::fill(seed, &mut buf[..size]);
            conn.send(&buf[..size]);
        } else {
            let mut buf = BytesMut::zeroed(size);
            pattern::fill(seed, &mut buf);
            conn.send_bytes(buf.freeze());
        }
        self.sent_at.push_back(now);
        self.next_send += 1;
    }

    fn finish(&mut self, conn: &mut Conn) {
        tracing::debug!(conn = %conn.id(), sent = self.next_send, "all echoes back; closing");
        self.closing = true;
        conn.close();
    }
}

/// The load tool's handler.
pub struct Load {
    pub shared: Arc<Shared>,
}

impl Load {
    fn mismatch(&self, s: &mut Stream, conn: &Conn, what: &str) {
        self.shared.mismatches.fetch_add(1, Relaxed);
        if !s.logged {
            s.logged = true;
            tracing::warn!(conn = %conn.id(), token = s.token, seq = s.recv_seq, "{what}");
        }
    }
}

impl Handler for Load {
    type Session = Session;

    fn on_open(&self, conn: &mut Conn) -> Session {
        let sh = &self.shared;
        sh.unresolved.fetch_sub(1, Relaxed);
        let mut s = Stream {
            token: conn.token(),
            next_send: 0,
            recv_seq: 0,
            recv_off: 0,
            recv_bad: false,
            sent_at: VecDeque::with_capacity(sh.pipeline),
            closing: false,
            logged: false,
        };
        if sh.stopping.load(Relaxed) {
            s.finish(conn);
        } else {
            let now = Instant::now();
            for _ in 0..sh.pipeline {
                s.send_next(conn, sh.size, now);
            }
        }
        Session {
            slot: sh.worker_slot(),
            st: s,
        }
    }

    fn on_data(&self, session: &mut Session, conn: &mut Conn, data: &[u8]) {
        let Session { slot, st: s } = session;
        let sh = &*self.shared;
        let size = sh.size;
        let now = Instant::now();
        let recording = sh.recording.load(Relaxed);
        let stopping = sh.stopping.load(Relaxed);
        let mut hist = None;
        let mut completed = 0u64;
        let mut rest = data;
        while !rest.is_empty() {
            if s.sent_at.is_empty() {
                self.mismatch(s, conn, "echo of bytes never sent");
                // Counted as a mismatch; the close that follows is ours.
                s.closing = true;
                conn.abort();
                break;
            }
            let n = (size - s.recv_off).min(rest.len());
            let seed = pattern::seed(s.token, s.recv_seq);
            if !s.recv_bad && !pattern::matches(seed, s.recv_off, &rest[..n]) {
                s.recv_bad = true;
            }
            s.recv_off += n;
            rest = &rest[n..];
            if s.recv_off < size {
                break;
            }
            let sent = s.sent_at.pop_front().expect("a message is in flight");
            if s.recv_bad {
                self.mismatch(s, conn, "echoed bytes differ from the message sent");
                s.recv_bad = false;
            }
            if recording {
                let ns = now.saturating_duration_since(sent).as_nanos();
                let h = hist.get_or_insert_with(|| lock(&slot.hist));
                h.saturating_record(u64::try_from(ns).unwrap_or(u64::MAX));
                completed += 1;
            }
            s.recv_seq += 1;
            s.recv_off = 0;
            if !stopping {
                s.send_next(conn, size, now);
            }
        }
        if completed > 0 {
            slot.messages.fetch_add(completed, Relaxed);
        }
        if stopping && s.sent_at.is_empty() && !s.closing {
            s.finish(conn);
        }
    }

    fn on_close(&self, session: Session, conn: &Conn, reason: CloseReason) {
        let s = session.st;
        let sh = &self.shared;
        if !s.closing {
            sh.unexpected_closes.fetch_add(1, Relaxed);
            tracing::warn!(
                conn = %conn.id(),
                token = s.token,
                in_flight = s.sent_at.len(),
                %reason,
                "connection closed unexpectedly"
            );
        }
        sh.remaining.fetch_sub(1, Relaxed);
    }

    fn on_connect_failed(&self, token: u64, addr: SocketAddr, reason: CloseReason) {
        let sh = &self.shared;
        sh.connect_errors.fetch_add(1, Relaxed);
        sh.unresolved.fetch_sub(1, Relaxed);
        sh.remaining.fetch_sub(1, Relaxed);
        tracing::warn!(token, %addr, %reason, "connect failed");
    }
}
