//! Live counters. Each worker owns one `WorkerStats` (only it writes); a snapshot sums them.

use crate::admission::RefuseReason;
use crate::error::CloseReason;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

mod display;
pub use display::ByteSize;

mod table;
use table::counter_table;
pub(crate) use table::{MetricKind, Shown};

counter_table! {
    /// Connections open now.
    open: Gauge "ringport_open_connections" "Connections open now." => Shown::Written;
    /// Inbound connections accepted (after the handler's veto).
    accepted: Counter "ringport_accepted_total" "Inbound connections accepted." => Shown::Written;
    /// Inbound connections the handler rejected.
    rejected: Counter "ringport_rejected_total" "Inbound connections the handler vetoed."
        => Shown::Written;
    /// Outbound connects that succeeded.
    connected: Counter "ringport_connected_total" "Outbound connects that succeeded."
        => Shown::Written;
    /// Connections closed (inbound and outbound).
    closed: Counter - "" => Shown::Written;
    /// Bytes received.
    bytes_in: Counter "ringport_received_bytes_total" "Bytes received." => Shown::Written;
    /// Bytes sent.
    bytes_out: Counter "ringport_sent_bytes_total" "Bytes sent." => Shown::Written;
    /// Handler timers (`Conn::set_timer`) that fired.
    timers_fired: Counter "ringport_timers_fired_total" "Handler timers that fired."
        => Shown::Written;
    /// Workers that died (a panic outside any handler guard, or a backend that kept
    /// failing): their connections were closed with `CloseReason::WorkerLost`, their
    /// mailboxes refuse posts, and the others go on serving. Non-zero means degraded.
    workers_lost: Gauge "ringport_workers_lost"
        "I/O workers lost (non-zero: the server is degraded)." => Shown::Written;
    /// Handler callbacks that panicked.
    handler_panics: Counter "ringport_handler_panics_total" "Handler callbacks that panicked."
        => Shown::Anomaly("handler panics");
    /// Connections closed because the peer's bytes could not be framed (too long a frame,
    /// malformed header or line).
    protocol_errors: Counter "ringport_protocol_errors_total"
        "Connections closed because their bytes could not be framed."
        => Shown::Anomaly("protocol errors");
    /// Oversized frames skipped by a codec in discard mode.
    frames_discarded: Counter "ringport_frames_discarded_total"
        "Oversized frames skipped by a codec in discard mode."
        => Shown::Anomaly("frames discarded");
    /// Completions whose connection generation no longer matched (dropped, not delivered).
    stale_completions: Counter "ringport_stale_completions_total"
        "Completions for a connection slot that had been reused."
        => Shown::Anomaly("stale completions");
    /// Times the engine was asked to free a connection's slot while its in-flight ledger
    /// still held operations (an engine bug; the slot was kept). Always 0 in a healthy
    /// engine.
    slot_frees_refused: Counter "ringport_slot_frees_refused_total"
        "Slot frees refused because operations were still in flight (an engine bug)."
        => Shown::Anomaly("slot frees refused");
    /// Messages through a `ConnRef` (sends, closes) that arrived after the connection had
    /// closed, was closing or had shut its write side.
    late_sends: Counter "ringport_late_sends_total"
        "Sends through a connection handle after the connection had closed."
        => Shown::Anomaly("late sends");
    /// Bytes accepted for sending that were never sent (the close reason says why).
    undelivered_bytes: Counter "ringport_undelivered_bytes_total"
        "Bytes accepted for sending that were never sent." => Shown::AnomalyBytes("undelivered");
    /// Times a receive found the provided-buffer ring empty (ENOBUFS) and was re-armed.
    enobufs: Counter "ringport_enobufs_total" "Receives that found the provided-buffer ring empty."
        => Shown::Anomaly("enobufs");
    /// Wake-ups that found the completion queue overflowed into the kernel's backlog
    /// (nothing is lost; the backlog is handed over on the next wait).
    cq_overflows: Counter "ringport_cq_overflows_total"
        "Wake-ups that found the completion queue overflowed." => Shown::Anomaly("cq overflows");
    /// Accept calls that failed (EMFILE, ENFILE, ...) and paused a listener.
    accept_errors: Counter "ringport_accept_errors_total"
        "Accept calls that failed (EMFILE, ENFILE, ...) and paused a listener."
        => Shown::Anomaly("accept errors");
    /// Connections closed by one of their timeouts.
    timeouts_fired: Counter "ringport_timeouts_fired_total"
        "Connections closed by one of their timeouts." => Shown::Anomaly("timeouts");
    /// Connections closed as slow readers (send queue over its cap or the budget).
    slow_readers: Counter "ringport_slow_readers_total" "Connections closed as slow readers."
        => Shown::Anomaly("slow readers");
    /// Outbound connects that failed (refused, timed out, ...).
    connect_failed: Counter "ringport_connect_failed_total" "Outbound connects that failed."
        => Shown::Anomaly("connects failed");
    /// Operations of connections submitted to the backend and not finally completed now:
    /// armed receives, sends, connects (with their timeout: two), shutdowns and closes
    /// (as of each worker's last loop; cancels are not counted).
    inflight_ops: Gauge "ringport_inflight_operations"
        "Connection operations submitted and not yet completed."
        => Shown::Anomaly("in-flight ops");
    /// Bytes queued for sending over all connections now (not yet taken by the kernel).
    queued_bytes: Gauge "ringport_queued_bytes"
        "Bytes queued for sending and not yet taken by the kernel." => Shown::AnomalyBytes("queued");
    /// Bytes held now in partly received frames (see `EngineConfig::frame_budget`).
    frame_bytes: Gauge "ringport_frame_bytes" "Bytes held in partly received frames."
        => Shown::AnomalyBytes("partial frames");
    /// Descriptors watched now (`Workers::watch`), until their removal notice.
    watches: Gauge "ringport_watches" "Descriptors watched now." => Shown::Written;
    /// Readiness notifications delivered to `Handler::on_ready`.
    watch_notifications: Counter "ringport_watch_notifications_total"
        "Readiness notifications delivered to watches." => Shown::Written;
    /// Watches removed by their owner (`WatchCtl::remove`, `Workers::unwatch`).
    watches_removed: Counter "ringport_watches_removed_total"
        "Watches removed by their owner." => Shown::Written;
    /// Watches ended by a backend error (`RemoveReason::Failed`).
    watches_failed: Counter "ringport_watches_failed_total"
        "Watches ended by a backend error." => Shown::Anomaly("failed watches");
    /// Watches ended by the engine's shutdown.
    watches_shut_down: Counter "ringport_watches_shut_down_total"
        "Watches ended by the engine's shutdown." => Shown::Written;
    /// Watches ended because their callback panicked or their worker was lost.
    watches_abandoned: Counter "ringport_watches_abandoned_total"
        "Watches ended by a panicking callback or a lost worker."
        => Shown::Anomaly("abandoned watches");
    /// Posted values delivered (`Handler::on_posted`, `Handler::on_worker_posted`).
    posts: Counter "ringport_posts_total" "Posted values delivered." => Shown::Written;
    /// Posted values not delivered: their connection had closed (or was gone) when the
    /// worker took them, or the worker was lost. Each was dropped.
    posts_undelivered: Counter "ringport_posts_undelivered_total"
        "Posted values dropped undelivered (connection closed, worker lost)."
        => Shown::Anomaly("undelivered posts");
    /// Datagrams received and delivered whole (`DatagramHandler::on_datagram`).
    datagrams_in: Counter "ringport_datagrams_received_total" "Datagrams received whole."
        => Shown::Written;
    /// Their payload bytes.
    datagram_bytes_in: Counter "ringport_datagram_received_bytes_total"
        "Payload bytes of datagrams received whole." => Shown::Written;
    /// Datagrams sent.
    datagrams_out: Counter "ringport_datagrams_sent_total" "Datagrams sent." => Shown::Written;
    /// Their payload bytes.
    datagram_bytes_out: Counter "ringport_datagram_sent_bytes_total"
        "Payload bytes of datagrams sent." => Shown::Written;
    /// Datagrams longer than the datagram buffers, reported truncated (never delivered as
    /// if whole).
    datagrams_truncated: Counter "ringport_datagrams_truncated_total"
        "Datagrams too long for the buffers, reported truncated."
        => Shown::Anomaly("truncated datagrams");
    /// Datagrams dropped unsent: the socket's send queue was full, or the engine stopped.
    datagrams_dropped: Counter "ringport_datagrams_dropped_total"
        "Datagrams dropped unsent (send queue full, or shutdown)."
        => Shown::Anomaly("dropped datagrams");
    /// Datagram sends that failed (`UdpError::SendFailed`).
    datagram_send_errors: Counter "ringport_datagram_send_errors_total"
        "Datagram sends that failed." => Shown::Anomaly("datagram send errors");
    /// Datagrams dropped before their handler by a socket's allow or deny list.
    datagrams_denied: Counter "ringport_datagrams_denied_total"
        "Datagrams dropped by a socket's allow or deny list." => Shown::Anomaly("denied datagrams");
    /// Datagrams dropped before their handler by the per-source rate limit.
    datagrams_rate_limited: Counter "ringport_datagrams_rate_limited_total"
        "Datagrams dropped by the per-source rate limit."
        => Shown::Anomaly("rate-limited datagrams");
    /// Receive errors on datagram sockets (ICMP errors and the like; receiving goes on).
    datagram_errors: Counter "ringport_datagram_receive_errors_total"
        "Receive errors on datagram sockets." => Shown::Anomaly("datagram receive errors");
    /// Jobs and async tasks spawned (`Conn::spawn_job`, `Conn::spawn_async`).
    jobs_spawned: Counter "ringport_jobs_spawned_total" "Jobs and async tasks spawned."
        => Shown::Written;
    /// Job results delivered to `Handler::on_job_done`.
    jobs_done: Counter "ringport_jobs_done_total" "Job results delivered."
        => Shown::Written;
    /// Jobs spawned whose end has not come back to their worker yet (queued, running,
    /// or waiting for an earlier result of their connection).
    jobs_outstanding: Gauge "ringport_jobs_outstanding"
        "Jobs spawned whose end has not come back yet." => Shown::Written;
    /// Jobs not run because their connection had closed first (async tasks: aborted
    /// unfinished).
    jobs_skipped: Counter "ringport_jobs_skipped_total"
        "Jobs not run because their connection had closed." => Shown::Anomaly("skipped jobs");
    /// Job results dropped because their connection had closed by the time they came back.
    jobs_dropped: Counter "ringport_jobs_dropped_total"
        "Job results dropped because their connection had closed."
        => Shown::Anomaly("dropped job results");
    /// Jobs that panicked (each closed its connection with `CloseReason::JobPanic`).
    jobs_panicked: Counter "ringport_jobs_panicked_total" "Jobs that panicked."
        => Shown::Anomaly("job panics");
    /// Spawns refused (no pool, the connection at its cap, the pool's queue full, the
    /// connection closing).
    jobs_refused: Counter "ringport_jobs_refused_total" "Job spawns refused."
        => Shown::Anomaly("refused jobs");
    /// File sends that ended with every byte handed to the kernel (`Conn::send_file`).
    files_sent: Counter "ringport_files_sent_total" "File sends finished." => Shown::Written;
    /// Bytes of files handed to the kernel by file sends.
    file_bytes_sent: Counter "ringport_file_sent_bytes_total" "Bytes sent from files."
        => Shown::Written;
    /// Receives into files that ended with every byte written (`Conn::receive_to_file`).
    files_received: Counter "ringport_files_received_total" "Receives into files finished."
        => Shown::Written;
    /// Bytes written to files by receives into files.
    file_bytes_received: Counter "ringport_file_received_bytes_total"
        "Bytes received into files." => Shown::Written;
    /// File transfers that ended early, for any reason (the five below).
    transfers_failed: Counter "ringport_transfers_failed_total"
        "File transfers that ended early." => Shown::Anomaly("failed transfers");
    /// ... because the file being sent ended early (`TransferError::Truncated`).
    transfers_truncated: Counter "ringport_transfers_truncated_total"
        "File sends whose file ended early." => Shown::Anomaly("truncated file sends");
    /// ... because the disk was full (`TransferError::DiskFull`).
    transfers_disk_full: Counter "ringport_transfers_disk_full_total"
        "Receives into files that found the disk full." => Shown::Anomaly("transfers on a full disk");
    /// ... because reading or writing the file failed (`TransferError::Io`).
    transfers_io_errors: Counter "ringport_transfers_io_errors_total"
        "File transfers ended by a file I/O error." => Shown::Anomaly("transfer I/O errors");
    /// ... because the peer ended the stream first (`TransferError::PeerClosed`).
    transfers_peer_closed: Counter "ringport_transfers_peer_closed_total"
        "Receives into files the peer ended short." => Shown::Anomaly("transfers the peer cut short");
    /// ... because the connection closed first (`TransferError::Closed`).
    transfers_closed: Counter "ringport_transfers_closed_total"
        "File transfers ended by their connection's close." => Shown::Anomaly("transfers cut by a close");
    /// Bytes given to `Conn::send` (or `send_bytes`, `send_frame`) that were refused:
    /// the write side was shut or the connection was closing (`Conn::try_send` says so).
    refused_send_bytes: Counter "ringport_refused_send_bytes_total"
        "Bytes refused by sends after shutdown_write or abort."
        => Shown::AnomalyBytes("refused sends");
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
        let refused_by = by_name(refuse_names(), workers.iter().map(|w| &w.refused));
        let mut stats = Stats {
            backend,
            refused: refused_by.iter().map(|(_, n)| n).sum(),
            refused_by,
            closed_by: by_name(close_names(), workers.iter().map(|w| &w.closed_by)),
            workers: workers.len() as u64,
            listeners: listener_names
                .iter()
                .enumerate()
                .map(|(i, name)| ListenerStats::sum(name, i, &workers))
                .collect(),
            ..Stats::default()
        };
        stats.sum_table(&workers);
        stats
    }
}
