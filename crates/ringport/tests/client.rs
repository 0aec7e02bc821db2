//! The client: outbound connections, their tokens, refused and timed-out connects.

mod util;

use rand::Rng;
use ringport::{Bytes, Client, CloseReason, Conn, Handler};
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use util::*;

/// How one outbound connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    token: u64,
    /// Every byte came back, identical and nothing more.
    echoed_ok: bool,
    reason: CloseReason,
}

/// Sends the payload registered for its token on open, checks the echo, then closes.
#[derive(Default)]
struct Talker {
    payloads: HashMap<u64, Bytes>,
    opened: Mutex<Vec<(u64, bool, SocketAddr)>>,
    outcomes: Mutex<Vec<Outcome>>,
    failures: Mutex<Vec<(u64, SocketAddr, CloseReason, Instant)>>,
}

struct Session {
    token: u64,
    got: usize,
    ok: bool,
}

impl Handler for Shared<Talker> {
    type Session = Session;

    fn on_open(&self, conn: &mut Conn) -> Session {
        let token = conn.token();
        self.opened
            .lock()
            .unwrap()
            .push((token, conn.is_outbound(), conn.peer_addr()));
        match self.payloads.get(&token) {
            Some(p) => conn.send_bytes(p.clone()),
            None => conn.close(),
        }
        Session {
            token,
            got: 0,
            ok: true,
        }
    }

    fn on_data(&self, s: &mut Session, conn: &mut Conn, data: &[u8]) {
        let expected = self.payloads.get(&s.token).map(|p| &p[..]).unwrap_or(&[]);
        let end = s.got + data.len();
        if end > expected.len() || expected[s.got..end] != *data {
            s.ok = false;
        }
        s.got = end;
        if s.got >= expected.len() {
            conn.close();
        }
    }

    fn on_close(&self, s: Session, _conn: &Conn, reason: CloseReason) {
        let complete = self.payloads.get(&s.token).map_or(0, |p| p.len()) == s.got;
        self.outcomes.lock().unwrap().push(Outcome {
            token: s.token,
            echoed_ok: s.ok && complete,
            reason,
        });
    }

    fn on_connect_failed(&self, token: u64, addr: SocketAddr, reason: CloseReason) {
        self.failures
            .lock()
            .unwrap()
            .push((token, addr, reason, Instant::now()));
    }
}

fn talker(tokens: &[u64]) -> Shared<Talker> {
    let mut rng = rng();
    let payloads = tokens
        .iter()
        .map(|&t| {
            let len = rng.gen_range(1..300_000);
            (t, Bytes::from(random_bytes(&mut rng, len)))
        })
        .collect();
    Shared::new(Talker {
        payloads,
        ..Talker::default()
    })
}

#[test]
fn client_connections_echo_against_a_server_with_their_tokens() {
    let _watchdog = watchdog(
        "client_connections_echo_against_a_server_with_their_tokens",
        TEST_LIMIT,
    );
    let tokens = [7u64, 1_000, 1_001, 42, u64::MAX - 3];
    let (server, addr, server_events) = echo_server();
    let handler = talker(&tokens);
    let client = Client::builder()
        .workers(2)
        .start(handler.clone())
        .expect("start the client");
    for &t in &tokens {
        client.connect(addr, t).expect("connect");
    }

    wait_for_value(
        WAIT,
        "finished client connections",
        || handler.outcomes.lock().unwrap().len(),
        tokens.len(),
    );
    let mut opened = handler.opened.lock().unwrap().clone();
    opened.sort();
    let mut expected: Vec<_> = tokens.iter().map(|&t| (t, true, addr)).collect();
    expected.sort();
    assert_eq!(
        opened, expected,
        "on_open must see each connect's token, outbound, with the server as peer"
    );
    for o in handler.outcomes.lock().unwrap().iter() {
        assert!(
            o.echoed_ok,
            "connection {} did not get its exact echo back",
            o.token
        );
        assert_eq!(o.reason, CloseReason::Local, "connection {}", o.token);
    }
    assert!(handler.failures.lock().unwrap().is_empty());

    let stats = client.stats();
    assert_eq!(stats.connected, tokens.len() as u64);
    assert_eq!(stats.connect_failed, 0);
    assert_eq!(stats.accepted, 0);
    let total: u64 = handler.payloads.values().map(|p| p.len() as u64).sum();
    assert_eq!(stats.bytes_out, total);
    assert_eq!(stats.bytes_in, total);
    wait_for_value(
        WAIT,
        "server-side closes",
        || server_events.close_count(),
        tokens.len(),
    );
    assert_eq!(server.stats().accepted, tokens.len() as u64);
}

#[test]
fn one_shot_client_connect_uses_token_zero() {
    let _watchdog = watchdog("one_shot_client_connect_uses_token_zero", TEST_LIMIT);
    let (_server, addr, _events) = echo_server();
    let handler = talker(&[0]);
    let _client = Client::connect_to(addr, handler.clone()).expect("Client::connect_to");
    wait_for_value(
        WAIT,
        "finished client connections",
        || handler.outcomes.lock().unwrap().len(),
        1,
    );
    let outcome = handler.outcomes.lock().unwrap()[0].clone();
    assert_eq!(outcome.token, 0);
    assert!(outcome.echoed_ok);
}

#[test]
fn server_connect_opens_an_outbound_connection_on_its_workers() {
    let _watchdog = watchdog(
        "server_connect_opens_an_outbound_connection_on_its_workers",
        TEST_LIMIT,
    );
    let (_echo, echo_addr, _events) = echo_server();
    let handler = talker(&[5]);
    let (server, _addr) = start_server(handler.clone());
    server.connect(echo_addr, 5).expect("Server::connect");
    wait_for_value(
        WAIT,
        "finished outbound connections",
        || handler.outcomes.lock().unwrap().len(),
        1,
    );
    let outcome = handler.outcomes.lock().unwrap()[0].clone();
    assert_eq!(outcome.token, 5);
    assert!(outcome.echoed_ok);
    assert_eq!(server.stats().connected, 1);
    assert_eq!(handler.opened.lock().unwrap()[0], (5, true, echo_addr));
}

