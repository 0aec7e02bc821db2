//! Timeouts on the workers' timing wheels: first data, read (slowloris), idle, write,
//! and handler timers. Each close names the timeout that fired.

mod util;

use ringport::codec::{Endian, LengthCodec};
use ringport::{CloseReason, Codec, Conn, Handler, Server, Timeout, Timeouts};
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use util::*;

/// Echoes frames; records each close with how long the connection lived.
#[derive(Default)]
struct Lifetimes {
    closes: Mutex<Vec<(CloseReason, Duration)>>,
}

impl Handler for Shared<Lifetimes> {
    type Session = Instant;
    fn on_open(&self, _conn: &mut Conn) -> Instant {
        Instant::now()
    }
    fn on_data(&self, _s: &mut Instant, conn: &mut Conn, frame: &[u8]) {
        let _ = conn.send_frame(frame);
    }
    fn on_close(&self, opened: Instant, _conn: &Conn, reason: CloseReason) {
        self.0
            .closes
            .lock()
            .unwrap()
            .push((reason, opened.elapsed()));
    }
}

fn start(
    timeouts: Timeouts,
    codec: Codec,
) -> (Server<Shared<Lifetimes>>, std::sync::Arc<Lifetimes>) {
    let state = Shared::new(Lifetimes::default());
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(2)
        .backlog(2048)
        .codec(codec)
        .timeouts(timeouts)
        .start(Shared(state.0.clone()))
        .unwrap();
    (server, state.0)
}

fn length4() -> Codec {
    Codec::Length(LengthCodec::new(4, Endian::Big).unwrap())
}

#[test]
fn a_thousand_silent_connections_close_on_the_first_data_timeout() {
    let _w = watchdog("first_data", TEST_LIMIT);
    let t = Duration::from_secs(1);
    let mut timeouts = Timeouts::default();
    timeouts.first_data = Some(t);
    let (server, state) = start(timeouts, Codec::Raw);
    let addr = server.local_addrs()[0];
    // Each client notes when it connected and when it first sees the server's close.
    let mut clients: Vec<(std::net::TcpStream, Instant, Option<Instant>)> = (0..1000)
        .map(|_| {
            // Stamped before connecting: the server's clock for this connection starts
            // later (at accept), so the close can never look early from here.
            let before = Instant::now();
            let s = connect(addr);
            s.set_nonblocking(true).unwrap();
            (s, before, None)
        })
        .collect();
    wait_until(
        Duration::from_secs(10),
        "every client saw its close",
        || {
            for (s, _, closed) in clients.iter_mut().filter(|c| c.2.is_none()) {
                let mut b = [0u8; 1];
                match std::io::Read::read(s, &mut b) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    // Stamped after the read that saw the close: never before it.
                    _ => *closed = Some(Instant::now()),
                }
            }
            clients.iter().all(|c| c.2.is_some())
        },
    );
    for (_, connected, closed) in &clients {
        let lived = closed.unwrap() - *connected;
        assert!(
            lived >= t && lived <= t + Duration::from_secs(1),
            "closed after {lived:?}"
        );
    }
    wait_for_value(WAIT, "closes", || state.closes.lock().unwrap().len(), 1000);
    for (reason, _) in state.closes.lock().unwrap().iter() {
        assert_eq!(*reason, CloseReason::Timeout(Timeout::FirstData));
    }
    assert_eq!(server.stats().closed_with("timeout_first_data"), 1000);
    drop(clients);
    server.shutdown(WAIT);
}

