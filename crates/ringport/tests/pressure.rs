//! Resource pressure: an exhausted buffer ring, an overflowing completion queue, and
//! idle connections must lose no byte and pin no receive memory.

use rand::{Rng, SeedableRng};
use ringport::{Backend, CloseReason, Conn, EngineConfig, Handler, Server};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
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

/// Echo `per_conn` random bytes on each of `conns` connections at once (writers and
/// readers on separate threads) and check every byte.
fn echo_many(addr: SocketAddr, conns: usize, per_conn: usize) {
    let threads: Vec<_> = (0..conns)
        .map(|i| {
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
                let data: Vec<u8> = (0..per_conn).map(|_| rng.gen()).collect();
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let mut w = s.try_clone().unwrap();
                let out = data.clone();
                let writer = std::thread::spawn(move || {
                    for chunk in out.chunks(7919) {
                        w.write_all(chunk).unwrap();
                    }
                });
                let mut back = vec![0u8; per_conn];
                s.read_exact(&mut back).unwrap();
                writer.join().unwrap();
                assert!(back == data, "connection {i}: echoed bytes differ");
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Wait (with a deadline) until the server has counted `bytes` sent: a client can read
/// echoed bytes before the worker has processed the send's completion.
fn wait_bytes_out<H: Handler>(server: &Server<H>, bytes: u64) -> ringport::Stats {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = server.stats();
        if stats.bytes_out == bytes {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "bytes_out never reached {bytes}: {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

// The two next tests exercise io_uring's own mechanisms (the provided-buffer ring, the
// completion queue), so they run on io_uring whatever RINGPORT_BACKEND says.

#[test]
fn exhausted_buffer_ring_rearms_and_loses_nothing() {
    // Two 256-byte buffers for 32 busy connections: the ring runs dry all the time.
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .backend(Backend::Uring)
        .workers(1)
        .recv_buffers(2, 256)
        .start(Echo)
        .unwrap();
    echo_many(server.local_addrs()[0], 32, 200_000);
    let stats = wait_bytes_out(&server, 32 * 200_000);
    assert!(stats.enobufs > 0, "the ring never ran dry: {stats:?}");
    assert_eq!(stats.bytes_in, 32 * 200_000);
    assert_eq!(stats.stale_completions, 0);
}

#[test]
fn overflowing_completion_queue_loses_nothing() {
    // A 16-entry completion queue for 64 connections overflows into the kernel backlog.
    let mut config = EngineConfig::default();
    config.workers = 1;
    config.ring_entries = 8;
    config.cq_entries = 16;
    config.backend = Backend::Uring;
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .config(config)
        .start(Echo)
        .unwrap();
    echo_many(server.local_addrs()[0], 64, 100_000);
    let stats = wait_bytes_out(&server, 64 * 100_000);
    assert!(
        stats.cq_overflows > 0,
        "the queue never overflowed: {stats:?}"
    );
}

#[test]
fn random_chunking_survives_tiny_buffers() {
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(1)
        .recv_buffers(8, 64)
        .start(Echo)
        .unwrap();
    let mut s = TcpStream::connect(server.local_addrs()[0]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..200 {
        let n = rng.gen_range(1..3000);
        let data: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
        s.write_all(&data).unwrap();
        let mut back = vec![0; n];
        s.read_exact(&mut back).unwrap();
        assert_eq!(back, data);
    }
}
