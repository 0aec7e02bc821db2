//! What a watch costs in user-space memory once it has fired (not only a fresh one):
//! 5,000 UDP sockets watched on one worker, each sent a datagram and drained in its
//! callback, then the process RSS per watch. Alone in its own test binary so that no
//! other test's allocations show in the RSS.

use ringport::notify::{Interest, Ready};
use ringport::{Client, CloseReason, Conn, Handler, WatchCtl};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Drain(Arc<AtomicU64>);

impl Handler for Drain {
    type Session = ();
    fn on_open(&self, _conn: &mut Conn) {}
    fn on_data(&self, _s: &mut (), _conn: &mut Conn, _data: &[u8]) {}
    fn on_close(&self, _s: (), _conn: &Conn, _why: CloseReason) {}
    fn on_ready(&self, _token: u64, _ready: Ready, watch: &mut WatchCtl<'_>) {
        let fd = watch.fd();
        let s = socket2::SockRef::from(&fd);
        let mut buf = [0u8; 64];
        while (&*s).read(&mut buf).is_ok() {}
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not in time");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Watch `n` fresh UDP sockets on worker 0 (tokens from `first`) and fire each once.
fn watch_and_fire(client: &Client<Drain>, fired: &AtomicU64, n: usize, first: u64) {
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let before = fired.load(Ordering::Relaxed);
    for i in 0..n {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_nonblocking(true).unwrap();
        let addr = s.local_addr().unwrap();
        let interest = Interest::READABLE.edge();
        client
            .workers()
            .watch_on(0, s.into(), interest, first + i as u64)
            .unwrap();
        sender.send_to(b"hello", addr).unwrap();
    }
    wait_for("every watch fired", || {
        fired.load(Ordering::Relaxed) >= before + n as u64
    });
}

#[test]
fn a_watch_that_has_fired_costs_a_few_hundred_bytes() {
    const N: usize = 5000;
    let fired = Arc::new(AtomicU64::new(0));
    let client = Client::builder()
        .workers(1)
        .start(Drain(fired.clone()))
        .unwrap();
    // Warm up: tables and lists grown once, lazy allocations made.
    watch_and_fire(&client, &fired, 500, 1_000_000);
    let before = rss_bytes();
    watch_and_fire(&client, &fired, N, 0);
    let per_watch = rss_bytes().saturating_sub(before) / N as u64;
    eprintln!(
        "{per_watch} bytes of RSS per watch that has fired ({} backend)",
        client.stats().backend
    );
    assert!(per_watch < 1024, "{per_watch} bytes of RSS per watch");
    assert_eq!(client.stats().watches, (N + 500) as u64);
}
