//! File transfers on a worker: the steps of a file send (the connection's send in
//! flight while a file is at the front of its queue), the writes of a receive into a
//! file, the events to the handler, and what a close does to unfinished transfers.

use super::callbacks::with_session;
use super::delivery::held_bytes;
use super::worker::Worker;
use crate::core::{ConnKey, OpKind};
use crate::error::CloseReason;
use crate::handler::Handler;
use crate::stats::{bump, WorkerStats};
use crate::sys::{op, Completion, Driver};
use crate::transfer::state::SinkEnd;
use crate::transfer::{Direction, TransferError, TransferEvent, TransferId, PROGRESS_STEP};

/// Count a transfer that ended early, by reason.
pub(super) fn count_failure(stats: &WorkerStats, error: &TransferError) {
    bump(&stats.transfers_failed, 1);
    let by_reason = match error {
        TransferError::Truncated { .. } => &stats.transfers_truncated,
        TransferError::DiskFull => &stats.transfers_disk_full,
        TransferError::Io { .. } => &stats.transfers_io_errors,
        TransferError::PeerClosed { .. } => &stats.transfers_peer_closed,
        _ => &stats.transfers_closed,
    };
    bump(by_reason, 1);
}

/// Start the next step of the file at the front of connection `st`'s queue as its send
/// (the ledger has recorded it). False if it could not start (no pipe): the connection
/// is then asked to close with the error.
pub(super) fn start_file_step<D: Driver, S>(
    io: &mut D,
    key: ConnKey,
    st: &mut super::conn_state::ConnState<S>,
) -> bool {
    let (fd, name) = (st.conn.fd, key.name(OpKind::Send));
    let Some(file) = st.conn.out.front_file() else {
        return false;
    };
    let step = op::SendFileStep {
        key: key.slot,
        fd,
        file,
    };
    if let Err(e) = io.start(step, name) {
        tracing::warn!(conn = %st.conn.id(), error = %e, "cannot start a file send");
        st.conn
            .fail(CloseReason::Io(e.raw_os_error().unwrap_or(libc::EIO)));
        return false;
    }
    st.conn.set_file_step(true);
    true
}

impl<H: Handler, D: Driver> Worker<H, D> {
    /// A step of the file at the front of the connection's queue completed (its send
    /// op): move the file along, and report its progress, end or failure.
    pub(super) fn on_file_step(&mut self, key: ConnKey, c: Completion) {
        let now = self.activity_stamp();
        let (conns, stats) = (&mut self.conns, &*self.stats);
        let inflight = &mut self.inflight_ops;
        let Some(st) =
            super::lifecycle::own_completion(conns, stats, inflight, key, OpKind::Send, false)
        else {
            return;
        };
        st.conn.set_file_step(false);
        let done = self.io.call(op::FinishFileStep {
            key: key.slot,
            result: c.result,
            file: st.conn.out.front_file(),
        });
        if done.sent > 0 {
            bump(&stats.bytes_out, done.sent);
            bump(&stats.file_bytes_sent, done.sent);
            if let Some(l) = stats.listener(st.conn.listener) {
                bump(&l.bytes_out, done.sent);
            }
            if let Some(t) = st.timing.as_deref_mut() {
                t.last_write = now;
                t.write_since = Some(now);
            }
        }
        let mut event = None;
        match done.errno {
            None | Some(libc::EAGAIN) => {}
            Some(libc::ECANCELED) => {} // the connection is closing
            Some(e) if done.socket_side => st.conn.fail(CloseReason::from_errno(e)),
            Some(e) => {
                // The file could not be read: the peer cannot get the bytes promised.
                if let Some(f) = st.conn.out.pop_front_file() {
                    event = Some(TransferEvent::Failed {
                        id: TransferId(f.id),
                        direction: Direction::Send,
                        done: f.sent,
                        error: TransferError::Io { errno: e },
                    });
                }
                st.conn.fail(CloseReason::Io(e));
            }
        }
        if done.errno.is_none() {
            event = match st.conn.out.front_file() {
                Some(f) if f.finished() => {
                    let f = st.conn.out.pop_front_file().expect("at the front");
                    let id = TransferId(f.id);
                    if f.sent == f.total {
                        bump(&stats.files_sent, 1);
                        Some(TransferEvent::Sent { id, bytes: f.sent })
                    } else {
                        st.conn.fail(CloseReason::FileTruncated);
                        Some(TransferEvent::Failed {
                            id,
                            direction: Direction::Send,
                            done: f.sent,
                            error: TransferError::Truncated {
                                undelivered: f.total - f.sent,
                            },
                        })
                    }
                }
                Some(f) if f.sent - f.reported >= PROGRESS_STEP => {
                    f.reported = f.sent;
                    Some(TransferEvent::Progress {
                        id: TransferId(f.id),
                        direction: Direction::Send,
                        done: f.sent,
                        total: f.total,
                    })
                }
                _ => None,
            };
        }
        if let Some(ev) = event {
            let ended = !matches!(ev, TransferEvent::Progress { .. });
            if let TransferEvent::Failed { error, .. } = &ev {
                count_failure(stats, error);
            }
            if let Some(t) = st.conn.transfers_mut() {
                t.sending -= u32::from(ended);
                t.events.push(ev);
                t.drained_owed |= ended;
            }
        }
        if st.is_open() {
            st.mark_dirty(key, &mut self.dirty);
        } else {
            self.settle_and_mark(key);
        }
    }

