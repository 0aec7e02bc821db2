//! Receiving and sending: ENOBUFS, partial sends, EOF while sending, send errors, stale
//! and duplicate completions.

use super::{Cb, Harness, Seen};
use crate::core::{Lifecycle, OpKind};
use crate::error::CloseReason;
use crate::sys::fake::FakeOp;
use crate::sys::Completion;

fn echo(h: &Harness) {
    h.hook(|cb, conn, data| {
        if cb == Cb::Data {
            conn.send(data);
        }
    });
}

#[test]
fn enobufs_ends_the_receive_and_it_is_rearmed() {
    let mut h = Harness::new();
    let key = h.accept();
    h.complete(key, OpKind::Recv, -libc::ENOBUFS);
    h.step();
    assert_eq!(h.stat(|s| &s.enobufs), 1);
    assert_eq!(h.started(key), vec![FakeOp::Recv, FakeOp::Recv], "re-armed");
    h.receive(key, b"after");
    h.step();
    assert_eq!(h.seen(), vec![Seen::Open, Seen::Data(b"after".to_vec())]);
}

#[test]
fn a_partial_send_is_followed_by_the_rest_in_order() {
    let mut h = Harness::new();
    echo(&h);
    let key = h.accept();
    h.receive(key, b"0123456789");
    h.step();
    h.complete(key, OpKind::Send, 4);
    h.step();
    assert_eq!(
        h.started(key),
        vec![FakeOp::Recv, FakeOp::Send(10), FakeOp::Send(6)]
    );
    h.receive(key, b"ab"); // queued behind the rest
    h.step();
    h.complete(key, OpKind::Send, 6);
    h.step();
    h.complete(key, OpKind::Send, 2);
    h.step();
    assert_eq!(h.w.io.wire, b"0123456789ab");
    assert_eq!(h.seen().last(), Some(&Seen::Drained));
}

#[test]
fn eof_while_sending_finishes_the_send_then_closes_as_the_peers_doing() {
    let mut h = Harness::new();
    let key = h.accept();
    h.hook(|cb, conn, data| match cb {
        Cb::Data => conn.send(data),
        Cb::Eof => conn.close(),
        _ => {}
    });
    h.receive(key, b"last words");
    h.step();
    h.complete(key, OpKind::Recv, 0); // EOF with the send in flight
    h.step();
    assert_eq!(h.seen().last(), Some(&Seen::Eof));
    assert!(!h.pending(key, OpKind::Recv), "never re-armed after EOF");
    h.complete(key, OpKind::Send, 10);
    h.settle();
    assert_eq!(h.w.io.wire, b"last words");
    assert_eq!(h.seen().last(), Some(&Seen::Close(CloseReason::PeerClosed)));
    assert!(h.freed(key));
}

#[test]
fn a_failed_send_closes_with_its_reason_and_cancels_the_receive() {
    let mut h = Harness::new();
    echo(&h);
    let key = h.accept();
    h.receive(key, b"x");
    h.step();
    h.complete(key, OpKind::Send, -libc::EPIPE);
    h.step();
    let recv = key.name(OpKind::Recv);
    assert!(h.started(key).contains(&FakeOp::Cancel(recv)));
    h.settle();
    assert_eq!(
        h.seen().last(),
        Some(&Seen::Close(CloseReason::from_errno(libc::EPIPE)))
    );
    assert!(h.freed(key));
}

#[test]
fn completions_naming_a_freed_slots_old_tenant_are_dropped_and_counted() {
    let mut h = Harness::new();
    let old = h.accept();
    h.w.begin_close(old, CloseReason::Local);
    h.settle();
    assert!(h.freed(old));
    let new = h.accept();
    assert_eq!(new.slot, old.slot);
    assert_ne!(new.gen, old.gen);
    for kind in [OpKind::Recv, OpKind::Send, OpKind::Close, OpKind::Shutdown] {
        h.w.io.inject(Completion::new(old.name(kind), 5, false, 0));
    }
    h.step();
    assert_eq!(h.stat(|s| &s.stale_completions), 4);
    assert_eq!(h.seen().iter().filter(|s| **s == Seen::Open).count(), 2);
    assert!(h.pending(new, OpKind::Recv), "the new tenant is untouched");
}

#[test]
fn a_completion_for_an_operation_not_in_flight_is_stale() {
    let mut h = Harness::new();
    let key = h.accept();
    // A second final completion of the receive, and a send the connection never made.
    h.complete(key, OpKind::Recv, -libc::ECONNRESET);
    h.w.io
        .inject(Completion::new(key.name(OpKind::Recv), 3, false, 0));
    h.w.io
        .inject(Completion::new(key.name(OpKind::Send), 3, false, 0));
    h.settle();
    assert_eq!(h.stat(|s| &s.stale_completions), 2);
    assert_eq!(
        h.seen(),
        vec![Seen::Open, Seen::Close(CloseReason::PeerReset)]
    );
    assert!(h.freed(key));
}

#[test]
fn a_receive_without_a_buffer_closes_and_the_close_finishes() {
    let mut h = Harness::new();
    let key = h.accept();
    // The receive's last completion says 5 bytes but names no buffer of ours (flags 0):
    // the receive is over all the same, so the close it causes must finish.
    h.w.io.complete(key.name(OpKind::Recv), 5, false);
    h.settle();
    assert_eq!(
        h.seen(),
        vec![Seen::Open, Seen::Close(CloseReason::Io(libc::EIO))]
    );
    assert_eq!(h.stat(|s| &s.stale_completions), 0, "the receive's own");
    assert!(h.freed(key));
}

#[test]
fn a_lost_worker_reports_each_connection_exactly_once() {
    let mut h = Harness::new();
    let open = h.accept();
    // A connect that failed: reported, its descriptor's close in flight.
    let failed =
        h.w.insert(super::fd(), super::peer(), 2, None, Lifecycle::accepted());
    h.w.begin_close(failed, CloseReason::ConnectRefused);
    // A connect still in flight.
    h.connect();
    h.w.lose("a test");
    assert_eq!(
        h.seen(),
        vec![
            Seen::Open,
            Seen::ConnectFailed(CloseReason::ConnectRefused),
            Seen::Close(CloseReason::WorkerLost),
            Seen::ConnectFailed(CloseReason::WorkerLost),
        ]
    );
    assert_eq!(h.stat(|s| &s.workers_lost), 1);
    assert_eq!(h.w.conns.len(), 0);
    let _ = open;
}
