//! A connection's life on its worker: accept or connect, receive, send, close.
//!
//! Close protocol (DESIGN.md invariant 3): a closing connection cancels its in-flight
//! operations and waits for every one of their completions; only then does `on_close` run
//! and the fd's close get submitted, and only that close's completion frees the slot.

use super::conn_state::{ConnState, Phase};
use super::delivery::{deliver_within_budget, reader_held, stamp_partial};
use super::user_data::{encode, OpKind};
use super::worker::Worker;
use crate::conn::{CloseRequest, Conn, ConnId};
use crate::error::CloseReason;
use crate::handler::Handler;
use crate::stats::{add_signed, bump, WorkerStats};
use crate::sys::{socket, Completion, Driver};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

/// Run a user callback; a panic is caught and counted, and `None` returned.
pub(super) fn guard<R>(stats: &WorkerStats, f: impl FnOnce() -> R) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(_) => {
            bump(&stats.handler_panics, 1);
            tracing::warn!("a handler callback panicked; closing its connection");
            None
        }
    }
}

/// A connection has closed with `reason`: count it, release its admission, and run
/// `on_close` (or, for a connect that never opened, `on_connect_failed`).
pub(super) fn report_close<H: Handler>(
    handler: &H,
    stats: &WorkerStats,
    shared: &super::EngineShared,
    st: &mut ConnState<H::Session>,
    reason: CloseReason,
) {
    let undelivered = st.conn.queued_bytes() as u64;
    if undelivered > 0 {
        bump(&stats.undelivered_bytes, undelivered);
    }
    if st.opened {
        add_signed(&stats.open, -1);
        bump(&stats.closed, 1);
        bump(&stats.closed_by[reason.index()], 1);
        if let Some(l) = stats.listener(st.conn.listener) {
            add_signed(&l.open, -1);
            bump(&l.closed_by[reason.index()], 1);
        }
        if st.admitted {
            let (listener, ip) = (usize::from(st.conn.listener), st.conn.peer.ip());
            shared.release(listener, ip, Instant::now());
        }
        if let Some(session) = st.session.take() {
            let conn = &st.conn;
            guard(stats, || handler.on_close(session, conn, reason));
        }
    } else if st.conn.is_outbound() {
        let (token, addr) = (st.conn.token(), st.conn.peer_addr());
        bump(&stats.connect_failed, 1);
        guard(stats, || handler.on_connect_failed(token, addr, reason));
    }
}

pub(super) fn errno_of(result: i32) -> i32 {
    -result
}

impl<H: Handler, D: Driver> Worker<H, D> {
    /// A new connection: accepted by listener `listener`, or outbound (`None`).
    pub(super) fn insert(
        &mut self,
        fd: OwnedFd,
        peer: SocketAddr,
        token: u64,
        listener: Option<usize>,
        phase: Phase,
    ) -> (u32, u32) {
        let index = self.index;
        let ctx = match listener {
            Some(l) => self.listeners[l].ctx.clone(),
            None => self.ctx.clone(),
        };
        let serial = self.next_serial;
        self.next_serial += 1;
        self.conns.insert_with(|slot, _gen| {
            let id = ConnId::new(index, slot, serial);
            let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
            let mut conn = Conn::new(id, token, peer, raw, ctx);
            if let Some(l) = listener {
                // Fewer than u16::MAX listeners (checked at start).
                conn.listener = l as u16;
            }
            ConnState::new(conn, fd, phase)
        })
    }

    /// The connection is open: run `on_open`, start receiving.
    pub(super) fn opened(&mut self, slot: u32, gen: u32) {
        bump(&self.stats.open, 1);
        let Some(st) = self.conns.get_mut(slot, gen) else {
            return;
        };
        if let Some(l) = self.stats.listener(st.conn.listener) {
            bump(&l.open, 1);
        }
        st.phase = Phase::Open;
        st.opened = true;
        let handler = &self.handler;
        let conn = &mut st.conn;
        match guard(&self.stats, || handler.on_open(conn)) {
            Some(session) => st.session = Some(session),
            None => st.conn.panicked(),
        }
        self.timing_opened(slot, gen);
        self.mark_dirty(slot, gen);
    }