    /// A write of received bytes to a file completed.
    pub(super) fn on_file_write(&mut self, key: ConnKey, c: Completion) {
        let (conns, stats) = (&mut self.conns, &*self.stats);
        let inflight = &mut self.inflight_ops;
        let Some(st) =
            super::lifecycle::own_completion(conns, stats, inflight, key, OpKind::FileWrite, false)
        else {
            return;
        };
        let buf = self.io.call(op::ReclaimWrite { key: key.slot });
        let held_before = held_bytes(st);
        if let (Some(sink), Some(buf)) = (st.conn.sink_mut(), buf) {
            let before = sink.written;
            let end = sink.wrote(buf, c.result);
            bump(&stats.file_bytes_received, sink.written - before);
            let event = match end {
                None => None,
                Some(SinkEnd::Done) => None, // reported when the sink leaves (below)
                Some(SinkEnd::Progress(ev)) => Some(ev),
                Some(SinkEnd::Failed(ev)) => {
                    if let TransferEvent::Failed { error, .. } = &ev {
                        count_failure(stats, error);
                    }
                    Some(ev)
                }
            };
            if let (Some(ev), Some(t)) = (event, st.conn.transfers_mut()) {
                t.events.push(ev);
            }
        }
        self.frame_held = self.frame_held - held_before + held_bytes(st);
        if st.is_open() {
            st.mark_dirty(key, &mut self.dirty);
        } else {
            self.settle_and_mark(key);
        }
    }

    /// After the callbacks: give a receive into a file the bytes the reader holds for it
    /// (one asked outside `on_data`), start its next write, or let a finished one go
    /// (reporting `Received`); the frame budget follows what it holds.
    pub(super) fn pump_sink(&mut self, key: ConnKey) {
        let Some(st) = self.conns.get_mut(key) else {
            return;
        };
        if st.conn.sink().is_none() {
            return;
        }
        let before = held_bytes(st);
        super::delivery::feed_sink(st);
        self.pump_sink_of(key);
        if let Some(st) = self.conns.get_mut(key) {
            self.frame_held = self.frame_held - before + held_bytes(st);
        }
    }

