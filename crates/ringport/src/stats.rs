//! Live counters. Each worker owns one `WorkerStats` (only it writes); a snapshot sums them.

use crate::admission::RefuseReason;
use crate::error::CloseReason;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

mod display;
pub use display::ByteSize;

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
    /// Operations of connections submitted to the backend and not finally completed now:
    /// armed receives, sends, connects (with their timeout: two), shutdowns and closes
    /// (as of each worker's last loop; cancels are not counted).
    pub inflight_ops: u64,
    /// I/O workers the engine started.
    pub workers: u64,
    /// Workers that died (a panic outside any handler guard, or a backend that kept
    /// failing): their connections were closed with `CloseReason::WorkerLost`, their
    /// mailboxes refuse posts, and the others go on serving. Non-zero means degraded.
    pub workers_lost: u64,
    /// Bytes held now in partly received frames (see `EngineConfig::frame_budget`).
    pub frame_bytes: u64,
    /// Bytes given to `Conn::send` (or `send_bytes`, `send_frame`) that were refused:
    /// the write side was shut or the connection was closing (`Conn::try_send` says so).
    pub refused_send_bytes: u64,
    /// The same counters for each listener's connections, in listener order.
    pub listeners: Vec<ListenerStats>,
}

/// One listener's share of a [`Stats`] snapshot (its inbound connections only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenerStats {
    /// The listener's name ([`crate::Listener::name`]), or its bound address.
    pub name: String,
    /// Its connections open now.
    pub open: u64,
    /// Connections it accepted.
    pub accepted: u64,
    /// Connections it refused at accept.
    pub refused: u64,
    /// The same, by [`crate::admission::RefuseReason`] name.
    pub refused_by: Vec<(&'static str, u64)>,
    /// Its connections closed.
    pub closed: u64,
    /// The same, by [`CloseReason`] name.
    pub closed_by: Vec<(&'static str, u64)>,
    /// Bytes received on its connections.
    pub bytes_in: u64,
    /// Bytes sent on its connections.
    pub bytes_out: u64,
    /// Bytes queued for sending on its connections now.
    pub queued_bytes: u64,
}

/// One listener's counters on one worker.
#[derive(Debug, Default)]
pub(crate) struct ListenerCounters {
    pub open: AtomicU64,
    pub accepted: AtomicU64,
    /// By `RefuseReason::index`.
    pub refused: [AtomicU64; RefuseReason::ALL.len()],
    /// By `CloseReason::index`.
    pub closed_by: [AtomicU64; CloseReason::NAMES.len()],
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub queued_bytes: AtomicU64,
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
    /// Published once per loop.
    pub inflight_ops: AtomicU64,
    /// 1 once the worker is lost.
    pub lost: AtomicU64,
    /// Published once per loop.
    pub frame_bytes: AtomicU64,
    pub refused_send_bytes: AtomicU64,
    /// By listener index.
    pub listeners: Box<[ListenerCounters]>,
}

impl WorkerStats {
    pub(crate) fn new(listeners: usize) -> WorkerStats {
        WorkerStats {
            listeners: (0..listeners)
                .map(|_| ListenerCounters::default())
                .collect(),
            ..WorkerStats::default()
        }
    }

    /// The counters of listener `index` (none for an outbound connection's
    /// `conn::NO_LISTENER`).
    #[inline]
    pub(crate) fn listener(&self, index: u16) -> Option<&ListenerCounters> {
        self.listeners.get(usize::from(index))
    }
}

/// The count under `name` in a by-reason list (0 if absent).
fn count_of(list: &[(&'static str, u64)], name: &str) -> u64 {
    list.iter().find(|(n, _)| *n == name).map_or(0, |(_, c)| *c)
}

/// Sum per-reason counters over workers into (name, count) pairs, every name included.
fn by_name<'a, const N: usize>(
    names: impl Iterator<Item = (&'static str, usize)>,
    counters: impl Iterator<Item = &'a [AtomicU64; N]>,
) -> Vec<(&'static str, u64)> {
    let mut sum = [0u64; N];
    for c in counters {
        for (i, v) in c.iter().enumerate() {
            sum[i] += v.load(Relaxed);
        }
    }
    names.map(|(name, i)| (name, sum[i])).collect()
}

fn refuse_names() -> impl Iterator<Item = (&'static str, usize)> {
    RefuseReason::ALL.iter().map(|r| (r.name(), r.index()))
}

fn close_names() -> impl Iterator<Item = (&'static str, usize)> {
    CloseReason::NAMES.iter().copied().zip(0..)
}

impl ListenerStats {
    /// Connections of this listener closed with the reason named `name`.
    pub fn closed_with(&self, name: &str) -> u64 {
        count_of(&self.closed_by, name)
    }

    /// Connections this listener refused for the reason named `name`.
    pub fn refused_for(&self, name: &str) -> u64 {
        count_of(&self.refused_by, name)
    }

    fn sum(name: &str, index: usize, workers: &[&WorkerStats]) -> ListenerStats {
        let each = || workers.iter().filter_map(|w| w.listeners.get(index));
        let total = |f: fn(&ListenerCounters) -> &AtomicU64| {
            each().map(|c| f(c).load(Relaxed)).sum::<u64>()
        };
        let refused_by = by_name(refuse_names(), each().map(|c| &c.refused));
        let closed_by = by_name(close_names(), each().map(|c| &c.closed_by));
        ListenerStats {
            name: name.to_string(),
            open: total(|c| &c.open),
            accepted: total(|c| &c.accepted),
            refused: refused_by.iter().map(|(_, n)| n).sum(),
            refused_by,
            closed: closed_by.iter().map(|(_, n)| n).sum(),
            closed_by,
            bytes_in: total(|c| &c.bytes_in),
            bytes_out: total(|c| &c.bytes_out),
            queued_bytes: total(|c| &c.queued_bytes),
        }
    }
}

/// Add `n` to a counter only its worker writes (a plain load and store, no locked op).
#[inline]
pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}

/// Add `delta` to a gauge only its worker writes, never going below zero.
#[inline]
pub(crate) fn add_signed(gauge: &AtomicU64, delta: i64) {
    let now = gauge.load(Relaxed) as i64 + delta;
    gauge.store(now.max(0) as u64, Relaxed);
}

impl Stats {
    /// Connections closed with the reason named `name` (see [`CloseReason::NAMES`]).
    pub fn closed_with(&self, name: &str) -> u64 {
        count_of(&self.closed_by, name)
    }

    /// Connections refused for the reason named `name` (see
    /// [`crate::admission::RefuseReason::name`]).
    pub fn refused_for(&self, name: &str) -> u64 {
        count_of(&self.refused_by, name)
    }

    /// True when a worker has been lost (see [`Stats::workers_lost`]): the server still
    /// serves on the others, with less capacity.
    pub fn degraded(&self) -> bool {
        self.workers_lost > 0
    }

    /// The counters of the listener named `name` (see [`crate::Listener::name`]).
    pub fn listener(&self, name: &str) -> Option<&ListenerStats> {
        self.listeners.iter().find(|l| l.name == name)
    }

    pub(crate) fn sum<'a>(
        backend: &'static str,
        workers: impl IntoIterator<Item = &'a WorkerStats>,
        listener_names: &[String],
    ) -> Stats {
        let workers: Vec<&WorkerStats> = workers.into_iter().collect();
        let total = |f: fn(&WorkerStats) -> &AtomicU64| {
            workers.iter().map(|w| f(w).load(Relaxed)).sum::<u64>()
        };
        let refused_by = by_name(refuse_names(), workers.iter().map(|w| &w.refused));
        Stats {
            backend,
            open: total(|w| &w.open),
            accepted: total(|w| &w.accepted),
            rejected: total(|w| &w.rejected),
            connected: total(|w| &w.connected),
            connect_failed: total(|w| &w.connect_failed),
            closed: total(|w| &w.closed),
            bytes_in: total(|w| &w.bytes_in),
            bytes_out: total(|w| &w.bytes_out),
            enobufs: total(|w| &w.enobufs),
            stale_completions: total(|w| &w.stale_completions),
            handler_panics: total(|w| &w.handler_panics),
            undelivered_bytes: total(|w| &w.undelivered_bytes),
            late_sends: total(|w| &w.late_sends),
            cq_overflows: total(|w| &w.cq_overflows),
            protocol_errors: total(|w| &w.protocol_errors),
            frames_discarded: total(|w| &w.frames_discarded),
            refused: refused_by.iter().map(|(_, n)| n).sum(),
            refused_by,
            closed_by: by_name(close_names(), workers.iter().map(|w| &w.closed_by)),
            accept_errors: total(|w| &w.accept_errors),
            timeouts_fired: total(|w| &w.timeouts_fired),
            timers_fired: total(|w| &w.timers_fired),
            slow_readers: total(|w| &w.slow_readers),
            queued_bytes: total(|w| &w.queued_bytes),
            inflight_ops: total(|w| &w.inflight_ops),
            workers: workers.len() as u64,
            workers_lost: total(|w| &w.lost),
            frame_bytes: total(|w| &w.frame_bytes),
            refused_send_bytes: total(|w| &w.refused_send_bytes),
            listeners: listener_names
                .iter()
                .enumerate()
                .map(|(i, name)| ListenerStats::sum(name, i, &workers))
                .collect(),
        }
    }
}
