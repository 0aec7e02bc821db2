//! Invariant 2: an idle connection pins no receive memory. Alone in its own test binary
//! so that no other test's allocations show in the process RSS.

use ringport::{CloseReason, Conn, Handler, Server};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

struct Echo;

impl Handler for Echo {
    type Session = ();
    fn on_open(&self, _conn: &mut Conn) {}
    fn on_data(&self, _s: &mut (), conn: &mut Conn, data: &[u8]) {
        conn.send(data);
    }
    fn on_close(&self, _s: (), _conn: &Conn, _why: CloseReason) {}
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn idle_connections_pin_no_receive_memory() {
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(1)
        .start(Echo)
        .unwrap();
    let addr = server.local_addrs()[0];
    // Warm up: one connection that moves data, so every lazy allocation has happened.
    let mut warm = TcpStream::connect(addr).unwrap();
    warm.write_all(&[1; 1000]).unwrap();
    warm.read_exact(&mut [0; 1000]).unwrap();
    let before = rss_bytes();
    const IDLE: usize = 2000;
    let idle: Vec<TcpStream> = (0..IDLE)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.stats().open < IDLE as u64 + 1 {
        assert!(
            Instant::now() < deadline,
            "connections not all open: {:?}",
            server.stats()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let per_conn = rss_bytes().saturating_sub(before) / IDLE as u64;
    // A 4 KiB receive buffer per connection would cost > 4096 here.
    assert!(
        per_conn < 1024,
        "{per_conn} bytes of RSS per idle connection"
    );
    drop(idle);
}
