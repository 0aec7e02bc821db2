//! Backpressure in bytes: water marks with `on_writable`, the hard cap that closes a
//! slow reader, and bounded server memory under many of them.

mod util;

use ringport::{CloseReason, Conn, Handler, SendQueueLimits, Server};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use util::*;

/// On "fill", queues 1 MiB; counts `on_writable` calls.
#[derive(Default)]
struct Filler {
    unwritable: AtomicUsize,
    writable: AtomicUsize,
    closes: Mutex<Vec<CloseReason>>,
}

impl Handler for Shared<Filler> {
    type Session = ();
    fn on_open(&self, _conn: &mut Conn) {}
    fn on_data(&self, _s: &mut (), conn: &mut Conn, _data: &[u8]) {
        for _ in 0..16 {
            conn.send(&[5u8; 64 * 1024]);
        }
    }
    fn on_writable(&self, _s: &mut (), _conn: &mut Conn, writable: bool) {
        let counter = if writable {
            &self.0.writable
        } else {
            &self.0.unwritable
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
    fn on_close(&self, _s: (), _conn: &Conn, reason: CloseReason) {
        self.0.closes.lock().unwrap().push(reason);
    }
}

#[test]
fn water_marks_call_on_writable_once_per_crossing() {
    let _w = watchdog("water_marks", TEST_LIMIT);
    let state = Shared::new(Filler::default());
    let mut limits = SendQueueLimits::default();
    limits.high_water = 256 * 1024;
    limits.low_water = 64 * 1024;
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .send_queue(limits)
        .start(Shared(state.0.clone()))
        .unwrap();
    let mut s = connect_slow_reader(server.local_addrs()[0]);
    for round in 1..=2 {
        write_all(&mut s, b"fill");
        wait_for_value(
            WAIT,
            "unwritable",
            || state.0.unwritable.load(Ordering::SeqCst),
            round,
        );
        assert_eq!(state.0.writable.load(Ordering::SeqCst), round - 1);
        assert_eq!(read_n(&mut s, 1024 * 1024).len(), 1024 * 1024);
        wait_for_value(
            WAIT,
            "writable",
            || state.0.writable.load(Ordering::SeqCst),
            round,
        );
        assert_eq!(state.0.unwritable.load(Ordering::SeqCst), round);
    }
    drop(s);
    server.shutdown(WAIT);
}

/// Sends 16 KiB every millisecond (a timer) to a peer that never reads.
struct Firehose;

impl Handler for Firehose {
    type Session = ();
    fn on_open(&self, conn: &mut Conn) {
        conn.set_timer(Duration::from_millis(1), 0);
    }
    fn on_data(&self, _s: &mut (), _conn: &mut Conn, _data: &[u8]) {}
    fn on_timer(&self, _s: &mut (), conn: &mut Conn, _token: u64) {
        conn.send(&[9u8; 16 * 1024]);
        conn.set_timer(Duration::from_millis(1), 0);
    }
    fn on_close(&self, _s: (), _conn: &Conn, _reason: CloseReason) {}
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

#[test]
fn slow_readers_close_at_the_cap_and_memory_stays_bounded() {
    let _w = watchdog("slow_readers", TEST_LIMIT);
    const CAP: usize = 1024 * 1024;
    const CLIENTS: usize = 500;
    let mut limits = SendQueueLimits::default();
    limits.max = Some(CAP);
    let before = rss_bytes();
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(2)
        .send_queue(limits)
        .start(Firehose)
        .unwrap();
    let addr = server.local_addrs()[0];
    let clients: Vec<_> = (0..CLIENTS).map(|_| connect_slow_reader(addr)).collect();
    let mut peak = 0;
    wait_until(Duration::from_secs(30), "every slow reader closed", || {
        peak = peak.max(rss_bytes());
        server.stats().closed_with("slow_reader") == CLIENTS as u64
    });
    let growth = peak.saturating_sub(before);
    assert!(
        growth < (CAP * CLIENTS) as u64 + 20 * 1024 * 1024,
        "RSS grew by {growth} bytes"
    );
    assert_eq!(server.stats().slow_readers, CLIENTS as u64);
    drop(clients);
    server.shutdown(WAIT);
}