#[test]
fn slowloris_connections_close_on_the_read_timeout_while_good_clients_are_served() {
    let _w = watchdog("slowloris", TEST_LIMIT);
    let t = Duration::from_secs(2);
    let mut timeouts = Timeouts::default();
    timeouts.read = Some(t);
    let (server, state) = start(timeouts, length4());
    let addr = server.local_addrs()[0];
    // 1000 connections, each dripping a 100-byte frame's header, one byte a second.
    let mut slow: Vec<_> = (0..1000).map(|_| connect(addr)).collect();
    let started = Instant::now();
    let dripper = std::thread::spawn(move || {
        let frame = [0u8, 0, 0, 100];
        for byte in frame {
            for s in slow.iter_mut() {
                let _ = s.write_all(&[byte]);
            }
            std::thread::sleep(Duration::from_secs(1));
            if started.elapsed() > Duration::from_secs(4) {
                break;
            }
        }
        slow
    });
    // Meanwhile a good client echoes frames all along.
    let mut good = connect(addr);
    let mut frame = Vec::new();
    length4().encode(b"i am a good client", &mut frame).unwrap();
    let mut echoes = 0;
    while started.elapsed() < Duration::from_secs(4) {
        echo_roundtrip(&mut good, &frame);
        echoes += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let slow = dripper.join().unwrap();
    wait_for_value(
        WAIT,
        "slow closes",
        || state.closes.lock().unwrap().len(),
        1000,
    );
    for (reason, lived) in state.closes.lock().unwrap().iter() {
        assert_eq!(*reason, CloseReason::Timeout(Timeout::Read));
        assert!(
            *lived >= t && *lived <= t + Duration::from_millis(1500),
            "closed after {lived:?}"
        );
    }
    assert!(echoes > 50, "the good client was starved ({echoes} echoes)");
    echo_roundtrip(&mut good, &frame);
    drop(slow);
    server.shutdown(WAIT);
}

#[test]
fn idle_and_write_timeouts_name_themselves() {
    let _w = watchdog("idle_write", TEST_LIMIT);
    let mut timeouts = Timeouts::default();
    timeouts.idle = Some(Duration::from_millis(600));
    let (server, state) = start(timeouts, Codec::Raw);
    let addr = server.local_addrs()[0];
    let mut s = connect(addr);
    // Activity keeps it open past the idle timeout...
    for _ in 0..6 {
        echo_roundtrip(&mut s, b"keepalive");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(state.closes.lock().unwrap().is_empty());
    // ...silence closes it.
    assert_eq!(wait_ended(&mut s).0, Ending::Eof);
    assert_eq!(
        state.closes.lock().unwrap()[0].0,
        CloseReason::Timeout(Timeout::Idle)
    );
    server.shutdown(WAIT);

    // Write timeout: a peer that never reads while 8 MiB wait to go out.
    let mut timeouts = Timeouts::default();
    timeouts.write = Some(Duration::from_millis(500));
    let (server, state) = start(timeouts, Codec::Raw);
    let s = connect_slow_reader(server.local_addrs()[0]);
    let mut w = s.try_clone().unwrap();
    for _ in 0..128 {
        w.write_all(&[1u8; 64 * 1024]).unwrap_or(());
        if !state.closes.lock().unwrap().is_empty() {
            break;
        }
    }
    wait_for_value(WAIT, "closes", || state.closes.lock().unwrap().len(), 1);
    assert_eq!(
        state.closes.lock().unwrap()[0].0,
        CloseReason::Timeout(Timeout::Write)
    );
    drop(s);
    server.shutdown(WAIT);
}

/// Sets a timer on open; answers "tick N" when it fires, three times.
struct Ticker;

impl Handler for Ticker {
    type Session = u64;
    fn on_open(&self, conn: &mut Conn) -> u64 {
        conn.set_timer(Duration::from_millis(50), 1);
        0
    }
    fn on_data(&self, _n: &mut u64, _conn: &mut Conn, _data: &[u8]) {}
    fn on_timer(&self, n: &mut u64, conn: &mut Conn, token: u64) {
        *n += 1;
        conn.send(format!("tick {token};").as_bytes());
        if *n < 3 {
            conn.set_timer(Duration::from_millis(50), token + 1);
        }
    }
    fn on_close(&self, _n: u64, _conn: &Conn, _why: CloseReason) {}
}

#[test]
fn handler_timers_fire_in_order() {
    let _w = watchdog("timers", TEST_LIMIT);
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(1)
        .start(Ticker)
        .unwrap();
    let mut s = connect(server.local_addrs()[0]);
    let started = Instant::now();
    assert_eq!(read_n(&mut s, 21), b"tick 1;tick 2;tick 3;");
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(server.stats().timers_fired, 3);
    drop(s);
    server.shutdown(WAIT);
}

#[test]
fn a_heartbeat_pings_a_silent_peer_then_closes_it() {
    let _w = watchdog("heartbeat", TEST_LIMIT);
    let every = Duration::from_millis(200);
    let mut timeouts = Timeouts::default();
    timeouts.heartbeat = Some(ringport::Heartbeat::new(every, 2, b"PING\n"));
    let (server, state) = start(timeouts, Codec::Raw);
    let addr = server.local_addrs()[0];

    // A peer that answers each ping stays open past several periods.
    let mut lively = connect(addr);
    let started = Instant::now();
    while started.elapsed() < every * 6 {
        assert_eq!(read_n(&mut lively, 5), b"PING\n");
        write_all(&mut lively, b"pong"); // echoed back by the handler
        assert_eq!(read_n(&mut lively, 4), b"pong");
    }
    assert!(state.closes.lock().unwrap().is_empty());

    // A silent one gets two pings, then the close, after three periods.
    let mut silent = connect(addr);
    let opened = Instant::now();
    let (ending, got) = wait_ended(&mut silent);
    assert_eq!((ending, got), (Ending::Eof, b"PING\nPING\n".to_vec()));
    assert!(
        opened.elapsed() >= every * 3,
        "closed after {:?}",
        opened.elapsed()
    );
    // (The lively peer, silent from here on, may be closed the same way meanwhile.)
    wait_until(WAIT, "a heartbeat close", || {
        let closes = state.closes.lock().unwrap();
        !closes.is_empty()
            && closes
                .iter()
                .all(|c| c.0 == CloseReason::Timeout(Timeout::Heartbeat))
    });
    drop(lively);
    server.shutdown(WAIT);
}
