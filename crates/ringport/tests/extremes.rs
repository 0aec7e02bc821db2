//! Knobs at their extremes and callbacks in awkward orders, on whichever backend the
//! suite runs: `Duration::MAX` everywhere a duration is taken reads as "never" (it used to
//! panic adding to an `Instant`, or wrap into a deadline already past); an exact read asked
//! for outside `on_data` is served from bytes already received; a panic after a close was
//! asked keeps the close's reason.

mod util;

use ringport::codec::DelimitedCodec;
use ringport::{Client, CloseReason, Codec, Conn, Handler, Heartbeat, Server, Timeouts};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use util::{
    connect, echo_roundtrip, read_n, wait_for_value, wait_until, watchdog, write_all, Echo,
    TEST_LIMIT, WAIT,
};

const MAX: Duration = Duration::MAX;

/// Echoes; sets a `Duration::MAX` timer and a short one at open, counting what fires.
#[derive(Clone, Default)]
struct Timers {
    fired: Arc<Mutex<Vec<u64>>>,
}

impl Handler for Timers {
    type Session = ();
    fn on_open(&self, conn: &mut Conn) {
        conn.set_timer(MAX, 1);
        conn.set_timer(Duration::from_secs(3_200_000_000), 2); // a hundred years and more
        conn.set_timer(Duration::from_millis(20), 3);
    }
    fn on_data(&self, _s: &mut (), conn: &mut Conn, data: &[u8]) {
        conn.send(data);
    }
    fn on_timer(&self, _s: &mut (), _conn: &mut Conn, token: u64) {
        self.fired.lock().unwrap().push(token);
    }
    fn on_close(&self, _s: (), _conn: &Conn, _why: CloseReason) {}
}

#[test]
fn duration_max_means_never_for_timers_timeouts_connects_and_shutdown() {
    let _w = watchdog("duration_max_means_never", TEST_LIMIT);
    let timers = Timers::default();
    let mut timeouts = Timeouts::default();
    timeouts.first_data = Some(MAX);
    timeouts.idle = Some(MAX);
    timeouts.read = Some(MAX);
    timeouts.write = Some(MAX);
    timeouts.heartbeat = Some(Heartbeat::new(MAX, u32::MAX, b"ping"));
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(1)
        .connect_timeout(MAX)
        .timeouts(timeouts)
        .start(timers.clone())
        .unwrap();
    let addr = server.local_addrs()[0];
    let mut c = connect(addr);
    wait_until(WAIT, "the short timer", || {
        !timers.fired.lock().unwrap().is_empty()
    });
    echo_roundtrip(&mut c, b"still open");
    assert_eq!(
        *timers.fired.lock().unwrap(),
        vec![3],
        "only the short timer fired"
    );
    let s = server.stats();
    assert_eq!((s.open, s.timeouts_fired, s.handler_panics), (1, 0, 0));
    assert_eq!(s.workers_lost, 0);

    // An outbound connect with an unbounded timeout connects (it is not "timed out" at
    // once by a negative kernel timespec, nor a panic in the readiness backend).
    server.connect(addr, 7).unwrap();
    wait_for_value(WAIT, "connected", || server.stats().connected, 1);
    let (echo, _) = Echo::new();
    let client = Client::builder()
        .workers(1)
        .connect_timeout(MAX)
        .start(echo)
        .unwrap();
    client.connect(addr, 8).unwrap();
    wait_for_value(WAIT, "the client connected", || client.stats().connected, 1);
    assert_eq!(client.stats().connect_failed, 0);
    client.shutdown(MAX);

    // A shutdown with no deadline flushes and returns.
    drop(c);
    let report = server.shutdown(MAX);
    assert_eq!(report.forced, 0);
    assert_eq!(report.stats.workers_lost, 0);
}

