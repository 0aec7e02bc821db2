//! The connection registry (`Server::connections`, `Server::connection`) and broadcasts
//! (`Server::broadcast`, `Server::broadcast_to`), on whichever backend the suite runs.

mod util;

use ringport::{Bytes, CloseReason, Conn, ConnInfo, Error, Handler, Server};
use std::collections::{BTreeSet, HashMap};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use util::{
    connect, connect_slow_reader, echo_server, read_n, wait_for_value, wait_until, watchdog,
    write_all, Echo, Shared, TEST_LIMIT, WAIT,
};

/// Wait until the server lists `n` connections; return them.
#[track_caller]
fn wait_listed<H: Handler>(server: &Server<H>, n: usize) -> Vec<ConnInfo> {
    wait_for_value(
        WAIT,
        "the number of listed connections",
        || server.connections().len(),
        n,
    );
    server.connections()
}

/// The listed connection whose peer is `client`'s local address.
#[track_caller]
fn info_of(list: &[ConnInfo], client: &TcpStream) -> ConnInfo {
    let me = client.local_addr().unwrap();
    list.iter()
        .find(|c| c.peer == me)
        .unwrap_or_else(|| panic!("{me} is not listed in {list:?}"))
        .clone()
}

#[test]
fn connections_lists_every_client_with_its_peer() {
    let _w = watchdog("connections_lists_every_client_with_its_peer", TEST_LIMIT);
    let (server, addr, _events) = echo_server();
    assert!(server.connections().is_empty());
    let before = Instant::now();
    let mut clients: Vec<TcpStream> = (0..6).map(|_| connect(addr)).collect();
    let list = wait_listed(&server, 6);
    let peers: BTreeSet<SocketAddr> = list.iter().map(|c| c.peer).collect();
    let expected: BTreeSet<SocketAddr> = clients.iter().map(|c| c.local_addr().unwrap()).collect();
    assert_eq!(peers, expected);
    let ids: BTreeSet<_> = list.iter().map(|c| c.id).collect();
    assert_eq!(ids.len(), 6, "ids are distinct");
    for c in &list {
        assert_eq!(c.listener, Some(0));
        assert_eq!(c.token, 0);
        assert_eq!(c.queued_bytes, 0);
        // Open times are kept to 10 ms.
        assert!(c.opened + Duration::from_millis(20) >= before, "{c:?}");
        assert!(c.opened <= Instant::now());
        assert!(c.age() < WAIT);
    }
    // Connections still answer, and a closed one leaves the list.
    util::echo_roundtrip(&mut clients[0], b"still here");
    let gone = clients.pop().unwrap();
    let gone_addr = gone.local_addr().unwrap();
    drop(gone);
    let list = wait_listed(&server, 5);
    assert!(list.iter().all(|c| c.peer != gone_addr));
    drop(clients);
    wait_listed(&server, 0);
}

#[test]
fn queued_bytes_show_in_the_snapshot() {
    let _w = watchdog("queued_bytes_show_in_the_snapshot", TEST_LIMIT);
    let (server, addr, _events) = echo_server();
    let mut slow = connect_slow_reader(addr);
    let list = wait_listed(&server, 1);
    assert_eq!(list[0].queued_bytes, 0);
    // Far more than the kernel takes for a reader that does not read.
    let big = Bytes::from(vec![7u8; 8 << 20]);
    server.broadcast(big.clone()).unwrap();
    wait_until(WAIT, "the snapshot shows queued bytes", || {
        server
            .connections()
            .first()
            .is_some_and(|c| c.queued_bytes > 0)
    });
    // (The snapshot can be taken before the worker has accounted the queue in its stats.)
    wait_until(WAIT, "the stats show queued bytes", || {
        server.stats().queued_bytes > 0
    });
    // Reading everything drains the queue.
    let got = read_n(&mut slow, big.len());
    assert!(got == big[..]);
    wait_until(WAIT, "the queue drains", || {
        server
            .connections()
            .first()
            .is_some_and(|c| c.queued_bytes == 0)
    });
}