    pub(super) fn start_connect(&mut self, addr: SocketAddr, token: u64, bind: Option<SocketAddr>) {
        if self.shutting_down {
            self.connect_failed(token, addr, CloseReason::Shutdown);
            return;
        }
        let fd = match socket::for_connect(addr, bind, &self.config.sock_opts()) {
            Ok(fd) => fd,
            Err(e) => {
                let errno = e.raw_os_error().unwrap_or(libc::EIO);
                self.connect_failed(token, addr, CloseReason::Io(errno));
                return;
            }
        };
        let (slot, gen) = self.insert(fd, addr, token, None, Phase::Connecting);
        // A timeout too long to represent waits "forever" (a hundred years).
        let timeout = crate::deadline::clamp(self.config.connect_timeout);
        let Some(st) = self.conns.get_mut(slot, gen) else {
            return;
        };
        st.inflight += 2;
        self.inflight_ops += 2;
        st.connect_ops = 2;
        self.io.connect(
            slot,
            st.conn.fd,
            addr,
            timeout,
            encode(OpKind::Connect, slot, gen),
            encode(OpKind::ConnectTimeout, slot, gen),
        );
    }

    pub(super) fn connect_failed(&mut self, token: u64, addr: SocketAddr, reason: CloseReason) {
        bump(&self.stats.connect_failed, 1);
        let handler = &self.handler;
        guard(&self.stats, || {
            handler.on_connect_failed(token, addr, reason)
        });
    }

    pub(super) fn on_connect(&mut self, slot: u32, gen: u32, c: Completion) {
        if self.conns.get_mut(slot, gen).is_none() {
            return self.stale();
        }
        self.connect_op_done(slot, gen);
        let Some(st_phase) = self.conns.get_mut(slot, gen).map(|s| s.phase) else {
            return;
        };
        if st_phase != Phase::Connecting {
            return; // cancelled by a shutdown; the close is already under way
        }
        if c.result == 0 {
            bump(&self.stats.connected, 1);
            self.opened(slot, gen);
        } else {
            let reason = CloseReason::from_connect_errno(errno_of(c.result));
            self.begin_close(slot, gen, reason);
        }
    }

    pub(super) fn on_connect_timeout(&mut self, slot: u32, gen: u32) {
        if self.conns.get_mut(slot, gen).is_none() {
            return self.stale();
        }
        self.connect_op_done(slot, gen);
    }

    /// One of the connect's two completions arrived.
    fn connect_op_done(&mut self, slot: u32, gen: u32) {
        let Some(st) = self.conns.get_mut(slot, gen) else {
            return;
        };
        st.connect_ops -= 1;
        st.inflight -= 1;
        self.inflight_ops -= 1;
        if st.connect_ops == 0 {
            self.io.finish_connect(slot);
        }
        self.op_done(slot, gen);
    }

