//! Outbound connects: refused, cancelled by a shutdown, and the linked timeout's
//! completion arriving after the connect's.

use super::{Harness, Seen};
use crate::core::OpKind;
use crate::error::CloseReason;
use crate::sys::fake::FakeOp;

#[test]
fn a_refused_connect_is_reported_once_after_both_its_completions() {
    let mut h = Harness::new();
    let key = h.connect();
    assert_eq!(
        h.started(key),
        vec![FakeOp::Connect, FakeOp::ConnectTimeout]
    );
    h.complete(key, OpKind::Connect, -libc::ECONNREFUSED);
    h.settle();
    assert!(h.seen().is_empty(), "the linked timeout is still due");
    assert!(!h.freed(key));
    h.complete(key, OpKind::ConnectTimeout, -libc::ECANCELED);
    h.settle();
    assert_eq!(
        h.seen(),
        vec![Seen::ConnectFailed(CloseReason::ConnectRefused)]
    );
    assert_eq!(h.stat(|s| &s.connect_failed), 1);
    assert!(h.freed(key));
}

#[test]
fn shutdown_with_a_connect_in_flight_cancels_it_and_reports_it_failed() {
    let mut h = Harness::new();
    let key = h.connect();
    h.w.begin_shutdown(None);
    let connect = key.name(OpKind::Connect);
    assert!(h.started(key).contains(&FakeOp::Cancel(connect)));
    h.settle();
    assert_eq!(h.seen(), vec![Seen::ConnectFailed(CloseReason::Shutdown)]);
    assert!(h.freed(key));
}

#[test]
fn a_connect_that_succeeds_opens_and_its_timeouts_completion_is_absorbed() {
    let mut h = Harness::new();
    let key = h.connect();
    h.complete(key, OpKind::Connect, 0);
    h.step();
    assert_eq!(h.seen(), vec![Seen::Open]);
    assert!(h.pending(key, OpKind::Recv), "reading once connected");
    h.complete(key, OpKind::ConnectTimeout, -libc::ECANCELED);
    h.step();
    assert_eq!(h.stat(|s| &s.stale_completions), 0);
    assert_eq!(h.stat(|s| &s.connected), 1);
    assert_eq!(h.w.conns.get_mut(key).unwrap().conn.life.ledger().len(), 1);
}

#[test]
fn a_connect_that_times_out_is_reported_as_a_connect_timeout() {
    let mut h = Harness::new();
    let key = h.connect();
    // io_uring: the linked timeout fires (-ETIME) and cancels the connect (-ECANCELED).
    h.complete(key, OpKind::ConnectTimeout, -libc::ETIME);
    h.complete(key, OpKind::Connect, -libc::ECANCELED);
    h.settle();
    assert_eq!(
        h.seen(),
        vec![Seen::ConnectFailed(CloseReason::ConnectTimeout)]
    );
    assert!(h.freed(key));
}
