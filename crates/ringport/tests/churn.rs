//! Slot reuse under churn: many short connections in a row must never see each other's
//! bytes, whichever slot and generation they get.

mod util;

use ringport::{CloseReason, Conn, Handler};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;
use util::*;

/// The 16-byte tag of connection `seq`: its number and a check word derived from it.
fn tag(seq: u64) -> [u8; 16] {
    let mut t = [0u8; 16];
    t[..8].copy_from_slice(&seq.to_be_bytes());
    t[8..].copy_from_slice(&(seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xA5A5).to_be_bytes());
    t
}

#[test]
fn ten_thousand_open_close_cycles_echo_only_their_own_tag() {
    let _watchdog = watchdog(
        "ten_thousand_open_close_cycles_echo_only_their_own_tag",
        TEST_LIMIT,
    );
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 2500;
    const TOTAL: u64 = THREADS * PER_THREAD;
    let (server, addr, _events) = echo_server();

    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            thread::spawn(move || {
                for k in 0..PER_THREAD {
                    let seq = t * PER_THREAD + k;
                    let mut stream = connect(addr);
                    write_all(&mut stream, &tag(seq));
                    shutdown_write(&stream);
                    // Everything the server sends on this connection, up to its EOF, must
                    // be exactly this connection's tag.
                    let back = read_to_eof(&mut stream);
                    assert_eq!(
                        back,
                        tag(seq).to_vec(),
                        "connection {seq} got an echo that is not exactly its own tag"
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a churn thread failed");
    }

    wait_for_value(
        Duration::from_secs(30),
        "connections closed on the server",
        || server.stats().closed,
        TOTAL,
    );
    wait_for_value(WAIT, "open connections", || server.stats().open, 0);
    let stats = server.stats();
    eprintln!(
        "stale completions after {TOTAL} cycles: {}",
        stats.stale_completions
    );
    assert_eq!(stats.accepted, TOTAL);
    assert_eq!(stats.bytes_in, TOTAL * 16);
    assert_eq!(stats.bytes_out, TOTAL * 16);
    assert_eq!(stats.handler_panics, 0);
    assert_eq!(stats.undelivered_bytes, 0);
}

/// How many times a client repeats its id back to the server.
const REPEAT: usize = 64;

/// Greets every connection with a unique 8-byte id, then checks that every byte the
/// connection receives is that id repeated; on EOF answers "OK" or "NO".
#[derive(Default)]
struct Greeter {
    next_id: AtomicU64,
    /// Bytes received that did not belong to the connection's own id stream.
    mismatches: AtomicUsize,
    closes: Mutex<Vec<CloseReason>>,
}

struct Session {
    id: [u8; 8],
    received: usize,
    clean: bool,
}

impl Handler for Shared<Greeter> {
    type Session = Session;

    fn on_open(&self, conn: &mut Conn) -> Session {
        let id = (self.next_id.fetch_add(1, Ordering::SeqCst) + 1).to_be_bytes();
        conn.send(&id);
        Session {
            id,
            received: 0,
            clean: true,
        }
    }

    fn on_data(&self, s: &mut Session, _conn: &mut Conn, data: &[u8]) {
        for (k, &b) in data.iter().enumerate() {
            if b != s.id[(s.received + k) % 8] {
                s.clean = false;
                self.mismatches.fetch_add(1, Ordering::SeqCst);
            }
        }
        s.received += data.len();
    }

    fn on_eof(&self, s: &mut Session, conn: &mut Conn) {
        if s.clean && s.received == REPEAT * 8 {
            conn.send(b"OK");
        } else {
            conn.send(b"NO");
        }
        conn.close();
    }

    fn on_close(&self, _s: Session, _conn: &Conn, reason: CloseReason) {
        self.closes.lock().unwrap().push(reason);
    }
}

#[test]
fn server_side_sessions_see_only_their_own_client_bytes() {
    let _watchdog = watchdog(
        "server_side_sessions_see_only_their_own_client_bytes",
        TEST_LIMIT,
    );
    const THREADS: usize = 4;
    const PER_THREAD: usize = 500;
    const TOTAL: usize = THREADS * PER_THREAD;
    let greeter = Shared::new(Greeter::default());
    let (server, addr) = start_server(greeter.clone());
    let ids = Arc::new(Mutex::new(HashSet::new()));

    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let ids = ids.clone();
            thread::spawn(move || {
                for _ in 0..PER_THREAD {
                    let mut stream = connect(addr);
                    let id = read_n(&mut stream, 8);
                    assert!(
                        ids.lock().unwrap().insert(id.clone()),
                        "two connections were greeted with the same id {id:?}"
                    );
                    let reply: Vec<u8> = id.iter().copied().cycle().take(REPEAT * 8).collect();
                    // Two writes, split inside an id, so the server sees several reads.
                    write_all(&mut stream, &reply[..203]);
                    write_all(&mut stream, &reply[203..]);
                    shutdown_write(&stream);
                    let verdict = read_to_eof(&mut stream);
                    assert_eq!(
                        String::from_utf8_lossy(&verdict),
                        "OK",
                        "the server session for id {id:?} saw bytes that were not its client's"
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a client thread failed");
    }

    wait_for_value(
        WAIT,
        "sessions closed",
        || greeter.closes.lock().unwrap().len(),
        TOTAL,
    );
    assert_eq!(greeter.mismatches.load(Ordering::SeqCst), 0);
    assert_eq!(ids.lock().unwrap().len(), TOTAL);
    // Each session closed after its peer's EOF (close.rs pins down which reason that is).
    let closes = greeter.closes.lock().unwrap().clone();
    let normal = |r: &CloseReason| matches!(r, CloseReason::PeerClosed | CloseReason::Local);
    assert!(
        closes.iter().all(normal),
        "unexpected close reasons: {:?}",
        closes.iter().filter(|r| !normal(r)).collect::<Vec<_>>()
    );
    wait_for_value(WAIT, "open connections", || server.stats().open, 0);
}

/// Echoes the first read of each connection, then closes it while its peer may still be
/// sending: receives are in flight as the slot is freed and reused.
struct FirstReadOnly;

impl Handler for FirstReadOnly {
    type Session = ();
    fn on_open(&self, _conn: &mut Conn) {}
    fn on_data(&self, _s: &mut (), conn: &mut Conn, data: &[u8]) {
        conn.send(data);
        conn.close();
    }
    fn on_close(&self, _s: (), _conn: &Conn, _reason: CloseReason) {}
}

#[test]
fn server_closing_mid_stream_never_leaks_bytes_into_the_next_connection() {
    let _watchdog = watchdog(
        "server_closing_mid_stream_never_leaks_bytes_into_the_next_connection",
        TEST_LIMIT,
    );
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 1000;
    const WRITES: usize = 16;
    let (server, addr) = start_server(FirstReadOnly);
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            thread::spawn(move || {
                for k in 0..PER_THREAD {
                    let seq = t * PER_THREAD + k;
                    let tag = tag(seq);
                    let mut stream = connect(addr);
                    // Keep writing while the server echoes the first read and closes;
                    // writes after its close may fail, which is expected.
                    for _ in 0..WRITES {
                        if std::io::Write::write_all(&mut stream, &tag).is_err() {
                            break;
                        }
                    }
                    let (_ending, got) = wait_ended(&mut stream);
                    // Whatever came back (the server may reset the connection before all
                    // of its echo is read) must be a prefix of this connection's stream.
                    let own: Vec<u8> = tag.iter().copied().cycle().take(got.len()).collect();
                    assert!(
                        got == own,
                        "connection {seq} received bytes it never sent: {got:?}"
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a churn thread failed");
    }
    let total = THREADS * PER_THREAD;
    wait_for_value(WAIT, "closed", || server.stats().closed, total);
    wait_for_value(WAIT, "open", || server.stats().open, 0);
    let stats = server.stats();
    eprintln!(
        "stale completions after {total} mid-stream closes: {}",
        stats.stale_completions
    );
    assert_eq!(stats.accepted, total);
    assert_eq!(stats.handler_panics, 0);
}