    pub(super) fn on_recv(&mut self, slot: u32, gen: u32, c: Completion) {
        let now = self.activity_stamp();
        let Some(st) = self.conns.get_mut(slot, gen) else {
            if c.result > 0 {
                if let Some(id) = self.io.claim_recv(&c) {
                    self.io.recycle(id);
                }
            }
            return self.stale();
        };
        if !c.more() {
            st.recv_armed = false;
            st.read_pause_cancelled = false;
            st.inflight -= 1;
            self.inflight_ops -= 1;
        }
        if c.result > 0 {
            let Some(id) = self.io.claim_recv(&c) else {
                // The kernel named no buffer we lent: close, but finish this op's
                // accounting first (a closing connection waits for its last op).
                tracing::error!(flags = c.flags, "receive completion without a valid buffer");
                st.conn.fail(CloseReason::Io(libc::EIO));
                self.op_done(slot, gen);
                return self.mark_dirty(slot, gen);
            };
            bump(&self.stats.bytes_in, c.result as u64);
            if let Some(l) = self.stats.listener(st.conn.listener) {
                bump(&l.bytes_in, c.result as u64);
            }
            if st.is_open() && st.conn.close == CloseRequest::None {
                let data = self.io.recv_bytes(&id);
                let budget = self.config.frame_budget;
                deliver_within_budget(
                    &*self.handler,
                    &self.stats,
                    st,
                    data,
                    &mut self.frame_held,
                    budget,
                );
            }
            if let Some(t) = st.timing.as_deref_mut() {
                t.last_read = now;
                t.got_data = true;
                t.pings = 0;
            }
            stamp_partial(st, now);
            self.io.recycle(id);
        } else if c.result == 0 {
            st.read_eof = true;
            if st.is_open() && st.conn.close == CloseRequest::None {
                if let Some(session) = st.session.as_mut() {
                    let (handler, conn) = (&self.handler, &mut st.conn);
                    if guard(&self.stats, || handler.on_eof(session, conn)).is_none() {
                        st.conn.panicked();
                    }
                }
                // A graceful close after EOF is the peer's doing.
                if st.conn.close == CloseRequest::AfterFlush(CloseReason::Local) {
                    st.conn.close = CloseRequest::AfterFlush(CloseReason::PeerClosed);
                }
            }
        } else {
            match errno_of(c.result) {
                libc::ENOBUFS => bump(&self.stats.enobufs, 1), // re-armed after the batch
                libc::ECANCELED => {}
                e => {
                    st.conn.fail(CloseReason::from_errno(e));
                }
            }
        }
        self.op_done(slot, gen);
        self.mark_dirty(slot, gen);
    }

    pub(super) fn on_send(&mut self, slot: u32, gen: u32, c: Completion) {
        let now = self.activity_stamp();
        let Some(st) = self.conns.get_mut(slot, gen) else {
            return self.stale();
        };
        let sent = c.result.max(0) as usize;
        self.io.finish_send(slot, sent, &mut st.conn.out);
        st.conn.queued -= sent;
        if let (Some(t), true) = (st.timing.as_deref_mut(), sent > 0) {
            // Progress: the write timeout counts from here.
            t.last_write = now;
            t.write_since = (st.conn.queued > 0).then_some(now);
        }
        debug_assert!(st.conn.out.len() <= st.conn.queued);
        st.inflight -= 1;
        self.inflight_ops -= 1;
        st.sending = false;
        if c.result >= 0 {
            bump(&self.stats.bytes_out, sent as u64);
            if let Some(l) = self.stats.listener(st.conn.listener) {
                bump(&l.bytes_out, sent as u64);
            }
            if !st.conn.has_unsent() && st.is_open() && st.conn.close == CloseRequest::None {
                if let Some(session) = st.session.as_mut() {
                    let (handler, conn) = (&self.handler, &mut st.conn);
                    if guard(&self.stats, || handler.on_drained(session, conn)).is_none() {
                        st.conn.panicked();
                    }
                }
            }
        } else if errno_of(c.result) != libc::ECANCELED {
            let reason = CloseReason::from_errno(errno_of(c.result));
            st.conn.fail(reason);
        }
        self.op_done(slot, gen);
        self.mark_dirty(slot, gen);
    }

    /// A shutdown or close completed.
    pub(super) fn on_op_done(&mut self, slot: u32, gen: u32) {
        let Some(st) = self.conns.get_mut(slot, gen) else {
            return self.stale();
        };
        st.inflight -= 1;
        self.inflight_ops -= 1;
        self.op_done(slot, gen);
    }

