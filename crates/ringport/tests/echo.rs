//! Echo: large random streams written in random chunks, and many connections open at once.

mod util;

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use util::*;

const STACK: usize = 256 * 1024;

/// One connection: a writer thread sends `len` random bytes in random chunks of 1..64 KiB
/// while this thread reads the echo back and compares it as it arrives. After the writer
/// shuts its side, the echo must end with EOF right after the last byte.
fn echo_stream(addr: SocketAddr, seed: u64, len: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let data = Arc::new(random_bytes(&mut rng, len));
    let mut stream = connect(addr);
    let mut writer_stream = stream.try_clone().expect("clone the stream");
    let writer_data = data.clone();
    let writer = thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || {
            let mut off = 0;
            while off < writer_data.len() {
                let n = rng.gen_range(1..=64 * 1024).min(writer_data.len() - off);
                write_all(&mut writer_stream, &writer_data[off..off + n]);
                off += n;
            }
            shutdown_write(&writer_stream);
        })
        .expect("spawn a writer");

    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    loop {
        let n = stream
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("reading the echo after {got} of {len} bytes: {e}"));
        if n == 0 {
            break;
        }
        assert!(
            got + n <= len,
            "the echo is longer than what was sent ({} > {len})",
            got + n
        );
        assert!(
            buf[..n] == data[got..got + n],
            "the echo differs from the data within bytes {got}..{}",
            got + n
        );
        got += n;
    }
    assert_eq!(got, len, "EOF came before the whole echo");
    writer.join().expect("the writer thread panicked");
}

#[test]
fn hundred_connections_echo_one_mebibyte_each() {
    let _watchdog = watchdog("hundred_connections_echo_one_mebibyte_each", TEST_LIMIT);
    const CONNS: usize = 100;
    const LEN: usize = 1024 * 1024;
    let (server, addr, events) = echo_server();
    let mut rng = rng();
    let readers: Vec<_> = (0..CONNS)
        .map(|_| {
            let seed = rng.next_u64();
            thread::Builder::new()
                .stack_size(STACK)
                .spawn(move || echo_stream(addr, seed, LEN))
                .expect("spawn a reader")
        })
        .collect();
    for r in readers {
        r.join().expect("a connection failed");
    }

    let total = (CONNS * LEN) as u64;
    wait_for_value(
        WAIT,
        "server connections closed",
        || server.stats().closed,
        CONNS as u64,
    );
    let stats = server.stats();
    assert_eq!(stats.accepted, CONNS as u64);
    assert_eq!(stats.open, 0);
    assert_eq!(stats.bytes_in, total);
    assert_eq!(stats.bytes_out, total);
    assert_eq!(events.opened(), CONNS);
    assert_eq!(events.eofs.load(Ordering::SeqCst), CONNS);
}

/// Message `i` of connection `c`: an 8-byte header (c, i) and a filler whose length and
/// content depend on both.
fn message(c: u32, i: u32) -> Vec<u8> {
    let len = 8 + ((c as usize * 31 + i as usize * 17) % 120);
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&c.to_be_bytes());
    m.extend_from_slice(&i.to_be_bytes());
    m.extend((8..len).map(|k| (c as usize ^ (i as usize * 7) ^ k) as u8));
    m
}

#[test]
fn two_thousand_concurrent_connections_echo_a_hundred_messages() {
    let _watchdog = watchdog(
        "two_thousand_concurrent_connections_echo_a_hundred_messages",
        TEST_LIMIT,
    );
    const THREADS: usize = 20;
    const PER_THREAD: usize = 100;
    const CONNS: usize = THREADS * PER_THREAD;
    const MESSAGES: u32 = 100;
    let (server, addr, events) = echo_server();
    // Every client thread connects its share, then all wait until the server has every
    // connection open before the first message goes out.
    let connected = Arc::new(AtomicUsize::new(0));
    let go = Arc::new(AtomicBool::new(false));

    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (connected, go) = (connected.clone(), go.clone());
            thread::Builder::new()
                .stack_size(STACK)
                .spawn(move || {
                    let mut conns: Vec<(u32, TcpStream)> = (0..PER_THREAD)
                        .map(|k| ((t * PER_THREAD + k) as u32, connect(addr)))
                        .collect();
                    connected.fetch_add(1, Ordering::SeqCst);
                    wait_until(WAIT, "the main thread starts the exchange", || {
                        go.load(Ordering::SeqCst)
                    });
                    for i in 0..MESSAGES {
                        for (c, s) in conns.iter_mut() {
                            write_all(s, &message(*c, i));
                        }
                        for (c, s) in conns.iter_mut() {
                            let expected = message(*c, i);
                            let back = read_n(s, expected.len());
                            assert!(
                                back == expected,
                                "connection {c}, message {i}: echoed {back:?}, sent {expected:?}"
                            );
                        }
                    }
                })
                .expect("spawn a client thread")
        })
        .collect();

    wait_for_value(
        WAIT,
        "client threads done connecting",
        || connected.load(Ordering::SeqCst),
        THREADS,
    );
    wait_for_value(
        WAIT,
        "connections open on the server",
        || events.opened(),
        CONNS,
    );
    assert_eq!(server.stats().open, CONNS as u64);
    go.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().expect("a client thread failed");
    }

    let total: u64 = (0..CONNS as u32)
        .flat_map(|c| (0..MESSAGES).map(move |i| message(c, i).len() as u64))
        .sum();
    wait_for_value(
        WAIT,
        "server connections closed",
        || server.stats().closed,
        CONNS as u64,
    );
    let stats = server.stats();
    assert_eq!(stats.open, 0);
    assert_eq!(stats.accepted, CONNS as u64);
    assert_eq!(stats.bytes_in, total);
    assert_eq!(stats.bytes_out, total);
}
