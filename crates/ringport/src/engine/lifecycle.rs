//! A connection's life on its worker, as the I/O shell around `core::Lifecycle`: each
//! completion is checked against the connection's ledger and handed to the machine, the
//! handler runs, and the machine's [`Actions`] are carried out on the driver.
//!
//! Close protocol (DESIGN.md invariant 3): a closing connection cancels what its ledger
//! holds and waits for every final completion; only then does `on_close` run and the
//! fd's close get submitted, and only that close's completion frees the slot (and only
//! with an empty ledger: [`Worker::free`]).

use super::callbacks::{
    eof_to_handler, open_session, report_close, report_connect_failed, with_session,
};
use super::conn_state::ConnState;
use super::delivery::{deliver_within_budget, held_bytes, stamp_partial};
use super::worker::Worker;
use crate::conn::{CloseRequest, Conn, ConnId};
use crate::core::lifecycle::State;
use crate::core::Slab;
use crate::core::{Action, Actions, ConnKey, Lifecycle, OpKind, Wants};
use crate::error::CloseReason;
use crate::handler::Handler;
use crate::stats::{bump, WorkerStats};
use crate::sys::{op, socket, Completion, Driver};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;

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
        life: Lifecycle,
    ) -> ConnKey {
        let index = self.index;
        let ctx = match listener {
            Some(l) => self.listeners[l].ctx.clone(),
            None => self.ctx.clone(),
        };
        let serial = self.next_serial;
        self.next_serial += 1;
        self.inflight_ops += u64::from(life.ledger().len());
        self.conns.insert_with(|key| {
            let id = ConnId::new(index, key.slot, serial);
            let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
            let mut conn = Conn::new(id, token, peer, raw, ctx, life);
            if let Some(l) = listener {
                // Fewer than u16::MAX listeners (checked at start).
                conn.listener = l as u16;
            }
            ConnState::new(conn, fd)
        })
    }

    /// The connection is open: run `on_open`, start receiving.
    pub(super) fn opened(&mut self, key: ConnKey) {
        bump(&self.stats.open, 1);
        let Some(st) = self.conns.get_mut(key) else {
            return;
        };
        if let Some(l) = self.stats.listener(st.conn.listener) {
            bump(&l.open, 1);
        }
        st.conn.life.open();
        open_session(&*self.handler, &self.stats, st);
        self.timing_opened(key);
        self.mark_dirty(key);
    }

    pub(super) fn start_connect(&mut self, addr: SocketAddr, token: u64, bind: Option<SocketAddr>) {
        if self.stop.asked {
            return self.connect_failed(token, addr, CloseReason::Shutdown);
        }
        let fd = match socket::for_connect(addr, bind, &self.config.sock_opts()) {
            Ok(fd) => fd,
            Err(e) => {
                let errno = e.raw_os_error().unwrap_or(libc::EIO);
                return self.connect_failed(token, addr, CloseReason::Io(errno));
            }
        };
        let key = self.insert(fd, addr, token, None, Lifecycle::connecting());
        // A timeout too long to represent waits "forever" (a hundred years).
        let timeout = crate::deadline::clamp(self.config.connect_timeout);
        let Some(st) = self.conns.get_mut(key) else {
            return;
        };
        let connect = op::Connect {
            key: key.slot,
            fd: st.conn.fd,
            addr,
            timeout,
            timeout_user_data: key.name(OpKind::ConnectTimeout),
        };
        self.io.start(connect, key.name(OpKind::Connect));
    }

    pub(super) fn connect_failed(&mut self, token: u64, addr: SocketAddr, reason: CloseReason) {
        report_connect_failed(&*self.handler, &self.stats, token, addr, reason);
    }

    /// The connection's operation of `kind` completed (`more`: not its last completion).
    /// True if the completion is the connection's own; see [`own_completion`].
    fn completed(&mut self, key: ConnKey, kind: OpKind, more: bool) -> bool {
        let (conns, stats) = (&mut self.conns, &*self.stats);
        own_completion(conns, stats, &mut self.inflight_ops, key, kind, more).is_some()
    }

    pub(super) fn on_connect(&mut self, key: ConnKey, c: Completion) {
        if !self.completed(key, OpKind::Connect, false) {
            return;
        }
        if self
            .conns
            .get_mut(key)
            .is_some_and(|st| st.conn.life.is_connecting())
        {
            if c.result == 0 {
                bump(&self.stats.connected, 1);
                self.opened(key);
            } else {
                let reason = CloseReason::from_connect_errno(errno_of(c.result));
                self.begin_close(key, reason);
            }
        }
        self.settle(key);
    }

    pub(super) fn on_connect_timeout(&mut self, key: ConnKey) {
        if self.completed(key, OpKind::ConnectTimeout, false) {
            self.settle(key);
        }
    }

    pub(super) fn on_recv(&mut self, key: ConnKey, c: Completion) {
        let now = self.activity_stamp();
        // One look-up for the whole completion (this runs for every chunk received).
        let (conns, stats, more) = (&mut self.conns, &*self.stats, c.more());
        let inflight = &mut self.inflight_ops;
        let Some(st) = own_completion(conns, stats, inflight, key, OpKind::Recv, more) else {
            if c.result > 0 {
                if let Some(id) = self.io.claim_recv(&c) {
                    self.io.recycle(id);
                }
            }
            return;
        };
        if c.result > 0 {
            let Some(id) = self.io.claim_recv(&c) else {
                // The kernel named no buffer we lent: close (the receive's accounting is
                // done above, so a closing connection does not wait for it).
                tracing::error!(flags = c.flags, "receive completion without a valid buffer");
                st.conn.fail(CloseReason::Io(libc::EIO));
                self.settle(key);
                return self.mark_dirty(key);
            };
            bump(&self.stats.bytes_in, c.result as u64);
            if let Some(l) = self.stats.listener(st.conn.listener) {
                bump(&l.bytes_in, c.result as u64);
            }
            if st.is_open() && st.conn.close_request() == CloseRequest::None {
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
            st.conn.life.read_eof();
            let held = held_bytes(st);
            Self::sink_cut_short(st, &self.stats);
            self.frame_held = self.frame_held - held + held_bytes(st);
            if st.is_open() && st.conn.close_request() == CloseRequest::None {
                if st.conn.jobs_held() || st.conn.sink().is_some() {
                    // Bytes that came before the EOF wait for room under the job cap:
                    // the handler hears of the EOF after them (`deliver_buffered`).
                    st.conn.set_eof_held(true);
                } else {
                    eof_to_handler(&*self.handler, &self.stats, st);
                }
            }
        } else {
            match errno_of(c.result) {
                libc::ENOBUFS => bump(&self.stats.enobufs, 1), // re-armed after the batch
                libc::ECANCELED => {}
                e => st.conn.fail(CloseReason::from_errno(e)),
            }
        }
        if st.is_open() {
            st.mark_dirty(key, &mut self.dirty);
        } else {
            self.settle_and_mark(key);
        }
    }

    pub(super) fn on_send(&mut self, key: ConnKey, c: Completion) {
        if self
            .conns
            .get_mut(key)
            .is_some_and(|st| st.conn.file_step())
        {
            return self.on_file_step(key, c);
        }
        let now = self.activity_stamp();
        let (conns, stats) = (&mut self.conns, &*self.stats);
        let inflight = &mut self.inflight_ops;
        let Some(st) = own_completion(conns, stats, inflight, key, OpKind::Send, false) else {
            return;
        };
        let sent = c.result.max(0) as usize;
        let reclaim = op::ReclaimSend {
            key: key.slot,
            sent,
            out: &mut st.conn.out,
        };
        self.io.call(reclaim);
        st.conn.queued -= sent;
        if let (Some(t), true) = (st.timing.as_deref_mut(), sent > 0) {
            // Progress: the write timeout counts from here.
            t.last_write = now;
            t.write_since = (st.conn.queued > 0).then_some(now);
        }
        debug_assert!(st.conn.out.len() <= st.conn.queued);
        if c.result >= 0 {
            bump(&self.stats.bytes_out, sent as u64);
            if let Some(l) = self.stats.listener(st.conn.listener) {
                bump(&l.bytes_out, sent as u64);
            }
            if !st.conn.has_unsent()
                && st.is_open()
                && st.conn.close_request() == CloseRequest::None
            {
                let handler = &self.handler;
                with_session(&self.stats, st, |s, conn| handler.on_drained(s, conn));
            }
        } else if errno_of(c.result) != libc::ECANCELED {
            st.conn.fail(CloseReason::from_errno(errno_of(c.result)));
        }
        if st.is_open() {
            st.mark_dirty(key, &mut self.dirty);
        } else {
            self.settle_and_mark(key);
        }
    }

    /// A shutdown or a close completed.
    pub(super) fn on_op_done(&mut self, key: ConnKey, kind: OpKind) {
        if self.completed(key, kind, false) {
            self.settle(key);
        }
    }

    /// After a receive or send completion of a connection no longer open: settle it (see
    /// `settle`) and look at it after the batch. (An open one is only marked: its
    /// ledger changing never calls for an action.)
    pub(super) fn settle_and_mark(&mut self, key: ConnKey) {
        self.settle(key);
        self.mark_dirty(key);
    }

    /// After a final completion: what the machine makes of the ledger now.
    fn settle(&mut self, key: ConnKey) {
        if let Some(st) = self.conns.get_mut(key) {
            let actions = st.conn.life.settle();
            self.apply(key, actions);
        }
    }

    /// Act on what callbacks asked for: deliver bytes an exact read was waiting for,
    /// check the send queue, arm timers, then let the machine plan (send, shut down
    /// writing, re-arm or pause receiving, close).
    pub(super) fn service(&mut self, key: ConnKey) {
        let Some(st) = self.conns.get_mut(key) else {
            return;
        };
        if !st.is_open() {
            return;
        }
        if let CloseRequest::Now(reason) = st.conn.close_request() {
            return self.begin_close(key, reason);
        }
        // First, so what its callbacks ask (sends, timers, a close) is acted on below;
        // transfer events before bytes held behind a receive into a file.
        self.pump_sink(key);
        if self.deliver_transfer_events(key) {
            return self.service(key);
        }
        if self.deliver_buffered(key) {
            return self.service(key); // once: the exact read asked is consumed
        }
        if !self.check_send_queue(key) {
            return self.service(key); // now closing: begin the close
        }
        // Timers and timeouts: nothing to do (and no clock read) unless in use.
        if self
            .conns
            .get_mut(key)
            .is_some_and(|st| st.conn.timers_asked())
        {
            self.arm_user_timers(key);
        }
        if self.config.timeouts.any() {
            let now = self.now_us();
            if let Some(st) = self.conns.get_mut(key) {
                Self::stamp_queue(st, now);
            }
            self.watch(key);
        }
        let pause_reading = self.config.send_queue.pause_reading;
        let Some(st) = self.conns.get_mut(key) else {
            return;
        };
        let wants = Wants {
            shutdown_write: st.conn.shutdown_write,
            has_out: !st.conn.out.is_empty(),
            has_unsent: st.conn.has_unsent(),
            pause_reading: (pause_reading && st.above_high)
                || st.conn.jobs_full()
                || st.conn.sink().is_some_and(|s| s.backlogged()),
            jobs_pending: st.conn.jobs_outstanding() > 0 || st.conn.sink_finishing(),
        };
        let mut actions = st.conn.life.plan(wants);
        // The usual plan is starts only (a send, a receive): they go out with the
        // connection at hand; anything else, from the first other action on, through
        // `apply`.
        let mut not_started = None;
        while let Some(Action::Start(kind)) = actions.peek() {
            actions.next();
            self.inflight_ops += 1;
            if !start_op(&mut self.io, key, kind, st) {
                not_started = Some(kind);
                break;
            }
        }
        if let Some(kind) = not_started {
            self.on_op_done(key, kind); // nothing started: undo the record
            self.mark_dirty(key); // and look again: the failure asked for a close
        }
        self.apply(key, actions);
    }

    /// An exact read (or a codec switch) asked for outside `on_data` (in `on_open`, a
    /// timer, ...) may already be satisfied by bytes the reader holds: deliver them now
    /// rather than when the next receive arrives, which may be never. True if it
    /// delivered.
    fn deliver_buffered(&mut self, key: ConnKey) -> bool {
        let now = self.activity_stamp();
        let Some(st) = self.conns.get_mut(key) else {
            return false;
        };
        let buffered = st.reader.as_ref().is_some_and(|r| r.buffered() > 0);
        let room = st.conn.jobs_held() && !st.conn.delivery_blocked();
        if room && !buffered {
            // The cap was reached on the last frame received: nothing waits after all.
            st.conn.set_jobs_held(false);
        }
        let asked = st.conn.exact_pending() || st.conn.codec_changed() || room;
        let deliver = buffered
            && asked
            && !st.conn.delivery_blocked()
            && st.session.is_some()
            && st.conn.close_request() == CloseRequest::None;
        if deliver {
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
        }
        if !st.conn.eof_held() || st.conn.jobs_held() || st.conn.sink().is_some() {
            return deliver;
        }
        // Everything received before the peer's EOF is delivered: now the EOF.
        st.conn.set_eof_held(false);
        if st.is_open() && st.conn.close_request() == CloseRequest::None {
            eof_to_handler(&*self.handler, &self.stats, st);
        }
        true
    }

    /// Close now with `reason` (the first reason given is the one reported): see
    /// [`Lifecycle::close`].
    pub(super) fn begin_close(&mut self, key: ConnKey, reason: CloseReason) {
        if let Some(actions) = self
            .conns
            .get_mut(key)
            .and_then(|st| st.conn.life.close(reason))
        {
            self.apply(key, actions);
        }
    }

    /// A connection entered `Closing`: what the engine keeps for it besides its
    /// operations goes now (timers, its watch, its share of the send and frame budgets).
    fn closing(&mut self, key: ConnKey) {
        if let Some(st) = self.conns.get_mut(key) {
            // Before the transfers go: their receive buffers count in the frame budget.
            self.frame_held -= held_bytes(st);
        }
        self.end_transfers(key);
        self.cancel_jobs(key);
        self.unwatch(key);
        self.cancel_user_timers(key);
        self.release_budget(key);
        if let Some(st) = self.conns.get_mut(key) {
            st.reader = None;
        }
    }

    /// Carry out the machine's actions, in order. (Most transitions have none: a
    /// completion of an open connection's receive or send; that case costs one test.)
    #[inline]
    fn apply(&mut self, key: ConnKey, actions: Actions) {
        if !actions.is_empty() {
            self.carry_out(key, actions);
        }
    }

    fn carry_out(&mut self, key: ConnKey, actions: Actions) {
        for action in actions {
            let Some(st) = self.conns.get_mut(key) else {
                return;
            };
            match action {
                // The one on every message: kept here; the rest, once per connection, are
                // out of line so this loop stays small.
                Action::Start(kind) => {
                    self.inflight_ops += 1;
                    if !start_op(&mut self.io, key, kind, st) {
                        self.on_op_done(key, kind); // nothing started: undo the record
                        self.mark_dirty(key);
                    }
                }
                rare => self.carry_out_rare(key, rare),
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn carry_out_rare(&mut self, key: ConnKey, action: Action) {
        let Some(st) = self.conns.get_mut(key) else {
            return;
        };
        match action {
            Action::Closing => self.closing(key),
            Action::Cancel(kind) => {
                let ignore = crate::core::op_name::encode(OpKind::Ignore, 0, 0);
                let cancel = op::Cancel {
                    target: key.name(kind),
                    fd: st.conn.fd,
                };
                self.io.start(cancel, ignore);
            }
            Action::Report => {
                let reason = st.conn.life.closing_reason().expect("reported closing");
                report_close(&*self.handler, &self.stats, &self.shared, st, reason)
            }
            Action::Free => self.free(key),
            Action::Start(_) => unreachable!("started in carry_out"),
        }
    }

    /// Free a connection's slot: only once its ledger is empty (checked always, not only
    /// in debug builds: a slot freed with an operation in flight would let that
    /// operation's completion reach the next tenant, or its memory be reused).
    pub(super) fn free(&mut self, key: ConnKey) {
        let Some(st) = self.conns.get_mut(key) else {
            return;
        };
        if !st.conn.life.ledger().is_empty() {
            bump(&self.stats.slot_frees_refused, 1);
            tracing::error!(ledger = ?st.conn.life.ledger(), "a slot asked to be freed with operations in flight; kept");
            debug_assert!(false, "slot freed with a non-empty ledger");
            return;
        }
        self.conns.remove(key);
    }

    /// Shutdown: flush and close an open connection, drop a pending connect.
    pub(super) fn request_shutdown_close(&mut self, key: ConnKey) {
        let Some(st) = self.conns.get_mut(key) else {
            return;
        };
        match st.conn.life.state() {
            State::Open { .. } => {
                // Unless the handler asked a close of its own, whose reason stands.
                st.conn
                    .life
                    .ask(CloseRequest::AfterFlush(CloseReason::Shutdown));
                self.mark_dirty(key);
            }
            State::Connecting => self.begin_close(key, CloseReason::Shutdown),
            _ => {}
        }
    }

    /// The shutdown deadline passed: close whatever has not finished flushing.
    pub(super) fn force_close_all(&mut self) {
        for key in self.conns.keys() {
            let Some(st) = self.conns.get_mut(key) else {
                continue;
            };
            if matches!(st.conn.life.state(), State::Open { .. } | State::Connecting) {
                self.stop.exit.forced += 1;
                self.begin_close(key, CloseReason::ShutdownDeadline);
            }
        }
    }
}

/// Start the operation of `kind` of connection `st` (`key`), which its ledger has just
/// recorded. False if nothing could be started: a close without a descriptor (never
/// happens), or a kind the machine never starts.
#[inline]
fn start_op<D: Driver, S>(io: &mut D, key: ConnKey, kind: OpKind, st: &mut ConnState<S>) -> bool {
    let (fd, name) = (st.conn.fd, key.name(kind));
    match kind {
        // A connection with jobs out reads a chunk per arm: at its cap, what waits for room
        // is a chunk or so, not all the socket held when the pause began.
        OpKind::Recv if st.conn.jobs_outstanding() > 0 => io.start(op::RecvOnce { fd }, name),
        OpKind::Recv => io.start(op::RecvMulti { fd }, name),
        OpKind::Send if st.conn.out.front_file().is_some() => {
            return super::transfers::start_file_step(io, key, st);
        }
        OpKind::Send => {
            let out = &mut st.conn.out;
            io.start(
                op::SendMsg {
                    key: key.slot,
                    fd,
                    out,
                },
                name,
            );
        }
        OpKind::Shutdown => io.start(op::ShutdownWrite { fd }, name),
        OpKind::Close => match st.fd.take() {
            Some(fd) => io.start(op::Close { fd }, name),
            None => return false,
        },
        other => {
            tracing::error!(
                ?other,
                "the lifecycle asked to start an operation it never starts"
            );
            return false;
        }
    }
    true
}

/// The connection under `key`, if the completion of its operation of `kind` (`more`: not
/// the operation's last) is its own: its slot holds that generation and its ledger that
/// operation. A final one leaves the ledger and the worker's in-flight count. A completion
/// that is not its own is stale, and counted. (A free function over the fields it needs,
/// so the caller keeps the rest of the worker while it holds the connection.)
#[inline]
pub(super) fn own_completion<'a, S>(
    conns: &'a mut Slab<ConnState<S>>,
    stats: &WorkerStats,
    inflight: &mut u64,
    key: ConnKey,
    kind: OpKind,
    more: bool,
) -> Option<&'a mut ConnState<S>> {
    let Some(st) = conns
        .get_mut(key)
        .and_then(|st| st.conn.life.completed(kind, more).then_some(st))
    else {
        bump(&stats.stale_completions, 1);
        return None;
    };
    if !more {
        *inflight -= 1;
    }
    Some(st)
}
