//! A panicking callback closes only its own connection; the worker keeps serving.

mod util;

use ringport::{CloseReason, Conn, Handler};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use util::*;

/// Echoes, except that a connection whose stream contains "boom" makes `on_data` panic.
struct Bomb {
    events: Arc<Events>,
}

impl Handler for Bomb {
    /// The last three bytes seen, so "boom" is found even when split across reads.
    type Session = Vec<u8>;

    fn on_open(&self, _conn: &mut Conn) -> Vec<u8> {
        self.events.opened.fetch_add(1, Ordering::SeqCst);
        Vec::new()
    }

    fn on_data(&self, tail: &mut Vec<u8>, conn: &mut Conn, data: &[u8]) {
        let mut window = std::mem::take(tail);
        window.extend_from_slice(data);
        if window.windows(4).any(|w| w == b"boom") {
            panic!("test: on_data was asked to go boom");
        }
        *tail = window[window.len().saturating_sub(3)..].to_vec();
        conn.send(data);
    }

    fn on_close(&self, _tail: Vec<u8>, _conn: &Conn, reason: CloseReason) {
        self.events.record_close(reason);
    }
}

#[test]
fn panic_in_on_data_closes_only_that_connection() {
    let _watchdog = watchdog("panic_in_on_data_closes_only_that_connection", TEST_LIMIT);
    let events = Events::new();
    let (server, addr) = start_server(Bomb {
        events: events.clone(),
    });
    let mut victim = connect(addr);
    let mut bystander = connect(addr);
    echo_roundtrip(&mut victim, b"hello");
    echo_roundtrip(&mut bystander, b"hello");

    write_all(&mut victim, b"boom");
    let (ending, got) = wait_ended(&mut victim);
    eprintln!("the panicking connection ended with {ending:?}");
    assert!(got.is_empty(), "the panicking connection echoed {got:?}");
    assert_eq!(events.wait_closes(1), vec![CloseReason::HandlerPanic]);
    assert_eq!(server.stats().handler_panics, 1);

    // The other connection, and new ones, are still served.
    let data = random_bytes(&mut rng(), 100_000);
    echo_roundtrip(&mut bystander, &data);
    let mut newcomer = connect(addr);
    echo_roundtrip(&mut newcomer, &data);
    echo_roundtrip(&mut bystander, b"still here");

    wait_for_value(WAIT, "open connections", || server.stats().open, 2);
    assert_eq!(server.stats().handler_panics, 1);
    assert_eq!(events.reasons(), vec![CloseReason::HandlerPanic]);
}

#[test]
fn panic_split_across_reads_is_still_isolated() {
    let _watchdog = watchdog("panic_split_across_reads_is_still_isolated", TEST_LIMIT);
    let events = Events::new();
    let (server, addr) = start_server(Bomb {
        events: events.clone(),
    });
    let mut victim = connect(addr);
    let mut bystander = connect(addr);
    echo_roundtrip(&mut victim, b"bo");
    write_all(&mut victim, b"om");
    let (_ending, got) = wait_ended(&mut victim);
    assert!(got.is_empty(), "the panicking connection echoed {got:?}");
    assert_eq!(events.wait_closes(1), vec![CloseReason::HandlerPanic]);
    echo_roundtrip(&mut bystander, b"fine");
    assert_eq!(server.stats().handler_panics, 1);
}

/// Panics in `on_open` for the first connection only; echoes on the others.
struct BadOpen {
    opens: AtomicUsize,
}

impl Handler for BadOpen {
    type Session = ();
    fn on_open(&self, _conn: &mut Conn) {
        if self.opens.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("test: the first on_open panics");
        }
    }
    fn on_data(&self, _s: &mut (), conn: &mut Conn, data: &[u8]) {
        conn.send(data);
    }
    fn on_close(&self, _s: (), _conn: &Conn, _reason: CloseReason) {}
}

#[test]
fn panic_in_on_open_closes_only_that_connection() {
    let _watchdog = watchdog("panic_in_on_open_closes_only_that_connection", TEST_LIMIT);
    let (server, addr) = start_server(BadOpen {
        opens: AtomicUsize::new(0),
    });
    let mut first = connect(addr);
    let (_ending, got) = wait_ended(&mut first);
    assert!(got.is_empty());
    wait_for_value(WAIT, "handler panics", || server.stats().handler_panics, 1);
    wait_for_value(WAIT, "open connections", || server.stats().open, 0);

    let mut second = connect(addr);
    echo_roundtrip(&mut second, b"after the panic");
    assert_eq!(server.stats().handler_panics, 1);
    assert_eq!(server.stats().open, 1);
}
