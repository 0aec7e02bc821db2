//! The machine alone, stepped by hand: every transition and the actions it returns.

use super::*;
use Action::{Cancel, Closing, Free, Report, Start};

fn wants() -> Wants {
    Wants {
        shutdown_write: false,
        has_out: false,
        has_unsent: false,
        pause_reading: false,
        jobs_pending: false,
    }
}

fn list(a: Actions) -> Vec<Action> {
    a.into_iter().collect()
}

/// An accepted, opened connection with its receive armed.
fn reading() -> Lifecycle {
    let mut l = Lifecycle::accepted();
    l.open();
    assert_eq!(list(l.plan(wants())), vec![Start(OpKind::Recv)]);
    l
}

#[test]
fn an_open_connection_arms_one_receive_and_sends_what_is_queued() {
    let mut l = reading();
    assert!(l.plan(wants()).is_empty(), "one receive at a time");
    let out = Wants {
        has_out: true,
        has_unsent: true,
        ..wants()
    };
    assert_eq!(list(l.plan(out)), vec![Start(OpKind::Send)]);
    assert!(l.plan(out).is_empty(), "one send at a time");
    assert!(l.completed(OpKind::Send, false));
    assert_eq!(list(l.plan(out)), vec![Start(OpKind::Send)], "the rest");
    assert_eq!(l.ledger().len(), 2);
}

#[test]
fn a_close_cancels_what_is_in_flight_and_reports_only_when_all_completed() {
    let mut l = reading();
    l.plan(Wants {
        has_out: true,
        has_unsent: true,
        ..wants()
    });
    let a = l.close(CloseReason::Local).expect("first close");
    assert_eq!(
        list(a),
        vec![Closing, Cancel(OpKind::Recv), Cancel(OpKind::Send)]
    );
    assert_eq!(l.closing_reason(), Some(CloseReason::Local));
    assert!(l.completed(OpKind::Recv, false));
    assert!(l.settle().is_empty(), "the send is still in flight");
    assert!(l.completed(OpKind::Send, false));
    assert_eq!(list(l.settle()), vec![Report, Start(OpKind::Close)]);
    assert!(l.is_closed());
    assert!(l.settle().is_empty(), "the descriptor's close is in flight");
    assert!(l.completed(OpKind::Close, false));
    assert_eq!(list(l.settle()), vec![Free]);
}

#[test]
fn the_first_close_reason_is_the_one_reported() {
    let mut l = Lifecycle::accepted();
    l.open();
    let a = l.close(CloseReason::SlowReader).unwrap();
    assert_eq!(
        list(a),
        vec![Closing, Report, Start(OpKind::Close)],
        "nothing in flight: reported at once"
    );
    assert_eq!(l.close(CloseReason::Local), None);
    l.ask(CloseRequest::Now(CloseReason::Aborted));
    assert!(
        l.plan(wants()).is_empty(),
        "a closed connection plans nothing"
    );
    assert_eq!(l.request(), CloseRequest::Now(CloseReason::SlowReader));
}

#[test]
fn a_multishot_receive_stays_in_the_ledger_until_its_final_completion() {
    let mut l = reading();
    assert!(l.completed(OpKind::Recv, true));
    assert!(l.ledger().has(OpKind::Recv));
    assert!(l.plan(wants()).is_empty());
    // ENOBUFS ends it: re-armed on the next plan.
    assert!(l.completed(OpKind::Recv, false));
    assert_eq!(list(l.plan(wants())), vec![Start(OpKind::Recv)]);
}

#[test]
fn eof_leaves_the_connection_half_open_and_never_rearms() {
    let mut l = reading();
    assert!(l.completed(OpKind::Recv, false));
    l.read_eof();
    assert!(l.plan(wants()).is_empty());
    assert_eq!(
        l.state(),
        State::Open {
            read: ReadSide::Eof,
            write: WriteSide::Idle,
            close: CloseRequest::None,
        }
    );
    // It can still send.
    let out = Wants {
        has_out: true,
        has_unsent: true,
        ..wants()
    };
    assert_eq!(list(l.plan(out)), vec![Start(OpKind::Send)]);
}

#[test]
fn a_graceful_close_stops_reading_flushes_then_closes() {
    let mut l = reading();
    l.ask(CloseRequest::AfterFlush(CloseReason::Local));
    let flushing = Wants {
        has_out: true,
        has_unsent: true,
        ..wants()
    };
    assert_eq!(
        list(l.plan(flushing)),
        vec![Start(OpKind::Send), Cancel(OpKind::Recv)]
    );
    assert!(l.plan(flushing).is_empty(), "cancelled once");
    assert!(l.completed(OpKind::Recv, false));
    assert!(l.completed(OpKind::Send, false));
    assert_eq!(
        list(l.plan(wants())),
        vec![Closing, Report, Start(OpKind::Close)]
    );
}

#[test]
fn a_graceful_close_waits_for_outstanding_jobs_as_for_queued_bytes() {
    let mut l = reading();
    l.ask(CloseRequest::AfterFlush(CloseReason::Local));
    let waiting = Wants {
        jobs_pending: true,
        ..wants()
    };
    assert_eq!(list(l.plan(waiting)), vec![Cancel(OpKind::Recv)]);
    assert!(l.completed(OpKind::Recv, false));
    assert!(l.plan(waiting).is_empty(), "a job is still out");
    // Its result queued a reply: sent, then the close.
    let reply = Wants {
        has_out: true,
        has_unsent: true,
        ..wants()
    };
    assert_eq!(list(l.plan(reply)), vec![Start(OpKind::Send)]);
    assert!(l.completed(OpKind::Send, false));
    assert_eq!(
        list(l.plan(wants())),
        vec![Closing, Report, Start(OpKind::Close)]
    );
}