    /// After an op's final completion: finish a close whose ops have all completed, and
    /// free the slot once the fd's close has completed.
    fn op_done(&mut self, slot: u32, gen: u32) {
        let Some(st) = self.conns.get_mut(slot, gen) else {
            return;
        };
        if st.inflight > 0 {
            return;
        }
        match st.phase {
            Phase::Closing => self.finish_close(slot, gen),
            Phase::Closed => {
                self.conns.remove(slot, gen);
            }
            _ => {}
        }
    }

    fn stale(&mut self) {
        bump(&self.stats.stale_completions, 1);
    }

    /// Act on what callbacks asked for: close, send, shut down writing, re-arm receive.
    pub(super) fn service(&mut self, slot: u32, gen: u32) {
        let Some(st) = self.conns.get_mut(slot, gen) else {
            return;
        };
        if st.phase != Phase::Open {
            return;
        }
        if let CloseRequest::Now(reason) = st.conn.close {
            return self.begin_close(slot, gen, reason);
        }
        // First, so what its callbacks ask (sends, timers, a close) is acted on below.
        if self.deliver_buffered(slot, gen) {
            return self.service(slot, gen); // once: the exact read asked is consumed
        }
        if !self.check_send_queue(slot, gen) {
            return self.service(slot, gen); // now closing: begin the close
        }
        // Timers and timeouts: nothing to do (and no clock read) unless in use.
        if self
            .conns
            .get_mut(slot, gen)
            .is_some_and(|st| st.conn.timers_asked())
        {
            self.arm_user_timers(slot, gen);
        }
        if self.config.timeouts.any() {
            let now = self.now_us();
            if let Some(st) = self.conns.get_mut(slot, gen) {
                Self::stamp_queue(st, now);
            }
            self.watch(slot, gen);
        }
        let pause_reading = self.config.send_queue.pause_reading;
        let Some(st) = self.conns.get_mut(slot, gen) else {
            return;
        };
        let paused = pause_reading && st.above_high;
        if !st.sending && !st.conn.out.is_empty() && !st.write_shut {
            let ud = encode(OpKind::Send, slot, gen);
            self.io.send(slot, st.conn.fd, &mut st.conn.out, ud);
            st.sending = true;
            st.inflight += 1;
            self.inflight_ops += 1;
        }
        let flushed = !st.sending && !st.conn.has_unsent();
        if let CloseRequest::AfterFlush(reason) = st.conn.close {
            if flushed {
                return self.begin_close(slot, gen, reason);
            }
            if st.recv_armed && !st.cancelled {
                st.cancelled = true;
                self.io.cancel(
                    encode(OpKind::Recv, slot, gen),
                    st.conn.fd,
                    encode(OpKind::Ignore, 0, 0),
                );
            }
            return;
        }
        if flushed && st.conn.shutdown_write && !st.write_shut {
            st.write_shut = true;
            st.inflight += 1;
            self.inflight_ops += 1;
            self.io
                .shutdown_write(st.conn.fd, encode(OpKind::Shutdown, slot, gen));
        }
        if paused {
            if st.recv_armed && !st.read_pause_cancelled {
                st.read_pause_cancelled = true;
                self.io.cancel(
                    encode(OpKind::Recv, slot, gen),
                    st.conn.fd,
                    encode(OpKind::Ignore, 0, 0),
                );
            }
        } else if !st.recv_armed && !st.read_eof {
            st.recv_armed = true;
            st.inflight += 1;
            self.inflight_ops += 1;
            self.io
                .recv_multi(st.conn.fd, encode(OpKind::Recv, slot, gen));
        }
    }