#[test]
fn lookup_by_id_sends_to_that_client() {
    let _w = watchdog("lookup_by_id_sends_to_that_client", TEST_LIMIT);
    let (server, addr, _events) = echo_server();
    let mut clients: Vec<TcpStream> = (0..5).map(|_| connect(addr)).collect();
    let list = wait_listed(&server, 5);
    // Each client gets only its own message.
    for c in &clients {
        let info = info_of(&list, c);
        let conn = server
            .connection(info.id)
            .expect("an open connection is found");
        assert_eq!(conn.id(), info.id);
        conn.send(format!("to {}|", info.peer)).unwrap();
    }
    for c in &mut clients {
        let expected = format!("to {}|", c.local_addr().unwrap());
        assert_eq!(read_n(c, expected.len()), expected.as_bytes());
    }
    // After its close, the id is no longer found, and a send through a handle taken
    // before counts as a late send.
    let last = clients.pop().unwrap();
    let id = info_of(&list, &last).id;
    let stale = server.connection(id).unwrap();
    drop(last);
    wait_until(WAIT, "the closed connection is no longer found", || {
        server.connection(id).is_none()
    });
    let late = server.stats().late_sends;
    stale.send(&b"too late"[..]).unwrap();
    wait_for_value(WAIT, "late sends", || server.stats().late_sends, late + 1);
}

#[test]
fn broadcast_reaches_every_client_once_in_order_with_per_connection_sends() {
    let _w = watchdog(
        "broadcast_reaches_every_client_once_in_order_with_per_connection_sends",
        TEST_LIMIT,
    );
    let (server, addr, _events) = echo_server();
    let mut clients: Vec<TcpStream> = (0..8).map(|_| connect(addr)).collect();
    let list = wait_listed(&server, 8);
    let handles: Vec<_> = clients
        .iter()
        .map(|c| server.connection(info_of(&list, c).id).unwrap())
        .collect();
    const ROUNDS: usize = 200;
    for i in 0..ROUNDS {
        server.broadcast(format!("b{i};")).unwrap();
        for (k, h) in handles.iter().enumerate() {
            h.send(format!("c{k}.{i};")).unwrap();
        }
    }
    server.broadcast(&b"end."[..]).unwrap();
    for (k, c) in clients.iter_mut().enumerate() {
        let mut expected = String::new();
        for i in 0..ROUNDS {
            expected.push_str(&format!("b{i};c{k}.{i};"));
        }
        expected.push_str("end.");
        let got = read_n(c, expected.len());
        assert_eq!(String::from_utf8(got).unwrap(), expected, "client {k}");
    }
    // Nothing more follows: one more broadcast is the very next thing each one reads.
    server.broadcast(&b"last"[..]).unwrap();
    for c in &mut clients {
        assert_eq!(read_n(c, 4), b"last");
    }
    assert_eq!(server.stats().late_sends, 0);
}

/// A connection as its handler sees it: (listener, outbound, token).
type Seen = (Option<usize>, bool, u64);

/// Records each connection's listener as its handler sees it, by peer.
#[derive(Default)]
struct Listeners {
    seen: Mutex<HashMap<SocketAddr, Seen>>,
}

impl Handler for Shared<Listeners> {
    type Session = ();
    fn on_open(&self, conn: &mut Conn) {
        self.seen.lock().unwrap().insert(
            conn.peer_addr(),
            (conn.listener(), conn.is_outbound(), conn.token()),
        );
    }
    fn on_data(&self, _s: &mut (), _conn: &mut Conn, _data: &[u8]) {}
    fn on_close(&self, _s: (), _conn: &Conn, _why: CloseReason) {}
}

#[test]
fn broadcast_to_reaches_only_that_listeners_clients() {
    let _w = watchdog(
        "broadcast_to_reaches_only_that_listeners_clients",
        TEST_LIMIT,
    );
    let state = Shared::new(Listeners::default());
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(2)
        .start(state.clone())
        .unwrap();
    let addrs = server.local_addrs().to_vec();
    // From different source addresses: clients of two ports may get the same local port,
    // and the test tells connections apart by their peer address.
    let mut zero: Vec<TcpStream> = (0..3).map(|_| connect(addrs[0])).collect();
    let mut one: Vec<TcpStream> = (0..4)
        .map(|_| util::connect_from("127.0.0.2", addrs[1]))
        .collect();
    let list = wait_listed(&server, 7);
    for c in &zero {
        assert_eq!(info_of(&list, c).listener, Some(0));
    }
    for c in &one {
        assert_eq!(info_of(&list, c).listener, Some(1));
    }
    {
        // The handler saw the same through Conn::listener.
        let seen = state.seen.lock().unwrap();
        for c in &zero {
            assert_eq!(seen[&c.local_addr().unwrap()], (Some(0), false, 0));
        }
        for c in &one {
            assert_eq!(seen[&c.local_addr().unwrap()], (Some(1), false, 0));
        }
    }
    server.broadcast_to(1, &b"one."[..]).unwrap();
    server.broadcast_to(0, &b"zero."[..]).unwrap();
    server.broadcast(&b"all."[..]).unwrap();
    for c in &mut zero {
        assert_eq!(read_n(c, 9), b"zero.all.");
    }
    for c in &mut one {
        assert_eq!(read_n(c, 8), b"one.all.");
    }
    assert!(matches!(
        server.broadcast_to(2, &b"x"[..]),
        Err(Error::NoListener(2))
    ));
}

