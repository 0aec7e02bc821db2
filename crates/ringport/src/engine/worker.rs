//! One I/O worker: its backend (io_uring or readiness), connections, listeners and
//! mailbox, and the loop that drains completions and runs callbacks.

use super::conn_state::ConnState;
use super::datagrams::DatagramSocket;
use super::mailbox::{Mailbox, Message};
use super::timeouts::TimerEntry;
use super::EngineShared;
use crate::codec::Codec;
use crate::config::EngineConfig;
use crate::conn::ConnContext;
use crate::core::op_name::{decode, encode};
use crate::core::Slab;
use crate::core::{ConnKey, Ledger, OpKind};
use crate::error::Error;
use crate::handler::Handler;
use crate::notify::table::Watches;
use crate::stats::{bump, WorkerStats};
use crate::sys::op;
use crate::sys::Completion;
use crate::sys::Driver;
use crate::timer::TimerWheel;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pause before re-arming an accept that failed (EMFILE and the like), so a listener
/// never spins.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Timing-wheel resolution and size: 10 ms ticks, 1024 slots (a 10 s revolution; later
/// deadlines wait out whole revolutions).
const WHEEL_TICK: Duration = Duration::from_millis(10);
const WHEEL_SLOTS: usize = 1024;

/// Completion and work lists shrink back to this capacity after a burst.
pub(crate) const KEEP_BATCH_CAPACITY: usize = 1024;

/// The most completions a worker waits to gather before running callbacks.
const MAX_BATCH_WANT: u32 = 256;

/// Completions the peer causes (data, connections, a watched descriptor's readiness),
/// as opposed to our own sends, closes and cancels finishing.
fn peer_driven(user_data: u64) -> bool {
    matches!(
        decode(user_data),
        Some((
            OpKind::Recv | OpKind::Accept | OpKind::Connect | OpKind::Watch | OpKind::RecvFrom,
            _
        ))
    )
}

/// What a worker reports when it exits.
#[derive(Debug, Default)]
pub(crate) struct WorkerExit {
    pub connections_at_shutdown: u64,
    pub forced: u64,
}

/// Pause before re-arming an accept that failed.
pub(super) fn worker_retry() -> Duration {
    ACCEPT_RETRY
}

/// A worker's way to its exit.
#[derive(Debug, Default)]
pub(super) struct Stopping {
    /// A shutdown message arrived: stop accepting, flush, close, exit.
    pub asked: bool,
    /// Its deadline, if it has one: then close whatever has not flushed.
    pub until: Option<Instant>,
    /// The shutdown deadline passed and the stragglers were forced closed.
    pub deadline_hit: bool,
    /// The mailbox is closed and the doorbell read cancelled: exit when it completes.
    pub exiting: bool,
    pub exit: WorkerExit,
}

/// One listening socket of this worker.
pub(super) struct ListenSocket {
    pub fd: Option<OwnedFd>,
    /// What its connections share: the mailbox and the listener's codec.
    pub ctx: Arc<ConnContext>,
    /// Its operation in flight: the multishot accept, when armed.
    pub ledger: Ledger,
    /// Do not re-arm before this instant (after an accept error).
    pub paused_until: Option<Instant>,
}

