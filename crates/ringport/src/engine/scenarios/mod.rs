//! Lifecycle scenarios on a worker driven by hand over the fake backend
//! (`sys::fake::FakeDriver`): scripted completions, no sockets, virtual time. Each
//! scenario puts a connection in a state no black-box test can reach on purpose (a
//! cancel racing a completion, EOF in the middle of a send, a panic in each callback)
//! and checks what the handler saw, what was started and cancelled, and that the slot
//! is freed with an empty ledger.

mod close;
mod connect;
mod io;
mod panics;
mod watches;

use super::mailbox::Mailbox;
use super::worker::Worker;
use crate::config::EngineConfig;
use crate::conn::Conn;
use crate::core::{ConnKey, Lifecycle, OpKind};
use crate::error::CloseReason;
use crate::handler::Handler;
use crate::stats::WorkerStats;
use crate::sys::fake::{FakeDriver, FakeOp};
use crate::sys::Driver;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Which callback a hook runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cb {
    Open,
    Data,
    Eof,
    Drained,
    Writable,
    Timer,
    Close,
}

/// What the handler saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seen {
    Open,
    Data(Vec<u8>),
    Eof,
    Drained,
    Writable(bool),
    Timer(u64),
    Close(CloseReason),
    ConnectFailed(CloseReason),
    /// `on_ready` of the watch with this token.
    Ready(u64),
    WatchRemoved(u64, crate::notify::RemoveReason),
}

type Hook = Box<dyn Fn(Cb, &mut Conn, &[u8]) + Send + Sync>;

/// A handler that records every callback and runs the scenario's hook in it (to send,
/// close, set timers or panic). Without a hook it keeps the trait's defaults (EOF: close
/// after flushing).
#[derive(Default)]
pub(super) struct Script {
    seen: Mutex<Vec<Seen>>,
    hook: Mutex<Option<Hook>>,
    /// Panic in this callback (after recording it).
    panic_in: Mutex<Option<Cb>>,
}

impl Script {
    fn run(&self, cb: Cb, seen: Seen, conn: &mut Conn, data: &[u8]) {
        self.seen.lock().unwrap().push(seen);
        if let Some(hook) = self.hook.lock().unwrap().as_ref() {
            hook(cb, conn, data);
        }
        if *self.panic_in.lock().unwrap() == Some(cb) {
            panic!("scripted panic in {cb:?}");
        }
    }
}

impl Handler for Script {
    type Session = ();
    fn on_open(&self, conn: &mut Conn) {
        self.run(Cb::Open, Seen::Open, conn, &[]);
    }
    fn on_data(&self, _s: &mut (), conn: &mut Conn, data: &[u8]) {
        self.run(Cb::Data, Seen::Data(data.to_vec()), conn, data);
    }
    fn on_eof(&self, _s: &mut (), conn: &mut Conn) {
        let hooked = self.hook.lock().unwrap().is_some();
        self.run(Cb::Eof, Seen::Eof, conn, &[]);
        if !hooked {
            conn.close(); // the trait's default
        }
    }
    fn on_drained(&self, _s: &mut (), conn: &mut Conn) {
        self.run(Cb::Drained, Seen::Drained, conn, &[]);
    }
    fn on_writable(&self, _s: &mut (), conn: &mut Conn, writable: bool) {
        self.run(Cb::Writable, Seen::Writable(writable), conn, &[]);
    }
    fn on_timer(&self, _s: &mut (), conn: &mut Conn, token: u64) {
        self.run(Cb::Timer, Seen::Timer(token), conn, &[]);
    }
    fn on_close(&self, _s: (), _conn: &Conn, why: CloseReason) {
        self.seen.lock().unwrap().push(Seen::Close(why));
        if *self.panic_in.lock().unwrap() == Some(Cb::Close) {
            panic!("scripted panic in on_close");
        }
    }
    fn on_connect_failed(&self, _token: u64, _addr: SocketAddr, why: CloseReason) {
        self.seen.lock().unwrap().push(Seen::ConnectFailed(why));
    }
    fn on_ready(&self, token: u64, _r: crate::notify::Ready, _w: &mut crate::WatchCtl<'_>) {
        self.seen.lock().unwrap().push(Seen::Ready(token));
    }
    fn on_watch_removed(&self, removed: crate::notify::WatchRemoved) {
        let seen = Seen::WatchRemoved(removed.token, removed.reason);
        self.seen.lock().unwrap().push(seen);
    }
}

