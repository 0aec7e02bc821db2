//! The rest of the public surface: stats, several listeners, rejecting connections,
//! zero-copy sends, on_drained, addresses, abort, shutdown_write, ConnRef edge cases,
//! configuration errors.

mod util;

use ringport::{
    Accept, Bytes, CloseReason, Conn, ConnRef, Error, Handler, Incoming, SendError, Server,
};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use util::*;

#[test]
fn stats_counters_move_after_an_echo() {
    let _watchdog = watchdog("stats_counters_move_after_an_echo", TEST_LIMIT);
    let (server, addr, _events) = echo_server();
    let before = server.stats();
    assert_eq!(before.backend, backend_under_test());
    assert_eq!(
        (
            before.open,
            before.accepted,
            before.bytes_in,
            before.bytes_out
        ),
        (0, 0, 0, 0)
    );

    let data = random_bytes(&mut rng(), 10_000);
    let mut stream = connect(addr);
    echo_roundtrip(&mut stream, &data);
    wait_for_value(WAIT, "bytes_out", || server.stats().bytes_out, 10_000);
    let during = server.stats();
    assert_eq!(during.accepted, 1);
    assert_eq!(during.open, 1);
    assert_eq!(during.bytes_in, 10_000);
    assert_eq!(during.closed, 0);

    drop(stream);
    wait_for_value(WAIT, "closed", || server.stats().closed, 1);
    wait_for_value(WAIT, "open", || server.stats().open, 0);
    let after = server.stats();
    assert_eq!(after.accepted, 1);
    assert_eq!(after.rejected, 0);
    assert_eq!(after.handler_panics, 0);
    assert_eq!(after.undelivered_bytes, 0);
}

#[test]
fn inflight_operations_are_counted() {
    let _watchdog = watchdog("inflight_operations_are_counted", TEST_LIMIT);
    let (server, addr, _events) = echo_server();
    assert_eq!(server.stats().inflight_ops, 0);
    let mut clients: Vec<TcpStream> = (0..10).map(|_| connect(addr)).collect();
    // Each open connection keeps one receive armed.
    wait_for_value(WAIT, "in-flight ops", || server.stats().inflight_ops, 10);
    echo_roundtrip(&mut clients[0], b"still one receive each after an echo");
    wait_for_value(WAIT, "in-flight ops", || server.stats().inflight_ops, 10);
    drop(clients);
    wait_for_value(WAIT, "open", || server.stats().open, 0);
    wait_for_value(WAIT, "in-flight ops", || server.stats().inflight_ops, 0);
}

#[test]
fn several_listeners_all_serve() {
    let _watchdog = watchdog("several_listeners_all_serve", TEST_LIMIT);
    // Two IPv4 listeners, plus IPv6 loopback where this machine has it.
    let v6 = match TcpListener::bind("[::1]:0") {
        Ok(_) => true,
        Err(e) => {
            eprintln!("skipping the IPv6 listener: cannot bind [::1]:0 ({e})");
            false
        }
    };
    let mut builder = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(2);
    if v6 {
        builder = builder.listen("[::1]:0").unwrap();
    }
    let (echo, events) = Echo::new();
    let server = builder.start(echo).expect("start the server");
    let addrs = server.local_addrs().to_vec();
    assert_eq!(addrs.len(), if v6 { 3 } else { 2 });
    assert!(addrs[0].is_ipv4() && addrs[1].is_ipv4());
    assert_ne!(
        addrs[0].port(),
        addrs[1].port(),
        "each listener has its own port"
    );
    if v6 {
        assert!(addrs[2].is_ipv6());
    }
    for (i, &addr) in addrs.iter().enumerate() {
        assert_ne!(addr.port(), 0, "listener {i} reports port 0");
        let mut stream = connect(addr);
        echo_roundtrip(
            &mut stream,
            format!("via listener {i} at {addr}").as_bytes(),
        );
    }
    assert_eq!(server.stats().accepted, addrs.len() as u64);
    assert_eq!(events.opened(), addrs.len());
}

/// Rejects the first `reject` connections, then accepts and echoes.
struct Picky {
    reject: AtomicUsize,
    seen_peers: Mutex<Vec<SocketAddr>>,
    events: Arc<Events>,
}

