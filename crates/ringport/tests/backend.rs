//! Backend selection and parity: a failed io_uring probe falls back to poll and serves;
//! the same scripted session yields the same callbacks, in the same order, on both
//! backends.

mod util;

use ringport::{Backend, CloseReason, Conn, Handler, Server};
use socket2::SockRef;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;
use util::*;

/// The probe failure is a test hook (feature `test-hooks`).
#[cfg(feature = "test-hooks")]
mod probe_failure {
    use super::*;
    use ringport::{EngineConfig, Error};

    #[test]
    fn a_failed_uring_probe_falls_back_to_poll_and_serves() {
        let _w = watchdog("probe_fallback", TEST_LIMIT);
        let mut config = EngineConfig::default();
        config.workers = 1;
        config.backend = Backend::Auto;
        config.inject_uring_probe_failure = true;
        let (echo, _events) = Echo::new();
        let server = Server::builder()
            .listen("127.0.0.1:0")
            .unwrap()
            .config(config)
            .start(echo)
            .expect("starts on the poll backend");
        assert_eq!(server.stats().backend, "poll");
        let mut s = connect(server.local_addrs()[0]);
        echo_roundtrip(&mut s, b"served by the fallback");
        drop(s);
        server.shutdown(WAIT);
    }

    #[test]
    fn asking_for_uring_when_it_is_unavailable_fails_to_start() {
        let mut config = EngineConfig::default();
        config.workers = 1;
        config.backend = Backend::Uring;
        config.inject_uring_probe_failure = true;
        let (echo, _events) = Echo::new();
        let result = Server::builder()
            .listen("127.0.0.1:0")
            .unwrap()
            .config(config)
            .start(echo);
        assert!(
            matches!(result, Err(Error::Backend(_))),
            "{:?}",
            result.err()
        );
    }
}

/// Records every callback as a line of text, per connection (by the first byte the
/// client sends, its name).
#[derive(Default)]
struct Script {
    log: Mutex<Vec<(u8, String)>>,
}

const BIG: usize = 512 * 1024;

impl Handler for Shared<Script> {
    type Session = u8;
    fn on_open(&self, _conn: &mut Conn) -> u8 {
        0
    }
    fn on_data(&self, name: &mut u8, conn: &mut Conn, data: &[u8]) {
        if *name == 0 {
            *name = data[0];
        }
        self.0.log.lock().unwrap().push((*name, "data".into()));
        if data.ends_with(b"big") {
            conn.send(&vec![7u8; BIG]);
        } else {
            conn.send(data);
        }
    }
    fn on_eof(&self, name: &mut u8, conn: &mut Conn) {
        self.0.log.lock().unwrap().push((*name, "eof".into()));
        conn.close();
    }
    fn on_drained(&self, name: &mut u8, _conn: &mut Conn) {
        self.0.log.lock().unwrap().push((*name, "drained".into()));
    }
    fn on_close(&self, name: u8, conn: &Conn, reason: CloseReason) {
        let line = format!("close {reason} undelivered={}", conn.queued_bytes());
        self.0.log.lock().unwrap().push((name, line));
    }
}

/// Run the script on `backend`; the callbacks per connection, consecutive repeats
/// merged (how many receives or partial sends a transfer takes may differ).
fn run_script(backend: Backend) -> Vec<(u8, Vec<String>)> {
    let state = Shared::new(Script::default());
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(1)
        .backend(backend)
        .start(Shared(state.0.clone()))
        .unwrap();
    let addr: SocketAddr = server.local_addrs()[0];

    // a: echo, then half-close: the server finishes and closes.
    let mut a = connect(addr);
    echo_roundtrip(&mut a, b"a hello");
    shutdown_write(&a);
    assert_eq!(wait_ended(&mut a).0, Ending::Eof);

    // b: echo, then reset.
    let mut b = connect(addr);
    echo_roundtrip(&mut b, b"b hello");
    SockRef::from(&b).set_linger(Some(Duration::ZERO)).unwrap();
    drop(b);
    let closes = || {
        let log = state.0.log.lock().unwrap();
        log.iter().filter(|l| l.1.starts_with("close")).count()
    };
    wait_for_value(WAIT, "closes", closes, 2);

    // c: a large reply queued, then a graceful shutdown while the client reads it all.
    let mut c = connect(addr);
    write_all(&mut c, b"c big");
    let reader = std::thread::spawn(move || wait_ended(&mut c));
    wait_until(WAIT, "c's request arrived", || {
        let log = state.0.log.lock().unwrap();
        log.iter().any(|l| l.0 == b'c')
    });
    let report = server.shutdown(WAIT);
    let (ending, got) = reader.join().unwrap();
    assert_eq!((ending, got.len()), (Ending::Eof, BIG));
    assert_eq!(report.undelivered_bytes, 0);

    let log = state.0.log.lock().unwrap().clone();
    let mut per_conn: Vec<(u8, Vec<String>)> = Vec::new();
    for (name, line) in log {
        let entry = match per_conn.iter_mut().find(|(n, _)| *n == name) {
            Some(e) => e,
            None => {
                per_conn.push((name, Vec::new()));
                per_conn.last_mut().unwrap()
            }
        };
        if entry.1.last() != Some(&line) {
            entry.1.push(line);
        }
    }
    per_conn
}

#[test]
fn the_same_session_gives_the_same_callbacks_on_both_backends() {
    let _w = watchdog("parity", TEST_LIMIT);
    let uring = run_script(Backend::Uring);
    let poll = run_script(Backend::Poll);
    let expected: Vec<(u8, Vec<String>)> = vec![
        (
            b'a',
            vec![
                "data".into(),
                "drained".into(),
                "eof".into(),
                "close peer_closed undelivered=0".into(),
            ],
        ),
        (
            b'b',
            vec![
                "data".into(),
                "drained".into(),
                "close peer_reset undelivered=0".into(),
            ],
        ),
    ];
    assert_eq!(&uring[..2], &expected[..], "uring");
    eprintln!("uring: {uring:?}\npoll: {poll:?}");
    assert_eq!(uring, poll, "the backends disagree");
    assert_eq!(
        uring[2].1.last().unwrap(),
        "close shutdown undelivered=0",
        "{uring:?}"
    );
}
