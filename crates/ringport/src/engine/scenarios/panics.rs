//! A panic in each callback closes that connection only, with `HandlerPanic`, and is
//! counted; a panic in `on_close` still frees the slot.

use super::{Cb, Harness, Seen};
use crate::config::EngineConfig;
use crate::core::OpKind;
use crate::error::CloseReason;
use std::time::Duration;

/// The connection closed with `HandlerPanic`, the panic was counted, nothing was seen
/// after the close, and the slot is free.
fn closed_by_the_panic(h: &mut Harness, key: crate::core::ConnKey) {
    h.settle();
    assert_eq!(h.stat(|s| &s.handler_panics), 1);
    assert_eq!(
        h.seen().last(),
        Some(&Seen::Close(CloseReason::HandlerPanic)),
        "{:?}",
        h.seen()
    );
    assert!(h.freed(key));
}

#[test]
fn a_panic_in_on_open() {
    let mut h = Harness::new();
    h.panic_in(Cb::Open);
    let key = h.accept();
    h.settle();
    assert_eq!(h.stat(|s| &s.handler_panics), 1);
    // No session was made: on_close has nothing to take; the close is still counted.
    assert_eq!(h.seen(), vec![Seen::Open]);
    assert_eq!(
        h.stat(|s| &s.closed_by[CloseReason::HandlerPanic.index()]),
        1
    );
    assert!(h.freed(key));
}

#[test]
fn a_panic_in_on_data_stops_delivery() {
    let mut h = Harness::new();
    h.panic_in(Cb::Data);
    let key = h.accept();
    h.receive(key, b"one");
    h.receive(key, b"two");
    closed_by_the_panic(&mut h, key);
    assert!(!h.seen().contains(&Seen::Data(b"two".to_vec())));
}

#[test]
fn a_panic_in_on_eof() {
    let mut h = Harness::new();
    h.panic_in(Cb::Eof);
    let key = h.accept();
    h.complete(key, OpKind::Recv, 0);
    closed_by_the_panic(&mut h, key);
}

#[test]
fn a_panic_in_on_drained() {
    let mut h = Harness::new();
    h.hook(|cb, conn, data| {
        if cb == Cb::Data {
            conn.send(data);
        }
    });
    h.panic_in(Cb::Drained);
    let key = h.accept();
    h.receive(key, b"x");
    h.step();
    h.complete(key, OpKind::Send, 1);
    closed_by_the_panic(&mut h, key);
}

#[test]
fn a_panic_in_on_timer() {
    let mut h = Harness::new();
    h.hook(|cb, conn, _| {
        if cb == Cb::Open {
            conn.set_timer(Duration::from_millis(20), 5);
        }
    });
    h.panic_in(Cb::Timer);
    let key = h.accept();
    h.advance(Duration::from_millis(100));
    assert!(h.seen().contains(&Seen::Timer(5)));
    closed_by_the_panic(&mut h, key);
}

#[test]
fn a_panic_in_on_writable() {
    let mut config = EngineConfig::default();
    config.send_queue.high_water = 4;
    config.send_queue.low_water = 0;
    let mut h = Harness::with_config(config);
    h.hook(|cb, conn, _| {
        if cb == Cb::Data {
            conn.send(b"more than four");
        }
    });
    h.panic_in(Cb::Writable);
    let key = h.accept();
    h.receive(key, b"x");
    h.step();
    assert!(h.seen().contains(&Seen::Writable(false)));
    closed_by_the_panic(&mut h, key);
}

#[test]
fn a_panic_in_on_close_is_counted_and_the_slot_still_freed() {
    let mut h = Harness::new();
    h.panic_in(Cb::Close);
    let key = h.accept();
    h.w.begin_close(key, CloseReason::Local);
    h.settle();
    assert_eq!(h.stat(|s| &s.handler_panics), 1);
    assert_eq!(h.seen().last(), Some(&Seen::Close(CloseReason::Local)));
    assert!(h.freed(key));
}
