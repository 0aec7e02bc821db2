//! Closing with each kind of operation in flight, and a cancel that loses its race.

use super::{Cb, Harness, Seen};
use crate::core::OpKind;
use crate::error::CloseReason;
use crate::sys::fake::FakeOp;

#[test]
fn close_with_the_receive_in_flight_cancels_it_and_reports_once() {
    let mut h = Harness::new();
    h.hook(|cb, conn, _| {
        if cb == Cb::Data {
            conn.abort();
        }
    });
    let key = h.accept();
    assert!(h.pending(key, OpKind::Recv));
    h.receive(key, b"x");
    h.step();
    let recv = key.name(OpKind::Recv);
    assert_eq!(h.started(key), vec![FakeOp::Recv, FakeOp::Cancel(recv)]);
    assert_eq!(
        h.seen(),
        vec![Seen::Open, Seen::Data(b"x".to_vec())],
        "not yet"
    );
    h.settle();
    assert_eq!(
        h.seen(),
        vec![
            Seen::Open,
            Seen::Data(b"x".to_vec()),
            Seen::Close(CloseReason::Aborted)
        ]
    );
    assert_eq!(*h.started(key).last().unwrap(), FakeOp::Close);
    assert!(h.freed(key));
}

#[test]
fn close_with_a_send_in_flight_waits_for_it_and_counts_what_was_not_sent() {
    let mut h = Harness::new();
    h.hook(|cb, conn, _| {
        if cb == Cb::Data {
            conn.send(b"reply");
        }
    });
    let key = h.accept();
    h.receive(key, b"ping");
    h.step();
    assert!(h.pending(key, OpKind::Send));
    h.w.begin_close(key, CloseReason::Local);
    h.settle(); // the receive's and the send's cancels complete both
    assert_eq!(h.seen().last(), Some(&Seen::Close(CloseReason::Local)));
    assert_eq!(h.stat(|s| &s.undelivered_bytes), 5);
    assert!(h.w.io.wire.is_empty());
    assert!(h.freed(key));
}

#[test]
fn close_with_a_shutdown_in_flight_reports_only_after_it_completes() {
    let mut h = Harness::new();
    h.hook(|cb, conn, _| {
        if cb == Cb::Data {
            conn.shutdown_write();
        }
    });
    let key = h.accept();
    h.receive(key, b"done");
    h.step();
    assert!(h.pending(key, OpKind::Shutdown));
    h.w.begin_close(key, CloseReason::Local);
    h.settle();
    assert_eq!(
        h.seen().len(),
        2,
        "a shutdown is not cancelled: it is awaited"
    );
    assert!(!h.freed(key));
    h.complete(key, OpKind::Shutdown, 0);
    h.settle();
    assert_eq!(h.seen().last(), Some(&Seen::Close(CloseReason::Local)));
    assert!(h.freed(key));
}

#[test]
fn a_cancel_that_comes_after_the_final_completion_changes_nothing() {
    let mut h = Harness::new();
    let key = h.accept();
    // The peer's EOF is in the completion queue, not yet reaped, when the engine
    // decides to close: its cancel finds nothing (ENOENT).
    h.complete(key, OpKind::Recv, 0);
    h.w.begin_close(key, CloseReason::Local);
    let recv = key.name(OpKind::Recv);
    assert_eq!(h.started(key), vec![FakeOp::Recv, FakeOp::Cancel(recv)]);
    h.settle();
    assert_eq!(h.seen(), vec![Seen::Open, Seen::Close(CloseReason::Local)]);
    assert_eq!(h.stat(|s| &s.stale_completions), 0);
    assert!(h.freed(key));
}

#[test]
fn a_graceful_close_stops_reading_flushes_then_closes() {
    let mut h = Harness::new();
    h.hook(|cb, conn, _| {
        if cb == Cb::Data {
            conn.send(b"bye");
            conn.close();
        }
    });
    let key = h.accept();
    h.receive(key, b"quit");
    h.step();
    let recv = key.name(OpKind::Recv);
    assert_eq!(
        h.started(key),
        vec![FakeOp::Recv, FakeOp::Send(3), FakeOp::Cancel(recv)]
    );
    h.settle();
    assert_eq!(h.seen().len(), 2, "waiting for the send");
    h.complete(key, OpKind::Send, 3);
    h.settle();
    assert_eq!(h.w.io.wire, b"bye");
    assert_eq!(h.seen().last(), Some(&Seen::Close(CloseReason::Local)));
    assert_eq!(h.stat(|s| &s.undelivered_bytes), 0);
    assert!(h.freed(key));
}

#[test]
fn a_slot_is_never_freed_with_operations_in_flight() {
    let mut h = Harness::new();
    let key = h.accept();
    assert!(h.pending(key, OpKind::Recv));
    let freed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.w.free(key)));
    // Debug builds assert; release builds refuse and count.
    assert_eq!(freed.is_err(), cfg!(debug_assertions));
    assert!(h.w.conns.get_mut(key).is_some(), "the slot is kept");
    assert_eq!(h.stat(|s| &s.slot_frees_refused), 1);
}

#[test]
fn a_close_the_machine_decides_frees_what_the_shell_keeps_for_the_connection() {
    // A graceful close becomes due inside the machine's plan (EOF, nothing to flush):
    // the partial frame's memory and the handler's timers must go with it.
    let mut config = crate::config::EngineConfig::default();
    use crate::codec::{Codec, Endian, LengthCodec};
    config.codec = Codec::Length(LengthCodec::new(4, Endian::Big).unwrap());
    let mut h = Harness::with_config(config);
    h.hook(|cb, conn, _| match cb {
        Cb::Open => conn.set_timer(std::time::Duration::from_secs(60), 1),
        Cb::Eof => conn.close(),
        _ => {}
    });
    let key = h.accept();
    h.receive(key, &[0, 0, 1, 0, 7, 7, 7]); // a 256-byte frame, 3 bytes of it
    h.step();
    assert_eq!(h.w.frame_held, 7, "the header and three payload bytes");
    assert!(!h.w.wheel.is_empty());
    h.complete(key, OpKind::Recv, 0);
    h.settle();
    assert_eq!(h.seen().last(), Some(&Seen::Close(CloseReason::PeerClosed)));
    assert_eq!(h.w.frame_held, 0, "the reader's bytes left the budget");
    assert!(h.w.wheel.is_empty(), "the timer was cancelled");
    assert!(h.freed(key));
}