#[test]
fn shutdown_write_waits_for_the_queue_then_sends_fin_once() {
    let mut l = reading();
    let mut w = Wants {
        shutdown_write: true,
        has_out: true,
        has_unsent: true,
        ..wants()
    };
    assert_eq!(list(l.plan(w)), vec![Start(OpKind::Send)], "queue first");
    assert!(l.completed(OpKind::Send, false));
    w.has_out = false;
    w.has_unsent = false;
    assert_eq!(list(l.plan(w)), vec![Start(OpKind::Shutdown)]);
    assert!(l.plan(w).is_empty(), "once");
    w.has_out = true; // a send after the shutdown is never started
    assert!(l.plan(w).is_empty());
}

#[test]
fn pausing_reading_cancels_the_receive_and_resuming_rearms_it() {
    let mut l = reading();
    let paused = Wants {
        pause_reading: true,
        ..wants()
    };
    assert_eq!(list(l.plan(paused)), vec![Cancel(OpKind::Recv)]);
    assert!(
        l.plan(wants()).is_empty(),
        "not before the cancel completes"
    );
    assert!(l.completed(OpKind::Recv, false));
    assert!(l.plan(paused).is_empty(), "still paused");
    assert_eq!(list(l.plan(wants())), vec![Start(OpKind::Recv)]);
}

#[test]
fn a_connect_that_fails_is_reported_after_both_its_completions() {
    let mut l = Lifecycle::connecting();
    assert!(
        l.plan(wants()).is_empty(),
        "nothing planned while connecting"
    );
    assert!(l.completed(OpKind::Connect, false));
    assert!(l.is_connecting(), "the shell checks the result");
    let a = l.close(CloseReason::ConnectRefused).unwrap();
    assert_eq!(list(a), vec![Closing], "the linked timeout is still due");
    assert!(l.completed(OpKind::ConnectTimeout, false));
    assert_eq!(list(l.settle()), vec![Report, Start(OpKind::Close)]);
    assert!(!l.was_opened());
}

#[test]
fn a_connect_closed_by_shutdown_does_not_open_when_it_completes() {
    let mut l = Lifecycle::connecting();
    let a = l.close(CloseReason::Shutdown).unwrap();
    assert_eq!(list(a), vec![Closing, Cancel(OpKind::Connect)]);
    assert!(l.completed(OpKind::Connect, false));
    assert!(!l.is_connecting(), "a close came first");
    assert!(l.completed(OpKind::ConnectTimeout, false));
    assert_eq!(list(l.settle()), vec![Report, Start(OpKind::Close)]);
}

#[test]
fn a_completion_the_ledger_does_not_hold_is_not_this_connections() {
    let mut l = reading();
    assert!(!l.completed(OpKind::Send, false));
    assert!(!l.completed(OpKind::Shutdown, false));
    assert!(!l.completed(OpKind::Close, true));
    assert_eq!(l.ledger().len(), 1);
}

#[test]
fn the_machine_stays_small() {
    let size = std::mem::size_of::<Lifecycle>();
    assert!(
        size <= 48,
        "{size} bytes (State {})",
        std::mem::size_of::<State>()
    );
}

#[test]
fn the_first_ask_stands_except_that_now_replaces_after_flush() {
    let mut l = reading();
    l.ask(CloseRequest::AfterFlush(CloseReason::Local));
    l.ask(CloseRequest::AfterFlush(CloseReason::Shutdown));
    assert_eq!(l.request(), CloseRequest::AfterFlush(CloseReason::Local));
    l.peer_closed();
    assert_eq!(
        l.request(),
        CloseRequest::AfterFlush(CloseReason::PeerClosed)
    );
    l.ask(CloseRequest::Now(CloseReason::SlowReader));
    l.ask(CloseRequest::Now(CloseReason::Aborted));
    assert_eq!(l.request(), CloseRequest::Now(CloseReason::SlowReader));
    let a = list(l.plan(wants()));
    assert_eq!(a, vec![Closing, Cancel(OpKind::Recv)]);
    assert!(Lifecycle::connecting().request() == CloseRequest::None);
}

#[test]
fn a_close_with_every_operation_in_flight_fits_one_transition() {
    let mut l = Lifecycle::connecting();
    l.open(); // as if connected, with the connect's completions still due
    l.plan(Wants {
        has_out: true,
        has_unsent: true,
        ..wants()
    });
    let a = l.close(CloseReason::Local).unwrap();
    assert_eq!(
        list(a),
        vec![
            Closing,
            Cancel(OpKind::Recv),
            Cancel(OpKind::Send),
            Cancel(OpKind::Connect)
        ]
    );
}

#[test]
fn actions_pack_every_kind_and_keep_their_order() {
    for k in OpKind::ALL {
        let mut a = Actions::default();
        for act in [Closing, Start(k), Cancel(k), Report, Free] {
            a.push(act);
        }
        assert_eq!(list(a), vec![Closing, Start(k), Cancel(k), Report, Free]);
    }
    assert!(Actions::default().is_empty());
}