/// One worker thread's whole state.
pub(crate) struct Worker<H: Handler, D: Driver> {
    pub(super) index: u8,
    pub(super) handler: Arc<H>,
    /// The I/O backend (io_uring or readiness), seen as a completion port.
    pub(super) io: D,
    pub(super) conns: Slab<ConnState<H::Session>>,
    pub(super) listeners: Vec<ListenSocket>,
    pub(super) mailbox: Arc<Mailbox>,
    /// Messages taken from the mailbox and not yet acted on.
    pub(super) inbox: std::collections::VecDeque<Message>,
    pub(super) stats: Arc<WorkerStats>,
    pub(super) config: EngineConfig,
    /// Admission control and the send budget, shared by the engine's workers.
    pub(super) shared: Arc<EngineShared>,
    /// The time as of this loop iteration, and when the worker started.
    pub(super) now: Instant,
    pub(super) epoch: Instant,
    /// Timeouts and handler timers.
    pub(super) wheel: TimerWheel<TimerEntry>,
    pub(super) fired: Vec<TimerEntry>,
    /// When an accept error was last logged, and how many were not logged since.
    pub(super) accept_error_logged: Option<Instant>,
    pub(super) accept_errors_unlogged: u64,
    /// The engine's codec and this worker's mailbox, shared by its `Conn`s (except those
    /// of a listener with a codec of its own).
    pub(super) ctx: Arc<ConnContext>,
    /// Connections to look at after the current batch (sends, closes, re-arms).
    pub(super) dirty: Vec<ConnKey>,
    /// The other half of `dirty` while a batch of it is serviced (see `service_dirty`).
    pub(super) dirty_spare: Vec<ConnKey>,
    /// Operations of connections submitted and not finally completed (the sum of their
    /// ledgers' lengths), published to the stats once per loop.
    pub(super) inflight_ops: u64,
    /// The serial number of the next connection opened (see `ConnId`).
    pub(super) next_serial: u64,
    /// Bytes held by the frame readers of this worker's connections (partly received
    /// frames), against `config.frame_budget`.
    pub(super) frame_held: usize,
    /// Where the worker is in stopping, and what it reports when it exits.
    pub(super) stop: Stopping,
    /// Descriptors watched on this worker.
    pub(super) watches: Watches,
    /// This worker's datagram sockets, by the engine's index (`None`: that socket is on
    /// another worker).
    pub(super) datagrams: Vec<Option<DatagramSocket>>,
}

/// The sockets a worker starts with: its listeners (each with its listener's own codec
/// if it has one) and its datagram sockets.
pub(crate) struct WorkerSockets {
    pub listeners: Vec<(OwnedFd, Option<Codec>)>,
    pub datagrams: Vec<Option<DatagramSocket>>,
}

impl<H: Handler, D: Driver> Worker<H, D> {
    pub(crate) fn new(
        index: u8,
        config: &EngineConfig,
        handler: Arc<H>,
        mailbox: Arc<Mailbox>,
        stats: Arc<WorkerStats>,
        sockets: WorkerSockets,
        shared: Arc<EngineShared>,
    ) -> Result<Worker<H, D>, Error> {
        let WorkerSockets {
            listeners,
            datagrams,
        } = sockets;
        let now = Instant::now();
        let ctx = Arc::new(ConnContext {
            mailbox: mailbox.clone(),
            codec: config.codec.clone(),
            stats: stats.clone(),
            jobs: config.job_settings(),
            high_water: config.send_queue.high_water,
        });
        let driver_config = if datagrams.iter().all(Option::is_none) {
            config.driver_config()
        } else {
            config.driver_config_with_datagrams()
        };
        let io = D::new(driver_config)
            .map_err(|e| Error::Backend(format!("backend set-up failed: {e}")))?;
        tracing::debug!(worker = index, setup = io.setup_name(), "worker set up");
        Ok(Worker {
            index,
            handler,
            io,
            conns: Slab::with_generation_step(config.generation_step()),
            listeners: listeners
                .into_iter()
                .map(|(fd, codec)| ListenSocket {
                    fd: Some(fd),
                    ctx: match codec {
                        Some(codec) => Arc::new(ConnContext {
                            mailbox: mailbox.clone(),
                            codec: codec.clone(),
                            stats: stats.clone(),
                            jobs: config.job_settings(),
                            high_water: config.send_queue.high_water,
                        }),
                        None => ctx.clone(),
                    },
                    ledger: Ledger::default(),
                    paused_until: None,
                })
                .collect(),
            mailbox,
            inbox: Default::default(),
            stats,
            config: config.clone(),
            ctx,
            shared,
            now,
            epoch: now,
            wheel: TimerWheel::new(WHEEL_TICK, WHEEL_SLOTS, now),
            fired: Vec::new(),
            accept_error_logged: None,
            accept_errors_unlogged: 0,
            dirty: Vec::new(),
            dirty_spare: Vec::new(),
            inflight_ops: 0,
            next_serial: 1,
            frame_held: 0,
            stop: Stopping::default(),
            watches: Watches::default(),
            datagrams,
        })
    }