/// Lines; after the first line it asks (from a timer, outside `on_data`) for an exact read
/// of the 8 bytes the client sent right behind it.
#[derive(Clone, Default)]
struct ExactFromTimer {
    got: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Handler for ExactFromTimer {
    type Session = ();
    fn on_open(&self, _conn: &mut Conn) {}
    fn on_data(&self, _s: &mut (), conn: &mut Conn, data: &[u8]) {
        let mut got = self.got.lock().unwrap();
        got.push(data.to_vec());
        // After the line, a timer asks for the exact read; after the exact read (served
        // from held bytes, with no receive behind it) another timer must still be armed.
        conn.set_timer(Duration::from_millis(1), got.len() as u64);
    }
    fn on_timer(&self, _s: &mut (), conn: &mut Conn, token: u64) {
        match token {
            1 => conn.read_exact(8).unwrap(),
            _ => conn.send(b"timer after the exact read"),
        }
    }
    fn on_close(&self, _s: (), _conn: &Conn, _why: CloseReason) {}
}

#[test]
fn an_exact_read_asked_outside_on_data_is_served_from_bytes_already_received() {
    let _w = watchdog("an_exact_read_asked_outside_on_data", TEST_LIMIT);
    let h = ExactFromTimer::default();
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(1)
        .codec(Codec::Delimited(DelimitedCodec::lines()))
        .start(h.clone())
        .unwrap();
    let mut c = connect(server.local_addrs()[0]);
    // One write: the line, then 8 bytes with no newline, so nothing else will arrive.
    write_all(&mut c, b"hello\nABCDEFGH");
    wait_until(WAIT, "the exact read delivered", || {
        h.got.lock().unwrap().len() == 2
    });
    assert_eq!(
        *h.got.lock().unwrap(),
        vec![b"hello".to_vec(), b"ABCDEFGH".to_vec()]
    );
    let reply = b"timer after the exact read";
    assert_eq!(read_n(&mut c, reply.len()), reply);
    server.shutdown(Duration::from_secs(5));
}

/// Closes (gracefully, or by abort) and then panics in the same callback.
#[derive(Clone, Default)]
struct CloseThenPanic {
    reasons: Arc<Mutex<Vec<CloseReason>>>,
    replies: Arc<AtomicU64>,
}

impl Handler for CloseThenPanic {
    type Session = ();
    fn on_open(&self, _conn: &mut Conn) {}
    fn on_data(&self, _s: &mut (), conn: &mut Conn, data: &[u8]) {
        conn.send(b"bye");
        self.replies.fetch_add(1, Ordering::SeqCst);
        if data.starts_with(b"abort") {
            conn.abort();
        } else {
            conn.close();
        }
        panic!("a bug after the close");
    }
    fn on_close(&self, _s: (), _conn: &Conn, why: CloseReason) {
        self.reasons.lock().unwrap().push(why);
    }
}

#[test]
fn a_panic_after_a_close_keeps_the_close_reason_and_is_counted() {
    let _w = watchdog("a_panic_after_a_close_keeps_the_reason", TEST_LIMIT);
    let h = CloseThenPanic::default();
    let (server, addr) = util::start_server(h.clone());
    let mut graceful = connect(addr);
    write_all(&mut graceful, b"close");
    assert_eq!(
        read_n(&mut graceful, 3),
        b"bye",
        "the graceful close still flushes"
    );
    let mut aborted = connect(addr);
    write_all(&mut aborted, b"abort");
    wait_until(WAIT, "both closed", || h.reasons.lock().unwrap().len() == 2);
    let mut reasons = h.reasons.lock().unwrap().clone();
    reasons.sort_by_key(|r| r.index());
    assert_eq!(reasons, vec![CloseReason::Local, CloseReason::Aborted]);
    let s = server.stats();
    assert_eq!(s.handler_panics, 2);
    assert_eq!(s.closed_with("handler_panic"), 0);
    server.shutdown(Duration::from_secs(5));
}

/// Answers the first message and shuts its write side; the peer then stays silent.
#[derive(Clone, Default)]
struct ShutThenSilent {
    reasons: Arc<Mutex<Vec<CloseReason>>>,
}

impl Handler for ShutThenSilent {
    type Session = ();
    fn on_open(&self, _conn: &mut Conn) {}
    fn on_data(&self, _s: &mut (), conn: &mut Conn, data: &[u8]) {
        conn.send(data);
        conn.shutdown_write();
    }
    fn on_close(&self, _s: (), _conn: &Conn, why: CloseReason) {
        self.reasons.lock().unwrap().push(why);
    }
}

#[test]
fn no_heartbeat_pings_once_the_write_side_is_shut() {
    let _w = watchdog("no_heartbeat_pings_once_the_write_side_is_shut", TEST_LIMIT);
    let h = ShutThenSilent::default();
    let mut timeouts = Timeouts::default();
    timeouts.idle = Some(Duration::from_millis(800));
    timeouts.heartbeat = Some(Heartbeat::new(Duration::from_millis(50), 2, b"?"));
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(1)
        .timeouts(timeouts)
        .start(h.clone())
        .unwrap();
    let mut c = connect(server.local_addrs()[0]);
    write_all(&mut c, b"x");
    assert_eq!(read_n(&mut c, 1), b"x");
    // The heartbeat would close it after ~150 ms; with no ping possible it is the idle
    // timeout that ends it.
    wait_until(WAIT, "closed", || !h.reasons.lock().unwrap().is_empty());
    assert_eq!(
        *h.reasons.lock().unwrap(),
        vec![CloseReason::Timeout(ringport::Timeout::Idle)]
    );
    assert_eq!(
        server.stats().refused_send_bytes,
        0,
        "no ping was attempted"
    );
    server.shutdown(Duration::from_secs(5));
}
