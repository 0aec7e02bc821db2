//! State shared by the load handlers (on every I/O worker) and the thread driving a run:
//! run-wide flags and error counters, and one `WorkerSlot` per worker thread for the
//! hot-path counters and latency histogram.
//!
//! A worker finds its slot through a thread-local, so a completed message never touches
//! a lock or cache line shared with another worker.

use super::echo::Fed;
use crate::pattern::Shape;
use crate::report::Errors;
use hdrhistogram::Histogram;
use ringport::Conn;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Warnings logged per run before further ones are only counted (a refused port under
/// churn would otherwise log once per reconnect).
const MAX_WARNINGS: u64 = 20;

/// A fresh latency histogram of nanoseconds (1 ns .. 1 h, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

/// One worker thread's counters and histogram; only that thread writes them during a run.
pub struct WorkerSlot {
    /// Messages completed while recording.
    pub messages: AtomicU64,
    /// Churn cycles (connect, echoes, close) completed while recording.
    pub cycles: AtomicU64,
    /// Round trips (ns) of the recorded messages.
    pub hist: Mutex<Histogram<u64>>,
}

/// Run-wide state.
pub struct Shared {
    /// What each message looks like on the wire.
    pub shape: Shape,
    pub pipeline: usize,
    /// Send no new message (or open no new connection); close once echoes are back.
    pub stopping: AtomicBool,
    /// Count and time completions (the measured window).
    pub recording: AtomicBool,
    /// Initial connects neither opened nor failed yet.
    pub unresolved: AtomicU64,
    /// Connections (churn: slots) not yet finished for good.
    pub remaining: AtomicU64,
    /// Connections open right now.
    pub open: AtomicU64,
    pub connect_errors: AtomicU64,
    pub mismatches: AtomicU64,
    pub unexpected_closes: AtomicU64,
    /// Rate mode: sends skipped because a connection had too many messages outstanding.
    pub behind: AtomicU64,
    warnings: AtomicU64,
    run_id: u64,
    slots: Mutex<Vec<Arc<WorkerSlot>>>,
}

static NEXT_RUN: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's slot and the run it belongs to.
    static SLOT: RefCell<Option<(u64, Arc<WorkerSlot>)>> = const { RefCell::new(None) };
}

impl Shared {
    pub fn new(connections: usize, shape: Shape, pipeline: usize) -> Shared {
        Shared {
            shape,
            pipeline,
            stopping: AtomicBool::new(false),
            recording: AtomicBool::new(false),
            unresolved: AtomicU64::new(connections as u64),
            remaining: AtomicU64::new(connections as u64),
            open: AtomicU64::new(0),
            connect_errors: AtomicU64::new(0),
            mismatches: AtomicU64::new(0),
            unexpected_closes: AtomicU64::new(0),
            behind: AtomicU64::new(0),
            warnings: AtomicU64::new(0),
            run_id: NEXT_RUN.fetch_add(1, Relaxed),
            slots: Mutex::new(Vec::new()),
        }
    }

    /// The calling worker thread's slot, created on first use.
    pub fn worker_slot(&self) -> Arc<WorkerSlot> {
        SLOT.with(|cell| {
            let mut cell = cell.borrow_mut();
            if let Some((run, slot)) = cell.as_ref() {
                if *run == self.run_id {
                    return slot.clone();
                }
            }
            let slot = Arc::new(WorkerSlot {
                messages: AtomicU64::new(0),
                cycles: AtomicU64::new(0),
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

    /// Churn cycles completed while recording, over all workers.
    pub fn cycles(&self) -> u64 {
        lock(&self.slots)
            .iter()
            .map(|s| s.cycles.load(Relaxed))
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

    pub fn error_counts(&self) -> Errors {
        Errors {
            connect: self.connect_errors.load(Relaxed),
            mismatch: self.mismatches.load(Relaxed),
            closed: self.unexpected_closes.load(Relaxed),
            behind: self.behind.load(Relaxed),
        }
    }

    pub fn errors(&self) -> u64 {
        self.error_counts().total()
    }

    /// True while this run may still log a warning (see [`MAX_WARNINGS`]).
    pub fn may_warn(&self) -> bool {
        let n = self.warnings.fetch_add(1, Relaxed);
        if n == MAX_WARNINGS {
            tracing::warn!("{MAX_WARNINGS} warnings logged; further ones are only counted");
        }
        n < MAX_WARNINGS
    }

    /// Count a mismatch; log the first one of each connection.
    pub fn mismatch(&self, logged: &mut bool, conn: &Conn, seq: u64, what: &str) {
        self.mismatches.fetch_add(1, Relaxed);
        if !*logged && self.may_warn() {
            *logged = true;
            tracing::warn!(conn = %conn.id(), token = conn.token(), seq, "{what}");
        }
    }

    /// Count (and log once) what one verified batch found wrong. Returns true when the
    /// peer echoed bytes that were never sent: the caller then aborts the connection.
    pub fn check_fed(&self, fed: &Fed, logged: &mut bool, conn: &Conn, seq: u64) -> bool {
        for _ in 0..fed.bad {
            self.mismatch(
                logged,
                conn,
                seq,
                "echoed bytes differ from the message sent",
            );
        }
        if fed.unsolicited {
            self.mismatch(logged, conn, seq, "echo of bytes never sent");
        }
        fed.unsolicited
    }
}

/// Lock, ignoring poisoning: a panicking callback must not hide the numbers.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records the completions of one `on_data` call into the worker's slot: the histogram
/// is locked at most once per call, the message counter bumped once, on drop.
pub struct Recorder<'a> {
    slot: &'a WorkerSlot,
    recording: bool,
    now: Instant,
    hist: Option<MutexGuard<'a, Histogram<u64>>>,
    completed: u64,
}

impl<'a> Recorder<'a> {
    pub fn new(slot: &'a WorkerSlot, shared: &Shared, now: Instant) -> Recorder<'a> {
        Recorder {
            slot,
            recording: shared.recording.load(Relaxed),
            now,
            hist: None,
            completed: 0,
        }
    }

    /// A message sent (or, in rate mode, due to be sent) at `since` came back now.
    pub fn record(&mut self, since: Instant) {
        if !self.recording {
            return;
        }
        let ns = self.now.saturating_duration_since(since).as_nanos();
        let slot = self.slot;
        let h = self.hist.get_or_insert_with(|| lock(&slot.hist));
        h.saturating_record(u64::try_from(ns).unwrap_or(u64::MAX));
        self.completed += 1;
    }
}

impl Drop for Recorder<'_> {
    fn drop(&mut self) {
        if self.completed > 0 {
            self.slot.messages.fetch_add(self.completed, Relaxed);
        }
    }
}