impl Handler for Shared<Picky> {
    type Session = ();
    fn on_accept(&self, incoming: &Incoming) -> Accept {
        assert_eq!(incoming.listener, 0);
        self.seen_peers.lock().unwrap().push(incoming.peer);
        let left = self.reject.load(Ordering::SeqCst);
        if left > 0 {
            self.reject.store(left - 1, Ordering::SeqCst);
            Accept::Reject
        } else {
            Accept::Accept
        }
    }
    fn on_open(&self, _conn: &mut Conn) {
        self.events.opened.fetch_add(1, Ordering::SeqCst);
    }
    fn on_data(&self, _s: &mut (), conn: &mut Conn, data: &[u8]) {
        conn.send(data);
    }
    fn on_close(&self, _s: (), _conn: &Conn, reason: CloseReason) {
        self.events.record_close(reason);
    }
}

#[test]
fn rejected_connections_close_without_on_open() {
    let _watchdog = watchdog("rejected_connections_close_without_on_open", TEST_LIMIT);
    let events = Events::new();
    let picky = Shared::new(Picky {
        reject: AtomicUsize::new(1),
        seen_peers: Mutex::new(Vec::new()),
        events: events.clone(),
    });
    let (server, addr) = start_server(picky.clone());

    let mut rejected = connect(addr);
    let rejected_local = rejected.local_addr().unwrap();
    let (_ending, got) = wait_ended(&mut rejected);
    assert!(got.is_empty(), "a rejected connection got data");
    wait_for_value(WAIT, "rejected", || server.stats().rejected, 1);
    assert_eq!(events.opened(), 0, "on_open ran for a rejected connection");
    assert_eq!(server.stats().accepted, 0);
    assert_eq!(server.stats().open, 0);
    assert!(
        events.reasons().is_empty(),
        "on_close ran for a rejected connection"
    );
    assert_eq!(picky.seen_peers.lock().unwrap()[..], [rejected_local]);

    let mut accepted = connect(addr);
    echo_roundtrip(&mut accepted, b"let me in");
    assert_eq!(events.opened(), 1);
    let stats = server.stats();
    assert_eq!((stats.accepted, stats.rejected), (1, 1));
}

static GREETING: &[u8] = b"static bytes, sent without a copy\n";

/// On open: a static `Bytes`, a shared `Bytes` clone, a copied small send; then close.
struct ZeroCopy {
    shared: Bytes,
}

impl Handler for ZeroCopy {
    type Session = ();
    fn on_open(&self, conn: &mut Conn) {
        conn.send_bytes(Bytes::from_static(GREETING));
        conn.send_bytes(self.shared.clone());
        conn.send(b"tail");
        conn.send_bytes(self.shared.slice(..1000));
        conn.close();
    }
    fn on_data(&self, _s: &mut (), _conn: &mut Conn, _data: &[u8]) {}
    fn on_close(&self, _s: (), _conn: &Conn, _reason: CloseReason) {}
}

#[test]
fn send_bytes_zero_copy_path_delivers_exact_bytes() {
    let _watchdog = watchdog("send_bytes_zero_copy_path_delivers_exact_bytes", TEST_LIMIT);
    let shared = Bytes::from(random_bytes(&mut rng(), 700_000));
    let (server, addr) = start_server(ZeroCopy {
        shared: shared.clone(),
    });
    let mut expected = GREETING.to_vec();
    expected.extend_from_slice(&shared);
    expected.extend_from_slice(b"tail");
    expected.extend_from_slice(&shared[..1000]);
    for _ in 0..3 {
        let mut stream = connect(addr);
        let got = read_to_eof(&mut stream);
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "the zero-copy sends arrived altered");
    }
    wait_for_value(
        WAIT,
        "bytes_out",
        || server.stats().bytes_out,
        3 * expected.len() as u64,
    );
}

/// On open queues a payload; on_drained records how much was still queued, then closes.
struct Drain {
    payload: Bytes,
    drained_with_queued: Mutex<Vec<usize>>,
}

impl Handler for Shared<Drain> {
    type Session = ();
    fn on_open(&self, conn: &mut Conn) {
        conn.send_bytes(self.payload.clone());
        assert_eq!(conn.queued_bytes(), self.payload.len());
    }
    fn on_data(&self, _s: &mut (), _conn: &mut Conn, _data: &[u8]) {}
    fn on_drained(&self, _s: &mut (), conn: &mut Conn) {
        self.drained_with_queued
            .lock()
            .unwrap()
            .push(conn.queued_bytes());
        conn.close();
    }
    fn on_close(&self, _s: (), _conn: &Conn, _reason: CloseReason) {}
}