#[test]
fn outbound_connections_are_listed_without_a_listener() {
    let _w = watchdog(
        "outbound_connections_are_listed_without_a_listener",
        TEST_LIMIT,
    );
    let state = Shared::new(Listeners::default());
    let (server, addr) = util::start_server(state.clone());
    server.connect(addr, 42).unwrap();
    let list = wait_listed(&server, 2);
    let outbound: Vec<_> = list.iter().filter(|c| c.listener.is_none()).collect();
    let inbound: Vec<_> = list.iter().filter(|c| c.listener.is_some()).collect();
    assert_eq!((outbound.len(), inbound.len()), (1, 1), "{list:?}");
    assert_eq!(outbound[0].token, 42);
    assert_eq!(outbound[0].peer, addr);
    assert_eq!(inbound[0].listener, Some(0));
    let seen = state.seen.lock().unwrap();
    assert_eq!(seen[&addr], (None, true, 42));
}

/// A chat room: every line received is broadcast to everyone, from the worker's
/// callback; `who` answers with the number of other workers' connections it can list.
#[derive(Default)]
struct Chat {
    server: Mutex<Option<Arc<Server<Shared<Chat>>>>>,
}

impl Handler for Shared<Chat> {
    type Session = ();
    fn on_open(&self, _conn: &mut Conn) {}
    fn on_data(&self, _s: &mut (), conn: &mut Conn, data: &[u8]) {
        let server = self.server.lock().unwrap().clone();
        let Some(server) = server else { return };
        if data == b"who" {
            // On its own worker the lookup needs no answer from the (busy) worker.
            let me = server.connection(conn.id()).expect("a handle to itself");
            assert_eq!(me.id(), conn.id());
            let listed = server.connections();
            assert!(
                listed.iter().all(|c| c.id != conn.id()),
                "own worker left out"
            );
            conn.send(format!("{}", listed.len()).as_bytes());
        } else {
            server.broadcast(data.to_vec()).unwrap();
        }
    }
    fn on_close(&self, _s: (), _conn: &Conn, _why: CloseReason) {}
}

#[test]
fn callbacks_can_broadcast_and_use_the_registry() {
    let _w = watchdog("callbacks_can_broadcast_and_use_the_registry", TEST_LIMIT);
    let state = Shared::new(Chat::default());
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(1)
        .start(state.clone())
        .unwrap();
    let addr = server.local_addrs()[0];
    let server = Arc::new(server);
    *state.server.lock().unwrap() = Some(server.clone());
    let mut clients: Vec<TcpStream> = (0..4).map(|_| connect(addr)).collect();
    wait_listed(&server, 4);
    write_all(&mut clients[2], b"hello");
    for c in &mut clients {
        assert_eq!(read_n(c, 5), b"hello");
    }
    // One worker: from its callback, its own connections cannot be listed, at once.
    let asked = Instant::now();
    write_all(&mut clients[0], b"who");
    assert_eq!(read_n(&mut clients[0], 1), b"0");
    assert!(
        asked.elapsed() < Duration::from_millis(900),
        "no wait on itself"
    );
    state.server.lock().unwrap().take();
    wait_until(WAIT, "callbacks let go of the server", || {
        Arc::strong_count(&server) == 1
    });
    let server = Arc::into_inner(server).unwrap();
    drop(clients);
    let report = server.shutdown(Duration::from_secs(5));
    assert_eq!(report.stats.handler_panics, 0);
}

#[test]
fn the_echo_handler_sees_broadcasts_as_plain_sends() {
    // A broadcast is queued like any send: with the echo handler, data the client sends
    // and data broadcast arrive on the same stream.
    let _w = watchdog(
        "the_echo_handler_sees_broadcasts_as_plain_sends",
        TEST_LIMIT,
    );
    let (echo, _events) = Echo::new();
    let (server, addr) = util::start_server(echo);
    let mut c = connect(addr);
    wait_listed(&server, 1);
    util::echo_roundtrip(&mut c, b"ping");
    server.broadcast(&b"news"[..]).unwrap();
    assert_eq!(read_n(&mut c, 4), b"news");
    util::echo_roundtrip(&mut c, b"pong");
}
