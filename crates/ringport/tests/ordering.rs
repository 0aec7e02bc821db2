//! Send order: many small sends, mixed copied and zero-copy sends, and sends posted from
//! other threads through a `ConnRef` all arrive in the order they were made.

mod util;

use ringport::{Bytes, CloseReason, Conn, ConnRef, Handler};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use util::*;

const COUNT: u32 = 10_000;

/// Check that `data` is exactly the big-endian u32 counters 0..count.
#[track_caller]
fn check_counters(data: &[u8], count: u32) {
    assert_eq!(data.len(), count as usize * 4, "received byte count");
    for (i, chunk) in data.chunks_exact(4).enumerate() {
        let v = u32::from_be_bytes(chunk.try_into().unwrap());
        assert_eq!(
            v, i as u32,
            "message {i} arrived out of order (got counter {v})"
        );
    }
}

/// On open, sends 10,000 numbered 4-byte messages with `Conn::send`, then closes.
struct Counter;

impl Handler for Counter {
    type Session = ();
    fn on_open(&self, conn: &mut Conn) {
        for i in 0..COUNT {
            conn.send(&i.to_be_bytes());
        }
        conn.close();
    }
    fn on_data(&self, _s: &mut (), _conn: &mut Conn, _data: &[u8]) {}
    fn on_close(&self, _s: (), _conn: &Conn, _reason: CloseReason) {}
}

#[test]
fn ten_thousand_small_sends_arrive_in_order() {
    let _watchdog = watchdog("ten_thousand_small_sends_arrive_in_order", TEST_LIMIT);
    let (_server, addr) = start_server(Counter);
    let mut stream = connect(addr);
    let data = read_to_eof(&mut stream);
    check_counters(&data, COUNT);
}

/// Message `i` of the mixed test: its number, its length, then a filler. Sizes go from a
/// few bytes (copied into the coalescing tail) to several KiB (queued as their own Bytes).
fn mixed_message(i: u32) -> Vec<u8> {
    let len = match i % 5 {
        0 => 8,
        1 => 8 + (i as usize * 13) % 500,
        2 => 513 + (i as usize * 7) % 3000,
        3 => 60,
        _ => 4096 + (i as usize % 17),
    };
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&i.to_be_bytes());
    m.extend_from_slice(&(len as u32).to_be_bytes());
    m.extend((8..len).map(|k| (i as usize + k) as u8));
    m
}

const MIXED: u32 = 3000;

/// On open, sends the mixed messages alternating `send` and `send_bytes`, then closes.
struct Mixed;

impl Handler for Mixed {
    type Session = ();
    fn on_open(&self, conn: &mut Conn) {
        for i in 0..MIXED {
            let m = mixed_message(i);
            if (i / 3) % 2 == 0 {
                conn.send(&m);
            } else {
                conn.send_bytes(Bytes::from(m));
            }
        }
        conn.close();
    }
    fn on_data(&self, _s: &mut (), _conn: &mut Conn, _data: &[u8]) {}
    fn on_close(&self, _s: (), _conn: &Conn, _reason: CloseReason) {}
}

#[test]
fn send_and_send_bytes_keep_their_relative_order() {
    let _watchdog = watchdog("send_and_send_bytes_keep_their_relative_order", TEST_LIMIT);
    let (_server, addr) = start_server(Mixed);
    let mut stream = connect(addr);
    let data = read_to_eof(&mut stream);
    let expected: Vec<u8> = (0..MIXED).flat_map(mixed_message).collect();
    assert_eq!(data.len(), expected.len(), "received byte count");
    if data != expected {
        let mut off = 0;
        for i in 0..MIXED {
            let m = mixed_message(i);
            assert!(
                data[off..off + m.len()] == m[..],
                "message {i} (at byte {off}, {} bytes) is not what was sent there",
                m.len()
            );
            off += m.len();
        }
    }
}

/// Hands every connection's `ConnRef` to the test through a channel.
struct HandOut {
    refs: Mutex<mpsc::Sender<ConnRef>>,
}

impl Handler for HandOut {
    type Session = ();
    fn on_open(&self, conn: &mut Conn) {
        self.refs.lock().unwrap().send(conn.handle()).unwrap();
    }
    fn on_data(&self, _s: &mut (), _conn: &mut Conn, _data: &[u8]) {}
    fn on_close(&self, _s: (), _conn: &Conn, _reason: CloseReason) {}
}

fn handout_server() -> (
    ringport::Server<HandOut>,
    std::net::SocketAddr,
    mpsc::Receiver<ConnRef>,
) {
    let (tx, rx) = mpsc::channel();
    let (server, addr) = start_server(HandOut {
        refs: Mutex::new(tx),
    });
    (server, addr, rx)
}

#[test]
fn ten_thousand_sends_through_a_conn_ref_arrive_in_order() {
    let _watchdog = watchdog(
        "ten_thousand_sends_through_a_conn_ref_arrive_in_order",
        TEST_LIMIT,
    );
    let (server, addr, refs) = handout_server();
    let mut stream = connect(addr);
    let conn = refs.recv_timeout(WAIT).expect("on_open never ran");
    // Another thread posts while this one reads.
    let sender = thread::spawn(move || {
        for i in 0..COUNT {
            conn.send(i.to_be_bytes().to_vec()).expect("ConnRef::send");
        }
        conn.close().expect("ConnRef::close");
    });
    let data = read_to_eof(&mut stream);
    sender.join().expect("the sending thread failed");
    check_counters(&data, COUNT);
    assert_eq!(server.stats().late_sends, 0);
}

#[test]
fn conn_ref_sends_from_several_threads_keep_each_threads_order() {
    let _watchdog = watchdog(
        "conn_ref_sends_from_several_threads_keep_each_threads_order",
        TEST_LIMIT,
    );
    const THREADS: u32 = 4;
    const EACH: u32 = 2500;
    let (_server, addr, refs) = handout_server();
    let mut stream = connect(addr);
    let conn = Arc::new(refs.recv_timeout(WAIT).expect("on_open never ran"));
    let senders: Vec<_> = (0..THREADS)
        .map(|t| {
            let conn = conn.clone();
            thread::spawn(move || {
                for i in 0..EACH {
                    let mut m = [0u8; 8];
                    m[..4].copy_from_slice(&t.to_be_bytes());
                    m[4..].copy_from_slice(&i.to_be_bytes());
                    conn.send(Bytes::copy_from_slice(&m))
                        .expect("ConnRef::send");
                }
            })
        })
        .collect();
    for s in senders {
        s.join().expect("a sending thread failed");
    }
    conn.close().expect("ConnRef::close");

    let data = read_to_eof(&mut stream);
    assert_eq!(
        data.len(),
        (THREADS * EACH * 8) as usize,
        "received byte count"
    );
    let mut next = [0u32; THREADS as usize];
    for m in data.chunks_exact(8) {
        let t = u32::from_be_bytes(m[..4].try_into().unwrap());
        let i = u32::from_be_bytes(m[4..].try_into().unwrap());
        assert!(
            t < THREADS,
            "a message names thread {t}: the stream is corrupt"
        );
        assert_eq!(
            i, next[t as usize],
            "thread {t}'s messages arrived out of order"
        );
        next[t as usize] += 1;
    }
}
