//! Graceful shutdown: queued data is flushed before the deadline, or the connections that
//! cannot be flushed are forced closed at it.

mod util;

use ringport::{Bytes, CloseReason, Conn, Handler};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use util::*;

/// On open, queues the same payload (shared, zero-copy) on every connection.
struct Pusher {
    payload: Bytes,
    events: Arc<Events>,
}

impl Handler for Pusher {
    type Session = ();
    fn on_open(&self, conn: &mut Conn) {
        conn.send_bytes(self.payload.clone());
        self.events.opened.fetch_add(1, Ordering::SeqCst);
    }
    fn on_data(&self, _s: &mut (), _conn: &mut Conn, _data: &[u8]) {}
    fn on_close(&self, _s: (), _conn: &Conn, reason: CloseReason) {
        self.events.record_close(reason);
    }
}

fn pusher(len: usize) -> (Pusher, Bytes, Arc<Events>) {
    let payload = Bytes::from(random_bytes(&mut rng(), len));
    let events = Events::new();
    let handler = Pusher {
        payload: payload.clone(),
        events: events.clone(),
    };
    (handler, payload, events)
}

#[test]
fn graceful_shutdown_flushes_every_queue_before_closing() {
    let _watchdog = watchdog(
        "graceful_shutdown_flushes_every_queue_before_closing",
        TEST_LIMIT,
    );
    const CONNS: usize = 1000;
    const LEN: usize = 256 * 1024;
    const READERS: usize = 20;
    let (handler, payload, events) = pusher(LEN);
    let (server, addr) = start_server(handler);

    // Slow-reader sockets: the kernel takes well under 100 KiB of each connection's
    // 256 KiB while nobody reads, so most of the data stays queued in the server.
    let conns: Vec<TcpStream> = (0..CONNS).map(|_| connect_slow_reader(addr)).collect();
    wait_for_value(WAIT, "connections opened", || events.opened(), CONNS);
    let total = (CONNS * LEN) as u64;
    let sent = server.stats().bytes_out;
    assert!(
        sent < total / 2,
        "the server already pushed {sent} of {total} bytes before any read: the test \
         cannot show a shutdown with data still queued"
    );

    let shutdown = thread::spawn(move || {
        let start = Instant::now();
        let report = server.shutdown(Duration::from_secs(20));
        (report, start.elapsed())
    });

    // Now read: each reader thread drains its share of connections one after another.
    let mut groups: Vec<Vec<TcpStream>> = (0..READERS).map(|_| Vec::new()).collect();
    for (i, c) in conns.into_iter().enumerate() {
        groups[i % READERS].push(c);
    }
    let readers: Vec<_> = groups
        .into_iter()
        .map(|group| {
            let payload = payload.clone();
            thread::spawn(move || {
                for mut c in group {
                    let got = read_to_eof(&mut c);
                    assert_eq!(got.len(), LEN, "bytes received before EOF");
                    assert!(
                        got[..] == payload[..],
                        "received data differs from the payload"
                    );
                }
            })
        })
        .collect();
    for r in readers {
        r.join().expect("a reader failed");
    }

    let (report, took) = shutdown.join().expect("shutdown panicked");
    eprintln!("graceful shutdown took {took:?}: {report:?}");
    assert_eq!(report.connections, CONNS as u64);
    assert_eq!(report.forced, 0);
    assert_eq!(report.undelivered_bytes, 0);
    // The final counters come with the report: every connection closed, none left open.
    assert_eq!((report.stats.open, report.stats.closed), (0, CONNS as u64));
    let reasons = events.reasons();
    assert_eq!(reasons.len(), CONNS, "on_close calls");
    assert!(
        reasons.iter().all(|r| *r == CloseReason::Shutdown),
        "close reasons other than Shutdown: {:?}",
        reasons
            .iter()
            .filter(|r| **r != CloseReason::Shutdown)
            .collect::<Vec<_>>()
    );
}

#[test]
fn shutdown_forces_unflushable_connections_at_the_deadline() {
    let _watchdog = watchdog(
        "shutdown_forces_unflushable_connections_at_the_deadline",
        TEST_LIMIT,
    );
    const CONNS: usize = 20;
    const LEN: usize = 1024 * 1024;
    let (handler, payload, events) = pusher(LEN);
    let (server, addr) = start_server(handler);
    // These clients never read until the shutdown is over.
    let mut conns: Vec<TcpStream> = (0..CONNS).map(|_| connect_slow_reader(addr)).collect();
    wait_for_value(WAIT, "connections opened", || events.opened(), CONNS);

    let start = Instant::now();
    let report = server.shutdown(Duration::from_millis(300));
    let took = start.elapsed();
    eprintln!("forced shutdown took {took:?}: {report:?}");
    assert!(
        took >= Duration::from_millis(250),
        "shutdown returned after {took:?}, before its 300 ms deadline, with data unflushed"
    );
    assert!(
        took < Duration::from_secs(5),
        "shutdown took {took:?} with a 300 ms deadline"
    );
    assert_eq!(report.connections, CONNS as u64);
    assert_eq!(
        report.forced, CONNS as u64,
        "every connection had data it could not flush"
    );
    assert!(report.undelivered_bytes > 0);
    assert!(
        report.undelivered_bytes >= (CONNS * LEN / 2) as u64
            && report.undelivered_bytes <= (CONNS * LEN) as u64,
        "undelivered bytes {} out of {} queued; the kernel held at most ~100 KiB a connection",
        report.undelivered_bytes,
        CONNS * LEN
    );
    let reasons = events.reasons();
    assert_eq!(reasons, vec![CloseReason::ShutdownDeadline; CONNS]);

    // Each client gets a prefix of the payload, then the connection ends.
    for c in conns.iter_mut() {
        let (_ending, got) = wait_ended(c);
        assert!(got.len() < LEN, "a forced connection delivered everything");
        assert!(
            got[..] == payload[..got.len()],
            "received data is not a prefix of the payload"
        );
    }
}

#[test]
fn shutdown_with_nothing_queued_closes_idle_connections_promptly() {
    let _watchdog = watchdog(
        "shutdown_with_nothing_queued_closes_idle_connections_promptly",
        TEST_LIMIT,
    );
    const CONNS: usize = 10;
    let (server, addr, events) = echo_server();
    let mut conns: Vec<TcpStream> = (0..CONNS).map(|_| connect(addr)).collect();
    for c in conns.iter_mut() {
        echo_roundtrip(c, b"ping");
    }
    wait_for_value(WAIT, "connections opened", || events.opened(), CONNS);

    let start = Instant::now();
    let report = server.shutdown(Duration::from_secs(10));
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "shutdown of idle connections took {took:?}: it waited for the deadline"
    );
    assert_eq!(report.connections, CONNS as u64);
    assert_eq!(report.forced, 0);
    assert_eq!(report.undelivered_bytes, 0);
    assert_eq!(events.reasons(), vec![CloseReason::Shutdown; CONNS]);
    for c in conns.iter_mut() {
        let (ending, got) = wait_ended(c);
        assert_eq!(ending, Ending::Eof, "a graceful shutdown ends with FIN");
        assert!(got.is_empty(), "unexpected bytes after shutdown: {got:?}");
    }
}