#[test]
fn connect_to_a_closed_port_is_refused_with_its_token() {
    let _watchdog = watchdog(
        "connect_to_a_closed_port_is_refused_with_its_token",
        TEST_LIMIT,
    );
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let handler = talker(&[]);
    let client = Client::builder()
        .workers(1)
        .start(handler.clone())
        .expect("start the client");
    client.connect(addr, 77).expect("connect");
    wait_for_value(
        WAIT,
        "connect failures",
        || handler.failures.lock().unwrap().len(),
        1,
    );
    let (token, failed_addr, reason, _) = handler.failures.lock().unwrap()[0];
    assert_eq!(token, 77);
    assert_eq!(failed_addr, addr);
    assert_eq!(reason, CloseReason::ConnectRefused);
    assert!(
        handler.opened.lock().unwrap().is_empty(),
        "on_open ran for a refused connect"
    );
    assert!(
        handler.outcomes.lock().unwrap().is_empty(),
        "on_close ran for a refused connect"
    );
    wait_for_value(WAIT, "connect_failed", || client.stats().connect_failed, 1);
    assert_eq!(client.stats().connected, 0);
}

/// A listener that will not answer new SYNs: backlog 0, its accept queue filled by
/// connections nobody accepts. Linux drops a SYN when the accept queue is full, so a
/// connect to it stays in SYN-SENT. Returns the listener and the queued connections.
fn unanswering_listener() -> (Socket, SocketAddr, Vec<TcpStream>) {
    let listener = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    listener
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let mut queued = Vec::new();
    for _ in 0..16 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => queued.push(s),
            Err(_) => return (listener, addr, queued),
        }
    }
    panic!("could not fill the accept queue of a backlog-0 listener (16 connects succeeded)");
}

#[test]
fn connect_timeout_fires() {
    let _watchdog = watchdog("connect_timeout_fires", TEST_LIMIT);
    let (_listener, addr, _queued) = unanswering_listener();
    let handler = talker(&[]);
    let client = Client::builder()
        .workers(1)
        .connect_timeout(Duration::from_millis(200))
        .start(handler.clone())
        .expect("start the client");
    let start = Instant::now();
    client.connect(addr, 99).expect("connect");
    wait_for_value(
        Duration::from_secs(10),
        "connect failures",
        || handler.failures.lock().unwrap().len(),
        1,
    );
    let (token, failed_addr, reason, at) = handler.failures.lock().unwrap()[0];
    let took = at - start;
    assert_eq!(token, 99);
    assert_eq!(failed_addr, addr);
    assert_eq!(reason, CloseReason::ConnectTimeout);
    assert!(
        took >= Duration::from_millis(150) && took <= Duration::from_secs(5),
        "the 200 ms connect timeout fired after {took:?}"
    );
    assert!(handler.opened.lock().unwrap().is_empty());
    assert_eq!(client.stats().connect_failed, 1);
}

#[test]
fn client_shutdown_closes_its_open_connections() {
    let _watchdog = watchdog("client_shutdown_closes_its_open_connections", TEST_LIMIT);
    let (_server, addr, server_events) = echo_server();
    // The client side is an echo handler too: it sends nothing, so its connection idles.
    let (echo, client_events) = Echo::new();
    let client = Client::builder()
        .workers(1)
        .start(echo)
        .expect("start the client");
    client.connect(addr, 4).expect("connect");
    wait_for_value(
        WAIT,
        "client connections opened",
        || client_events.opened(),
        1,
    );
    wait_for_value(
        WAIT,
        "server connections opened",
        || server_events.opened(),
        1,
    );

    let start = Instant::now();
    let report = client.shutdown(Duration::from_secs(5));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "idle shutdown waited for its deadline"
    );
    assert_eq!(report.connections, 1);
    assert_eq!(report.forced, 0);
    assert_eq!(report.undelivered_bytes, 0);
    assert_eq!(client_events.reasons(), vec![CloseReason::Shutdown]);
    assert_eq!(server_events.wait_closes(1), vec![CloseReason::PeerClosed]);
}

#[test]
fn shutdown_with_a_pending_connect_returns_and_reports_the_connect() {
    let _watchdog = watchdog(
        "shutdown_with_a_pending_connect_returns_and_reports_the_connect",
        TEST_LIMIT,
    );
    let (_listener, addr, _queued) = unanswering_listener();
    let handler = talker(&[]);
    // The default 10 s connect timeout: the connect is still pending at the shutdown.
    let client = Client::builder()
        .workers(1)
        .start(handler.clone())
        .expect("start the client");
    // Connect and Shutdown go through the same mailbox, in that order: the connect is
    // under way when the shutdown begins.
    client.connect(addr, 31).expect("connect");
    let start = Instant::now();
    let report = client.shutdown(Duration::from_secs(1));
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "shutdown with a pending connect took {took:?}"
    );
    assert_eq!(report.forced, 0);
    // Every connect ends in on_open or on_connect_failed, even one a shutdown cut short.
    let failures = handler.failures.lock().unwrap().clone();
    eprintln!("pending connect at shutdown: {failures:?}");
    assert_eq!(failures.len(), 1, "on_connect_failed calls");
    assert_eq!((failures[0].0, failures[0].1), (31, addr));
    assert!(handler.opened.lock().unwrap().is_empty());
}
