//! The close protocol from inside, on a worker driven by hand: states no black-box test
//! can reach on purpose. Invariant 3: a completion naming a freed slot's old generation
//! is dropped and counted, never delivered to the connection that now holds the slot. A
//! receive without a buffer still finishes a close. A lost worker reports each of its
//! connections exactly once.

use super::conn_state::Phase;
use super::mailbox::Mailbox;
use super::user_data::{encode, OpKind};
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
    let (slot, old_gen) = w.insert(socket(), peer, 0, None, Phase::Open);
    assert!(w.conns.remove(slot, old_gen).is_some());
    let (slot2, new_gen) = w.insert(socket(), peer, 0, None, Phase::Open);
    w.opened(slot2, new_gen);
    assert_eq!(slot2, slot);
    assert_ne!(new_gen, old_gen);

    // Completions that name the old tenant: receive, send, close.
    for kind in [OpKind::Recv, OpKind::Send, OpKind::Close] {
        w.dispatch(Completion {
            user_data: encode(kind, slot, old_gen),
            result: 5,
            flags: 0,
        });
    }
    assert_eq!(stats.stale_completions.load(Relaxed), 3);
    assert_eq!(handler.data_calls.load(Relaxed), 0);
    let st = w
        .conns
        .get_mut(slot2, new_gen)
        .expect("the new tenant is untouched");
    assert_eq!((st.phase, st.inflight, st.sending), (Phase::Open, 0, false));
}

#[test]
fn a_receive_without_a_buffer_still_finishes_a_closing_connection() {
    let (mut w, handler, _stats) = worker();
    let peer = "127.0.0.1:1".parse().unwrap();
    let (slot, gen) = w.insert(socket(), peer, 0, None, Phase::Open);
    w.opened(slot, gen);
    w.service(slot, gen); // arms the multishot receive: one op in flight
    {
        let st = w.conns.get_mut(slot, gen).unwrap();
        assert_eq!((st.inflight, st.recv_armed), (1, true));
        // Closing, waiting for that receive's last completion.
        st.phase = Phase::Closing;
        st.conn.close = crate::conn::CloseRequest::Now(CloseReason::Local);
    }
    // Its last completion names no buffer of ours (flags 0): the receive is over all the
    // same, so the close must go on.
    w.dispatch(Completion {
        user_data: encode(OpKind::Recv, slot, gen),
        result: 5,
        flags: 0,
    });
    let st = w
        .conns
        .get_mut(slot, gen)
        .expect("the fd's close is in flight");
    assert_eq!(st.phase, Phase::Closed, "the close finished");
    assert_eq!(handler.data_calls.load(Relaxed), 0);
}

#[test]
fn a_lost_worker_reports_each_connection_exactly_once() {
    let (mut w, handler, stats) = worker();
    let peer = "127.0.0.1:1".parse().unwrap();
    // Open: reported closed with WorkerLost.
    let (open, open_gen) = w.insert(socket(), peer, 1, None, Phase::Connecting);
    w.opened(open, open_gen);
    // A connect that failed: on_connect_failed ran, its fd's close is in flight.
    let (failed, failed_gen) = w.insert(socket(), peer, 2, None, Phase::Connecting);
    w.begin_close(failed, failed_gen, CloseReason::ConnectRefused);
    assert_eq!(
        w.conns.get_mut(failed, failed_gen).unwrap().phase,
        Phase::Closed
    );
    // A connect still in flight: it fails with WorkerLost.
    w.insert(socket(), peer, 3, None, Phase::Connecting);

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
