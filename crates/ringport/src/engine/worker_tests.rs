//! The close protocol from inside, on a worker driven by hand: states no black-box test
//! can reach on purpose. Invariant 3: a completion naming a freed slot's old generation
//! is dropped and counted, never delivered to the connection that now holds the slot. A
//! receive without a buffer still finishes a close. A lost worker reports each of its
//! connections exactly once.

use super::mailbox::Mailbox;
use crate::core::{Lifecycle, OpKind};
use super::worker::Worker;
use crate::config::EngineConfig;
use crate::conn::Conn;
use crate::error::CloseReason;
use crate::handler::Handler;
use crate::stats::WorkerStats;
use crate::sys::Completion;
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

#[derive(Default)]
struct Counting {
    data_calls: AtomicUsize,
    closes: std::sync::Mutex<Vec<CloseReason>>,
    connect_failures: std::sync::Mutex<Vec<CloseReason>>,
}

impl Handler for Counting {
    type Session = ();
    fn on_open(&self, _conn: &mut Conn) {}
    fn on_data(&self, _s: &mut (), _conn: &mut Conn, _data: &[u8]) {
        self.data_calls.fetch_add(1, Relaxed);
    }
    fn on_close(&self, _s: (), _conn: &Conn, why: CloseReason) {
        self.closes.lock().unwrap().push(why);
    }
    fn on_connect_failed(&self, _token: u64, _addr: std::net::SocketAddr, why: CloseReason) {
        self.connect_failures.lock().unwrap().push(why);
    }
}

fn socket() -> OwnedFd {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    OwnedFd::from(TcpStream::connect(l.local_addr().unwrap()).unwrap())
}

type TestWorker = Worker<Counting, crate::sys::uring::UringDriver>;

/// A one-worker engine's worker on io_uring, not running: the test drives it by hand.
fn worker() -> (TestWorker, Arc<Counting>, Arc<WorkerStats>) {
    let config = EngineConfig {
        workers: 1,
        ..EngineConfig::default()
    };
    let handler = Arc::new(Counting::default());
    let stats = Arc::new(WorkerStats::default());
    let mailbox = Arc::new(Mailbox::new(usize::MAX).unwrap());
    let w = Worker::new(
        0,
        &config,
        handler.clone(),
        mailbox,
        stats.clone(),
        vec![],
        Arc::new(super::EngineShared {
            gate: crate::admission::Gate::new(&Default::default()).unwrap(),
            listener_gates: Vec::new(),
            budget: Default::default(),
        }),
    )
    .unwrap();
    (w, handler, stats)
}

#[test]
fn completion_of_an_old_generation_is_dropped_and_counted() {
    let (mut w, handler, stats) = worker();
    let peer = "127.0.0.1:1".parse().unwrap();

    // First tenant of the slot, then freed; a second tenant takes the same slot.
    let old = w.insert(socket(), peer, 0, None, Lifecycle::accepted());
    assert!(w.conns.remove(old).is_some());
    let new = w.insert(socket(), peer, 0, None, Lifecycle::accepted());
    w.opened(new);
    assert_eq!(new.slot, old.slot);
    assert_ne!(new.gen, old.gen);

    // Completions that name the old tenant: receive, send, close.
    for kind in [OpKind::Recv, OpKind::Send, OpKind::Close] {
        w.dispatch(Completion {
            user_data: old.name(kind),
            result: 5,
            flags: 0,
        });
    }
    assert_eq!(stats.stale_completions.load(Relaxed), 3);
    assert_eq!(handler.data_calls.load(Relaxed), 0);
    let st = w
        .conns
        .get_mut(new)
        .expect("the new tenant is untouched");
    assert!(st.conn.life.is_open() && st.conn.life.ledger().is_empty());
}

#[test]
fn a_receive_without_a_buffer_still_finishes_a_closing_connection() {
    let (mut w, handler, _stats) = worker();
    let peer = "127.0.0.1:1".parse().unwrap();
    let key = w.insert(socket(), peer, 0, None, Lifecycle::accepted());
    w.opened(key);
    w.service(key); // arms the multishot receive: one op in flight
    {
        let st = w.conns.get_mut(key).unwrap();
        assert!(st.conn.life.ledger().has(OpKind::Recv) && st.conn.life.ledger().len() == 1);
    }
    // Closing, waiting for that receive's last completion.
    w.begin_close(key, CloseReason::Local);
    // Its last completion names no buffer of ours (flags 0): the receive is over all the
    // same, so the close must go on.
    w.dispatch(Completion {
        user_data: key.name(OpKind::Recv),
        result: 5,
        flags: 0,
    });
    let st = w
        .conns
        .get_mut(key)
        .expect("the fd's close is in flight");
    assert!(st.conn.life.is_closed(), "the close finished");
    assert_eq!(handler.data_calls.load(Relaxed), 0);
}

#[test]
fn a_lost_worker_reports_each_connection_exactly_once() {
    let (mut w, handler, stats) = worker();
    let peer = "127.0.0.1:1".parse().unwrap();
    // Open: reported closed with WorkerLost.
    let open = w.insert(socket(), peer, 1, None, Lifecycle::connecting());
    w.opened(open);
    // A connect that failed: on_connect_failed ran, its fd's close is in flight.
    let failed = w.insert(socket(), peer, 2, None, Lifecycle::accepted());
    w.begin_close(failed, CloseReason::ConnectRefused);
    assert!(w.conns.get_mut(failed).unwrap().conn.life.is_closed());
    // A connect still in flight: it fails with WorkerLost.
    w.insert(socket(), peer, 3, None, Lifecycle::connecting());

    w.lose("a test");
    assert_eq!(
        *handler.closes.lock().unwrap(),
        vec![CloseReason::WorkerLost]
    );
    assert_eq!(
        *handler.connect_failures.lock().unwrap(),
        vec![CloseReason::ConnectRefused, CloseReason::WorkerLost],
        "the failed connect is not reported twice"
    );
    assert_eq!(stats.workers_lost.load(Relaxed), 1);
    assert_eq!(stats.open.load(Relaxed), 0);
    assert_eq!(stats.connect_failed.load(Relaxed), 2);
    assert_eq!(w.conns.len(), 0);
}