/// One worker over the fake backend, and its handler and counters.
pub(super) struct Harness {
    pub w: Worker<Script, FakeDriver>,
    pub script: Arc<Script>,
    pub stats: Arc<WorkerStats>,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with_config(EngineConfig::default())
    }

    pub fn with_config(mut config: EngineConfig) -> Harness {
        config.workers = 1;
        let script = Arc::new(Script::default());
        let stats = Arc::new(WorkerStats::default());
        let mailbox = Arc::new(Mailbox::new(usize::MAX).unwrap());
        let shared = Arc::new(super::EngineShared {
            gate: crate::admission::Gate::new(&Default::default()).unwrap(),
            listener_gates: Vec::new(),
            budget: Default::default(),
            workers: crate::workers::Workers::new(vec![mailbox.clone()]),
        });
        let w = Worker::new(
            0,
            &config,
            script.clone(),
            mailbox,
            stats.clone(),
            super::worker::WorkerSockets {
                listeners: vec![],
                datagrams: vec![],
            },
            shared,
        )
        .unwrap();
        Harness { w, script, stats }
    }

    /// Run `hook` in every callback from now on.
    pub fn hook(&self, hook: impl Fn(Cb, &mut Conn, &[u8]) + Send + Sync + 'static) {
        *self.script.hook.lock().unwrap() = Some(Box::new(hook));
    }

    /// Panic in `cb` from now on.
    pub fn panic_in(&self, cb: Cb) {
        *self.script.panic_in.lock().unwrap() = Some(cb);
    }

    /// What the handler has seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.script.seen.lock().unwrap().clone()
    }

    /// A connection as if just accepted: opened, its receive armed.
    pub fn accept(&mut self) -> ConnKey {
        let key = self.w.insert(fd(), peer(), 0, None, Lifecycle::accepted());
        self.w.opened(key);
        self.w.service_dirty();
        key
    }

    /// An outbound connection whose connect (and its timeout) are in flight.
    pub fn connect(&mut self) -> ConnKey {
        self.w.start_connect(peer(), 7, None);
        *self.w.conns.keys().last().expect("inserted")
    }

    /// One turn of the loop, without waiting: every completion posted so far, then what
    /// callbacks asked for, then due timers (at the worker's virtual time).
    pub fn step(&mut self) {
        let mut batch = Vec::new();
        self.w.io.drain(&mut batch);
        for c in batch {
            self.w.dispatch(c);
        }
        self.w.service_dirty();
        self.w.on_timers();
    }

    /// Steps until nothing more is posted (a bounded number of turns).
    pub fn settle(&mut self) {
        for _ in 0..16 {
            self.step();
        }
    }

    /// Move the worker's clock `by` ahead (virtual time) and run the timers.
    pub fn advance(&mut self, by: Duration) {
        self.w.now += by;
        self.step();
    }

    pub fn pending(&self, key: ConnKey, kind: OpKind) -> bool {
        self.w.io.is_pending(key.name(kind))
    }

    /// Post a completion of the connection's operation of `kind`.
    pub fn complete(&mut self, key: ConnKey, kind: OpKind, result: i32) {
        self.w.io.complete(key.name(kind), result, false);
    }

    /// Post received bytes on the connection's receive.
    pub fn receive(&mut self, key: ConnKey, data: &[u8]) {
        self.w.io.receive(key.name(OpKind::Recv), data);
    }

    /// The operations started for the connection, in order (cancels by their target).
    pub fn started(&self, key: ConnKey) -> Vec<FakeOp> {
        let mine = |ud: u64| crate::core::op_name::decode(ud).is_some_and(|(_, k)| k == key);
        self.w
            .io
            .started
            .iter()
            .filter(|(op, ud)| match op {
                FakeOp::Cancel(target) => mine(*target),
                _ => mine(*ud),
            })
            .map(|(op, _)| *op)
            .collect()
    }

    /// The slot is free (the connection's state is gone) and the backend holds nothing
    /// for it.
    pub fn freed(&mut self, key: ConnKey) -> bool {
        self.w.conns.get_mut(key).is_none()
            && self.w.io.pending_count() == usize::from(self.w.io.is_pending(doorbell()))
            && self.w.inflight_ops == 0
    }

    pub fn stat(&self, f: impl Fn(&WorkerStats) -> &std::sync::atomic::AtomicU64) -> u64 {
        f(&self.stats).load(Relaxed)
    }
}

fn doorbell() -> u64 {
    crate::core::op_name::encode(OpKind::Doorbell, 0, 0)
}

/// A descriptor the fake never uses (connections need one to own).
fn fd() -> OwnedFd {
    OwnedFd::from(std::fs::File::open("/dev/null").unwrap())
}

fn peer() -> SocketAddr {
    "192.0.2.1:9".parse().unwrap()
}
