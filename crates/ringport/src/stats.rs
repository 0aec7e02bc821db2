//! Live counters. Each worker owns one `WorkerStats` (only it writes); a snapshot sums them.

use crate::admission::RefuseReason;
use crate::error::CloseReason;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of an engine's counters, summed over its workers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// The backend serving: "uring".
    pub backend: &'static str,
    /// Connections open now.
    pub open: u64,
    /// Inbound connections accepted (after the handler's veto).
    pub accepted: u64,
    /// Inbound connections the handler rejected.
    pub rejected: u64,
    /// Outbound connects that succeeded.
    pub connected: u64,
    /// Outbound connects that failed (refused, timed out, ...).
    pub connect_failed: u64,
    /// Connections closed (inbound and outbound).
    pub closed: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Times a receive found the provided-buffer ring empty (ENOBUFS) and was re-armed.
    pub enobufs: u64,
    /// Completions whose connection generation no longer matched (dropped, not delivered).
    pub stale_completions: u64,
    /// Handler callbacks that panicked.
    pub handler_panics: u64,
    /// Bytes accepted for sending that were never sent (the close reason says why).
    pub undelivered_bytes: u64,
    /// Sends through a `ConnRef` that arrived after the connection had closed.
    pub late_sends: u64,
    /// Wake-ups that found the completion queue overflowed into the kernel's backlog
    /// (nothing is lost; the backlog is handed over on the next wait).
    pub cq_overflows: u64,
    /// Connections closed because the peer's bytes could not be framed (too long a frame,
    /// malformed header or line).
    pub protocol_errors: u64,
    /// Oversized frames skipped by a codec in discard mode.
    pub frames_discarded: u64,
    /// Inbound connections refused at accept (admission control and the handler's veto).
    pub refused: u64,
    /// The same, by [`crate::admission::RefuseReason`] name (every name, zeros included).
    pub refused_by: Vec<(&'static str, u64)>,
    /// Connections closed, by [`CloseReason`] name (every name, zeros included).
    pub closed_by: Vec<(&'static str, u64)>,
    /// Accept calls that failed (EMFILE, ENFILE, ...) and paused a listener.
    pub accept_errors: u64,
    /// Connections closed by one of their timeouts.
    pub timeouts_fired: u64,
    /// Handler timers (`Conn::set_timer`) that fired.
    pub timers_fired: u64,
    /// Connections closed as slow readers (send queue over its cap or the budget).
    pub slow_readers: u64,
    /// Bytes queued for sending over all connections now (not yet taken by the kernel).
    pub queued_bytes: u64,
}

/// One worker's counters.
#[derive(Debug, Default)]
pub(crate) struct WorkerStats {
    pub open: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub connected: AtomicU64,
    pub connect_failed: AtomicU64,
    pub closed: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub enobufs: AtomicU64,
    pub stale_completions: AtomicU64,
    pub handler_panics: AtomicU64,
    pub undelivered_bytes: AtomicU64,
    pub late_sends: AtomicU64,
    pub cq_overflows: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub frames_discarded: AtomicU64,
    /// By `RefuseReason::index`.
    pub refused: [AtomicU64; RefuseReason::ALL.len()],
    /// By `CloseReason::index`.
    pub closed_by: [AtomicU64; CloseReason::NAMES.len()],
    pub accept_errors: AtomicU64,
    pub timeouts_fired: AtomicU64,
    pub timers_fired: AtomicU64,
    pub slow_readers: AtomicU64,
    /// Bytes queued on this worker's connections (its own plain counter).
    pub queued_bytes: AtomicU64,
}

/// Add `n` to a counter only its worker writes (a plain load and store, no locked op).
#[inline]
pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}

impl Stats {
    /// Connections closed with the reason named `name` (see [`CloseReason::NAMES`]).
    pub fn closed_with(&self, name: &str) -> u64 {
        self.closed_by
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, c)| *c)
    }

    /// Connections refused for the reason named `name` (see
    /// [`crate::admission::RefuseReason::name`]).
    pub fn refused_for(&self, name: &str) -> u64 {
        self.refused_by
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, c)| *c)
    }

    pub(crate) fn sum<'a>(
        backend: &'static str,
        workers: impl IntoIterator<Item = &'a WorkerStats>,
    ) -> Stats {
        let mut s = Stats {
            backend,
            ..Stats::default()
        };
        let mut refused = [0u64; RefuseReason::ALL.len()];
        let mut closed = [0u64; CloseReason::NAMES.len()];
        for w in workers {
            s.open += w.open.load(Relaxed);
            s.accepted += w.accepted.load(Relaxed);
            s.rejected += w.rejected.load(Relaxed);
            s.connected += w.connected.load(Relaxed);
            s.connect_failed += w.connect_failed.load(Relaxed);
            s.closed += w.closed.load(Relaxed);
            s.bytes_in += w.bytes_in.load(Relaxed);
            s.bytes_out += w.bytes_out.load(Relaxed);
            s.enobufs += w.enobufs.load(Relaxed);
            s.stale_completions += w.stale_completions.load(Relaxed);
            s.handler_panics += w.handler_panics.load(Relaxed);
            s.undelivered_bytes += w.undelivered_bytes.load(Relaxed);
            s.late_sends += w.late_sends.load(Relaxed);
            s.cq_overflows += w.cq_overflows.load(Relaxed);
            s.protocol_errors += w.protocol_errors.load(Relaxed);
            s.frames_discarded += w.frames_discarded.load(Relaxed);
            s.accept_errors += w.accept_errors.load(Relaxed);
            s.timeouts_fired += w.timeouts_fired.load(Relaxed);
            s.timers_fired += w.timers_fired.load(Relaxed);
            s.slow_readers += w.slow_readers.load(Relaxed);
            s.queued_bytes += w.queued_bytes.load(Relaxed);
            for (i, c) in w.refused.iter().enumerate() {
                refused[i] += c.load(Relaxed);
            }
            for (i, c) in w.closed_by.iter().enumerate() {
                closed[i] += c.load(Relaxed);
            }
        }
        s.refused = refused.iter().sum();
        s.refused_by = RefuseReason::ALL
            .iter()
            .map(|r| (r.name(), refused[r.index()]))
            .collect();
        s.closed_by = CloseReason::NAMES
            .iter()
            .zip(closed)
            .map(|(n, c)| (*n, c))
            .collect();
        s
    }
}