    /// An exact read (or a codec switch) asked for outside `on_data` (in `on_open`, a
    /// timer, ...) may already be satisfied by bytes the reader holds: deliver them now rather than when the next
    /// receive arrives, which may be never. True if it delivered.
    fn deliver_buffered(&mut self, slot: u32, gen: u32) -> bool {
        let now = self.activity_stamp();
        let Some(st) = self.conns.get_mut(slot, gen) else {
            return false;
        };
        let buffered = st.reader.as_ref().is_some_and(|r| r.buffered() > 0);
        let asked = st.conn.exact_pending() || st.conn.codec_changed();
        if !(buffered && asked && st.session.is_some() && st.conn.close == CloseRequest::None) {
            return false;
        }
        let budget = self.config.frame_budget;
        deliver_within_budget(
            &*self.handler,
            &self.stats,
            st,
            &[],
            &mut self.frame_held,
            budget,
        );
        stamp_partial(st, now);
        true
    }

    /// Free a closing connection's frame reader (and its share of the frame budget).
    fn drop_reader(&mut self, slot: u32, gen: u32) {
        if let Some(st) = self.conns.get_mut(slot, gen) {
            self.frame_held -= reader_held(st);
            st.reader = None;
        }
    }

    /// Enter `Closing`: cancel whatever is in flight, then finish once all completed.
    pub(super) fn begin_close(&mut self, slot: u32, gen: u32, reason: CloseReason) {
        let Some(st) = self.conns.get_mut(slot, gen) else {
            return;
        };
        if matches!(st.phase, Phase::Closing | Phase::Closed) {
            return;
        }
        st.phase = Phase::Closing;
        st.conn.close = CloseRequest::Now(reason);
        self.unwatch(slot, gen);
        self.cancel_user_timers(slot, gen);
        self.release_budget(slot, gen);
        self.drop_reader(slot, gen);
        let Some(st) = self.conns.get_mut(slot, gen) else {
            return;
        };
        let ignore = encode(OpKind::Ignore, 0, 0);
        if st.recv_armed {
            self.io
                .cancel(encode(OpKind::Recv, slot, gen), st.conn.fd, ignore);
        }
        if st.sending {
            self.io
                .cancel(encode(OpKind::Send, slot, gen), st.conn.fd, ignore);
        }
        if st.connect_ops > 0 {
            self.io
                .cancel(encode(OpKind::Connect, slot, gen), st.conn.fd, ignore);
        }
        self.op_done(slot, gen);
    }

    /// Every op completed: report, run `on_close` (or `on_connect_failed`), close the fd.
    fn finish_close(&mut self, slot: u32, gen: u32) {
        let Some(st) = self.conns.get_mut(slot, gen) else {
            return;
        };
        let (Phase::Closing, CloseRequest::Now(reason)) = (st.phase, st.conn.close) else {
            return;
        };
        st.phase = Phase::Closed;
        report_close(&*self.handler, &self.stats, &self.shared, st, reason);
        let Some(st) = self.conns.get_mut(slot, gen) else {
            return;
        };
        if let Some(fd) = st.fd.take() {
            st.inflight += 1;
            self.inflight_ops += 1;
            self.io.close(fd, encode(OpKind::Close, slot, gen));
        } else {
            self.conns.remove(slot, gen);
        }
    }

    /// Shutdown: flush and close an open connection, drop a pending connect.
    pub(super) fn request_shutdown_close(&mut self, slot: u32, gen: u32) {
        let Some(st) = self.conns.get_mut(slot, gen) else {
            return;
        };
        match st.phase {
            Phase::Open => {
                if st.conn.close == CloseRequest::None {
                    st.conn.close = CloseRequest::AfterFlush(CloseReason::Shutdown);
                }
                self.mark_dirty(slot, gen);
            }
            Phase::Connecting => self.begin_close(slot, gen, CloseReason::Shutdown),
            _ => {}
        }
    }

    /// The shutdown deadline passed: close whatever has not finished flushing.
    pub(super) fn force_close_all(&mut self) {
        for (slot, gen) in self.conns.keys() {
            let Some(st) = self.conns.get_mut(slot, gen) else {
                continue;
            };
            if matches!(st.phase, Phase::Open | Phase::Connecting) {
                self.exit.forced += 1;
                self.begin_close(slot, gen, CloseReason::ShutdownDeadline);
            }
        }
    }
}