#[test]
fn on_drained_fires_after_a_queued_send_drains() {
    let _watchdog = watchdog("on_drained_fires_after_a_queued_send_drains", TEST_LIMIT);
    const LEN: usize = 512 * 1024;
    let drain = Shared::new(Drain {
        payload: Bytes::from(random_bytes(&mut rng(), LEN)),
        drained_with_queued: Mutex::new(Vec::new()),
    });
    let (_server, addr) = start_server(drain.clone());
    // A slow reader: the kernel cannot take the whole payload before it is read, so
    // on_drained must wait for the reads.
    let mut stream = connect_slow_reader(addr);
    let first = read_n(&mut stream, 1000);
    assert!(
        drain.drained_with_queued.lock().unwrap().is_empty(),
        "on_drained fired while most of the payload was still queued"
    );
    let rest = read_to_eof(&mut stream);
    assert_eq!(first.len() + rest.len(), LEN);
    assert!(first[..] == drain.payload[..1000] && rest[..] == drain.payload[1000..]);
    // The EOF came from the close in on_drained, so it ran, with nothing queued.
    let drained = drain.drained_with_queued.lock().unwrap().clone();
    assert_eq!(
        drained,
        vec![0],
        "on_drained calls and their queued_bytes()"
    );
}

/// (peer_addr, local_addr, is_outbound, token) as on_open saw them.
type Seen = (SocketAddr, Option<SocketAddr>, bool, u64);

/// Records each connection's addresses, identity and token from on_open.
struct Addrs {
    seen: Mutex<Vec<Seen>>,
}

impl Handler for Shared<Addrs> {
    type Session = ();
    fn on_open(&self, conn: &mut Conn) {
        self.seen.lock().unwrap().push((
            conn.peer_addr(),
            conn.local_addr(),
            conn.is_outbound(),
            conn.token(),
        ));
        conn.send(b"x");
    }
    fn on_data(&self, _s: &mut (), _conn: &mut Conn, _data: &[u8]) {}
    fn on_close(&self, _s: (), _conn: &Conn, _reason: CloseReason) {}
}

#[test]
fn conn_reports_peer_and_local_addresses() {
    let _watchdog = watchdog("conn_reports_peer_and_local_addresses", TEST_LIMIT);
    let addrs = Shared::new(Addrs {
        seen: Mutex::new(Vec::new()),
    });
    let (_server, addr) = start_server(addrs.clone());
    let mut stream = connect(addr);
    read_n(&mut stream, 1);
    let seen = addrs.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![(stream.local_addr().unwrap(), Some(addr), false, 0)],
        "(peer_addr, local_addr, is_outbound, token) of an inbound connection"
    );
}

const ABORT_LEN: usize = 1024 * 1024;

/// On "abort": queues a megabyte, aborts, and tries to send more (ignored).
struct Aborter {
    undelivered_at_close: Mutex<Vec<(usize, CloseReason)>>,
}

impl Handler for Shared<Aborter> {
    type Session = ();
    fn on_open(&self, _conn: &mut Conn) {}
    fn on_data(&self, _s: &mut (), conn: &mut Conn, data: &[u8]) {
        if data == b"abort" {
            conn.send_bytes(Bytes::from(vec![7u8; ABORT_LEN]));
            conn.abort();
            conn.send(b"ignored after abort");
        }
    }
    fn on_close(&self, _s: (), conn: &Conn, reason: CloseReason) {
        self.undelivered_at_close
            .lock()
            .unwrap()
            .push((conn.queued_bytes(), reason));
    }
}

#[test]
fn abort_drops_the_queue_and_counts_it_undelivered() {
    let _watchdog = watchdog(
        "abort_drops_the_queue_and_counts_it_undelivered",
        TEST_LIMIT,
    );
    let aborter = Shared::new(Aborter {
        undelivered_at_close: Mutex::new(Vec::new()),
    });
    let (server, addr) = start_server(aborter.clone());
    let mut stream = connect(addr);
    write_all(&mut stream, b"abort");
    let (_ending, got) = wait_ended(&mut stream);
    assert!(
        got.is_empty(),
        "an aborted connection delivered {} bytes",
        got.len()
    );
    wait_for_value(
        WAIT,
        "on_close calls",
        || aborter.undelivered_at_close.lock().unwrap().len(),
        1,
    );
    assert_eq!(
        aborter.undelivered_at_close.lock().unwrap()[0],
        (ABORT_LEN, CloseReason::Aborted),
        "(queued_bytes() in on_close, reason)"
    );
    wait_for_value(
        WAIT,
        "undelivered_bytes",
        || server.stats().undelivered_bytes,
        ABORT_LEN as u64,
    );
    assert_eq!(server.stats().bytes_out, 0);
}