    fn pump_sink_of(&mut self, key: ConnKey) {
        let Some(st) = self.conns.get_mut(key) else {
            return;
        };
        let Some(sink) = st.conn.sink_mut() else {
            return;
        };
        if sink.over() {
            let t = st.conn.transfers_mut().expect("a sink is in the transfers");
            let sink = t.sink.take().expect("checked");
            if !sink.failed {
                bump(&self.stats.files_received, 1);
                let (id, bytes) = (sink.id, sink.total);
                match sink.into_file() {
                    Some(file) => t.events.push(TransferEvent::Received { id, bytes, file }),
                    None => {
                        let error = TransferError::Io {
                            errno: libc::EMFILE,
                        };
                        count_failure(&self.stats, &error);
                        t.events.push(TransferEvent::Failed {
                            id,
                            direction: Direction::Receive,
                            done: bytes,
                            error,
                        });
                    }
                }
            }
            return;
        }
        if !sink.ready_to_write() || !st.conn.life.start_file_write() {
            return;
        }
        let sink = st.conn.sink_mut().expect("checked above");
        let (buf, offset) = sink.next_write();
        let write = op::WriteAt {
            key: key.slot,
            file: sink.file.clone(),
            offset,
            buf,
        };
        self.inflight_ops += 1;
        self.io.start(write, key.name(OpKind::FileWrite));
    }

    /// Hand the connection's transfer events to the handler, in order. True if there
    /// were any (the handler may have asked for more).
    pub(super) fn deliver_transfer_events(&mut self, key: ConnKey) -> bool {
        let Some(st) = self.conns.get_mut(key) else {
            return false;
        };
        let Some(t) = st.conn.transfers_mut() else {
            return false;
        };
        if t.events.is_empty() {
            return false;
        }
        let events = std::mem::take(&mut t.events);
        let drained_owed = std::mem::take(&mut t.drained_owed);
        let handler = &self.handler;
        for ev in events {
            // One guard per event: a panic closes the connection, the others still go.
            with_session(&self.stats, st, |s, conn| handler.on_transfer(s, conn, ev));
        }
        let drained = !st.conn.has_unsent()
            && st.is_open()
            && st.conn.close_request() == crate::conn::CloseRequest::None;
        if drained && drained_owed {
            // The last thing queued was a file: it is all with the kernel now.
            with_session(&self.stats, st, |s, conn| handler.on_drained(s, conn));
        }
        true
    }

    /// The connection is closing: its unfinished transfers end (`Failed` with
    /// `Closed`, after any event not yet told), and their files are let go (a step or a
    /// write in flight keeps its own handle until its completion).
    pub(super) fn end_transfers(&mut self, key: ConnKey) {
        let Some(st) = self.conns.get_mut(key) else {
            return;
        };
        if st.conn.transfers().is_none() {
            return;
        }
        let files = st.conn.out.take_files();
        let t = st.conn.transfers_mut().expect("checked above");
        let mut events = std::mem::take(&mut t.events);
        t.sending = 0;
        let closed = |id, direction, done| TransferEvent::Failed {
            id,
            direction,
            done,
            error: TransferError::Closed,
        };
        for f in files {
            events.push(closed(TransferId(f.id), Direction::Send, f.sent));
        }
        if let Some(sink) = t.sink.take() {
            if !sink.failed {
                events.push(closed(sink.id, Direction::Receive, sink.written));
            }
        }
        for ev in &events {
            if let TransferEvent::Failed {
                error: TransferError::Closed,
                ..
            } = ev
            {
                count_failure(&self.stats, &TransferError::Closed);
            }
        }
        let handler = &self.handler;
        for ev in events {
            with_session(&self.stats, st, |s, conn| handler.on_transfer(s, conn, ev));
        }
    }

    /// The peer's EOF came while a receive into a file still wanted bytes: it fails.
    pub(super) fn sink_cut_short(
        st: &mut super::conn_state::ConnState<H::Session>,
        stats: &WorkerStats,
    ) {
        let Some(sink) = st.conn.sink_mut() else {
            return;
        };
        if sink.wanted() == 0 || sink.failed {
            return;
        }
        let missing = sink.wanted();
        let end = sink.fail(TransferError::PeerClosed { missing });
        sink.taken = sink.total; // nothing more will come: it is over once no write is out
        if let (SinkEnd::Failed(ev), Some(t)) = (end, st.conn.transfers_mut()) {
            count_failure(stats, &TransferError::PeerClosed { missing });
            t.events.push(ev);
        }
    }
}