    pub(crate) fn setup_name(&self) -> &'static str {
        self.io.setup_name()
    }

    /// The event loop: submit, wait, drain, dispatch, then act on dirty connections.
    /// Returns once shut down, or the backend's error if waiting fails (the worker is then
    /// lost: see `lost.rs`).
    pub(crate) fn run(&mut self) -> std::io::Result<WorkerExit> {
        for i in 0..self.listeners.len() {
            self.arm_accept(i);
        }
        for i in 0..self.datagrams.len() {
            self.arm_recv_from(i);
        }
        self.arm_doorbell();
        let mut batch = Vec::with_capacity(1024);
        let mut want = 1;
        loop {
            // Clamped: no backend can wait for `Duration::MAX` (a kernel timespec would
            // read it as negative).
            let timeout = self
                .next_wakeup()
                .map(|t| crate::deadline::clamp(t.saturating_duration_since(Instant::now())));
            // Results of jobs come through the doorbell, one completion however many:
            // waiting out the min-wait for `want` completions would only delay them.
            let jobs_out = self
                .stats
                .jobs_outstanding
                .load(std::sync::atomic::Ordering::Relaxed);
            let batch_wait = if jobs_out > 0 {
                Duration::ZERO
            } else {
                self.config.batch_wait
            };
            self.io.submit_and_wait(want, batch_wait, timeout)?;
            self.now = Instant::now();
            // Connections opened in this batch are stamped with its time (the registry's
            // open times; no clock read of their own).
            self.conns.set_stamp(super::registry::ticks(
                self.now.saturating_duration_since(self.epoch),
            ));
            if self.io.drain(&mut batch) {
                bump(&self.stats.cq_overflows, 1);
            }
            // Expect as many peer-driven completions next time as this time (bounded), so
            // a busy worker reaps in batches and a quiet one wakes on the first completion.
            // Our own sends complete right after submission and are not counted: with one
            // connection they would double `want` and make every wait sit out the min-wait.
            let external = batch.iter().filter(|c| peer_driven(c.user_data)).count();
            want = (external as u32).clamp(1, MAX_BATCH_WANT);
            for c in batch.drain(..) {
                self.dispatch(c);
            }
            // Do not keep memory sized by a past burst (10,000 connects at once).
            if batch.capacity() > KEEP_BATCH_CAPACITY {
                batch.shrink_to(KEEP_BATCH_CAPACITY);
            }
            self.service_dirty();
            self.flush_datagram_sockets();
            self.on_timers();
            // Pool threads for the jobs this pass spawned, now that the pass is done.
            if let Some(pool) = &self.config.job_pool {
                pool.wake_owed();
            }
            self.publish_gauges();
            if self.stop.exiting && !self.io.call(op::DoorbellArmed) {
                break;
            }
        }
        self.io.shutdown();
        self.publish_gauges();
        Ok(std::mem::take(&mut self.stop.exit))
    }

    /// Publish the gauges the worker keeps as plain counters (once per loop, and at exit
    /// so a report taken after shutdown shows their final values).
    pub(super) fn publish_gauges(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.stats.inflight_ops.store(self.inflight_ops, Relaxed);
        self.stats
            .frame_bytes
            .store(self.frame_held as u64, Relaxed);
        self.stats.watches.store(self.watches.len() as u64, Relaxed);
    }

    pub(super) fn dispatch(&mut self, c: Completion) {
        let Some((kind, key)) = decode(c.user_data) else {
            tracing::error!(user_data = c.user_data, "completion with an unknown name");
            return;
        };
        match kind {
            OpKind::Accept => self.on_accept(key.slot as usize, c),
            OpKind::Recv => self.on_recv(key, c),
            OpKind::Send => self.on_send(key, c),
            OpKind::Connect => self.on_connect(key, c),
            OpKind::ConnectTimeout => self.on_connect_timeout(key),
            OpKind::Shutdown | OpKind::Close => self.on_op_done(key, kind),
            OpKind::Doorbell => self.on_doorbell(),
            OpKind::Watch => self.on_watch_poll(key, c),
            OpKind::RecvFrom => self.on_recv_from(key.slot as usize, c),
            OpKind::SendTo => self.on_sent_to(key.slot as usize, key.gen, c),
            OpKind::FileWrite => self.on_file_write(key, c),
            OpKind::Ignore => {}
        }
    }

    /// Wait for the mailbox's doorbell (one read at a time: the driver ignores a second).
    fn arm_doorbell(&mut self) {
        let efd = self.mailbox.doorbell().raw();
        self.io
            .start(op::DoorbellRead { efd }, encode(OpKind::Doorbell, 0, 0));
    }

    fn on_doorbell(&mut self) {
        // Taken into the worker's own inbox and popped one by one, so that if acting on
        // one panics the rest are still there for `lose` to settle.
        self.mailbox.drain(&mut self.inbox);
        while let Some(m) = self.inbox.pop_front() {
            self.on_message(m);
        }
        if self.inbox.capacity() > KEEP_BATCH_CAPACITY {
            self.inbox.shrink_to(KEEP_BATCH_CAPACITY);
        }
        if !self.stop.exiting {
            self.arm_doorbell();
        }
    }

    fn on_message(&mut self, msg: Message) {
        match msg {
            Message::Send(id, data, counted) => {
                let key = self.find(id);
                let found = key.and_then(|k| self.conns.get_mut(k));
                if let (true, Some(room)) = (counted, found.as_ref().and_then(|st| st.conn.room()))
                {
                    room.posted_gone(data.len()); // in the queue now, or refused
                }
                match found {
                    Some(st) if st.takes_sends() => {
                        st.conn.send_bytes(data);
                        self.mark_dirty(key.expect("found"));
                    }
                    _ => {
                        bump(&self.stats.late_sends, 1);
                        bump(&self.stats.undelivered_bytes, data.len() as u64);
                    }
                }
            }
            Message::Close(id) => {
                if let Some(key) = self.find(id) {
                    if let Some(st) = self.conns.get_mut(key) {
                        st.conn.close();
                    }
                    self.mark_dirty(key);
                } else {
                    bump(&self.stats.late_sends, 1);
                }
            }
            Message::Connect { addr, token, bind } => self.start_connect(addr, token, bind),
            Message::Shutdown(until) => self.begin_shutdown(until),
            Message::Query(q) => self.on_query(q),
            Message::Broadcast { listener, data } => self.on_broadcast(listener, data),
            Message::Watch {
                id,
                fd,
                file,
                interest,
                token,
            } => self.start_watch(id, fd, file, interest, token),
            Message::WatchAsk { id, ask } => self.on_watch_ask(id, ask),
            Message::Post(id, value) => self.on_post(id, value),
            Message::PostWorker(value) => self.on_worker_post(value),
            Message::SendTo(i, out) => self.on_send_to_message(i, out),
            Message::JobDone(job) => self.on_job_returned(job),
            #[cfg(feature = "test-hooks")]
            Message::InjectPanic => panic!("injected worker panic (test hook)"),
        }
    }

    /// The key of connection `id` if the connection in its slot now is `id` (its serial
    /// number matches): a handle never reaches a later tenant of the slot, however often
    /// the slot's 24-bit generation has come round.
    pub(super) fn find(&mut self, id: crate::conn::ConnId) -> Option<ConnKey> {
        let (key, st) = self.conns.get_slot_mut(id.slot())?;
        (st.conn.id() == id).then_some(key)
    }

    /// Mark a connection to be looked at after the batch.
    pub(super) fn mark_dirty(&mut self, key: ConnKey) {
        if let Some(st) = self.conns.get_mut(key) {
            st.mark_dirty(key, &mut self.dirty);
        }
    }

    pub(super) fn service_dirty(&mut self) {
        while !self.dirty.is_empty() {
            // The list being serviced and the one its services mark into swap places, so
            // both keep their capacity from batch to batch (taking the list left an empty
            // one to regrow on every batch: a reallocation every few messages).
            let mut list = std::mem::take(&mut self.dirty_spare);
            std::mem::swap(&mut list, &mut self.dirty);
            for key in list.drain(..) {
                if let Some(st) = self.conns.get_mut(key) {
                    st.dirty = false;
                }
                self.service(key);
            }
            self.dirty_spare = list;
        }
        for list in [&mut self.dirty, &mut self.dirty_spare] {
            if list.capacity() > KEEP_BATCH_CAPACITY {
                list.shrink_to(KEEP_BATCH_CAPACITY);
            }
        }
    }

    /// Re-arm a listener's multishot accept unless shutting down or paused.
    pub(super) fn arm_accept(&mut self, i: usize) {
        let l = &mut self.listeners[i];
        let Some(fd) = l.fd.as_ref() else { return };
        if l.ledger.has(OpKind::Accept) || self.stop.asked || l.paused_until.is_some() {
            return;
        }
        l.ledger.record(OpKind::Accept);
        let listener = fd.as_raw_fd();
        self.io.start(
            op::AcceptMulti { listener },
            encode(OpKind::Accept, i as u32, 0),
        );
    }

    /// The earliest instant the loop must wake up by itself.
    fn next_wakeup(&self) -> Option<Instant> {
        let paused = self.listeners.iter().filter_map(|l| l.paused_until).min();
        let deadline = self.stop.until.filter(|_| !self.stop.deadline_hit);
        [paused, deadline, self.wheel_wakeup()]
            .into_iter()
            .flatten()
            .min()
    }

    pub(super) fn on_timers(&mut self) {
        let now = self.now;
        if !self.wheel.is_empty() {
            self.poll_wheel();
            self.service_dirty();
        }
        for i in 0..self.listeners.len() {
            if self.listeners[i].paused_until.is_some_and(|t| t <= now) {
                self.listeners[i].paused_until = None;
                self.arm_accept(i);
            }
        }
        if self.stop.asked {
            if let Some(until) = self.stop.until {
                if !self.stop.deadline_hit && now >= until {
                    self.stop.deadline_hit = true;
                    self.force_close_all();
                }
            }
            self.maybe_exit();
        }
    }

    /// Begin a graceful shutdown: stop accepting, flush and close every connection (by
    /// `until` if given).
    pub(super) fn begin_shutdown(&mut self, until: Option<Instant>) {
        if self.stop.asked {
            return;
        }
        self.stop.asked = true;
        self.stop.until = until;
        self.stop.exit.connections_at_shutdown = self.conns.len() as u64;
        for (i, l) in self.listeners.iter_mut().enumerate() {
            l.paused_until = None;
            if let (true, Some(fd)) = (l.ledger.has(OpKind::Accept), l.fd.as_ref()) {
                let target = encode(OpKind::Accept, i as u32, 0);
                let cancel = op::Cancel {
                    target,
                    fd: fd.as_raw_fd(),
                };
                self.io.start(cancel, encode(OpKind::Ignore, 0, 0));
            } else {
                l.fd = None;
            }
        }
        for key in self.conns.keys() {
            self.request_shutdown_close(key);
        }
        self.remove_all_watches();
        self.stop_datagram_sockets();
    }

    /// When every connection and listener is gone, close the mailbox and stop the
    /// doorbell; the loop exits once its read completes. Jobs of closed connections
    /// still out (cancelled; a job may not look) are waited for until the shutdown
    /// deadline, so the final counts say how each ended.
    fn maybe_exit(&mut self) {
        let jobs_out = self
            .stats
            .jobs_outstanding
            .load(std::sync::atomic::Ordering::Relaxed);
        if self.stop.exiting
            || (jobs_out > 0 && !self.stop.deadline_hit)
            || self.conns.len() > 0
            || !self.watches.is_empty()
            || !self.datagram_sockets_idle()
            || self.listeners.iter().any(|l| !l.ledger.is_empty())
        {
            return;
        }
        for m in self.mailbox.close() {
            self.on_message(m);
        }
        if self.conns.len() > 0 {
            return; // a late connect raced in; it fails at once and is closed
        }
        self.stop.exiting = true;
        if self.io.call(op::DoorbellArmed) {
            let cancel = op::Cancel {
                target: encode(OpKind::Doorbell, 0, 0),
                fd: self.mailbox.doorbell().raw(),
            };
            self.io.start(cancel, encode(OpKind::Ignore, 0, 0));
        }
    }
}