/// Greets, shuts its write side, and keeps reading.
struct HalfOpen {
    received: Mutex<Vec<u8>>,
}

impl Handler for Shared<HalfOpen> {
    type Session = ();
    fn on_open(&self, conn: &mut Conn) {
        conn.send(b"hello, and goodbye");
        conn.shutdown_write();
    }
    fn on_data(&self, _s: &mut (), _conn: &mut Conn, data: &[u8]) {
        self.received.lock().unwrap().extend_from_slice(data);
    }
    fn on_close(&self, _s: (), _conn: &Conn, _reason: CloseReason) {}
}

#[test]
fn shutdown_write_sends_fin_after_the_queue_and_keeps_reading() {
    let _watchdog = watchdog(
        "shutdown_write_sends_fin_after_the_queue_and_keeps_reading",
        TEST_LIMIT,
    );
    let half = Shared::new(HalfOpen {
        received: Mutex::new(Vec::new()),
    });
    let (_server, addr) = start_server(half.clone());
    let mut stream = connect(addr);
    assert_eq!(read_to_eof(&mut stream), b"hello, and goodbye");
    let data = random_bytes(&mut rng(), 50_000);
    write_all(&mut stream, &data);
    wait_for_value(
        WAIT,
        "bytes received after shutdown_write",
        || half.received.lock().unwrap().len(),
        data.len(),
    );
    assert!(*half.received.lock().unwrap() == data);
}

/// Hands every connection's `ConnRef` to the test.
struct HandOut {
    refs: Mutex<mpsc::Sender<ConnRef>>,
}

impl Handler for HandOut {
    type Session = ();
    fn on_open(&self, conn: &mut Conn) {
        self.refs.lock().unwrap().send(conn.handle()).unwrap();
    }
    fn on_data(&self, _s: &mut (), _conn: &mut Conn, _data: &[u8]) {}
    fn on_close(&self, _s: (), _conn: &Conn, _reason: CloseReason) {}
}

#[test]
fn conn_ref_late_sends_and_stopped_workers() {
    let _watchdog = watchdog("conn_ref_late_sends_and_stopped_workers", TEST_LIMIT);
    let (tx, rx) = mpsc::channel();
    let (server, addr) = start_server(HandOut {
        refs: Mutex::new(tx),
    });
    let mut stream = connect(addr);
    let conn = rx.recv_timeout(WAIT).expect("on_open never ran");
    conn.send(&b"via ConnRef"[..]).unwrap();
    assert_eq!(read_n(&mut stream, 11), b"via ConnRef");

    // Once the connection is gone, a send still posts but is counted as late.
    drop(stream);
    wait_for_value(WAIT, "closed", || server.stats().closed, 1);
    conn.send(&b"too late"[..]).expect("the worker still runs");
    wait_until(WAIT, "late_sends counts the send", || {
        server.stats().late_sends > 0
    });

    // Once the server has stopped, a send fails.
    server.shutdown(Duration::from_secs(1));
    assert_eq!(conn.send(&b"stopped"[..]), Err(SendError::WorkerStopped));
    assert_eq!(conn.close(), Err(SendError::WorkerStopped));
}

#[test]
fn invalid_configurations_are_refused() {
    let _watchdog = watchdog("invalid_configurations_are_refused", TEST_LIMIT);
    let (echo, _) = Echo::new();
    let no_listener = Server::builder().workers(1).start(echo.clone());
    assert!(
        matches!(no_listener, Err(Error::Config(_))),
        "a server without listeners started"
    );

    let zero_workers = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(0)
        .start(echo.clone());
    assert!(
        matches!(zero_workers, Err(Error::Config(_))),
        "zero workers accepted"
    );

    let odd_buffers = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(1)
        .recv_buffers(1000, 4096)
        .start(echo);
    assert!(
        matches!(odd_buffers, Err(Error::Config(_))),
        "a non-power-of-two buffer count accepted"
    );
}
