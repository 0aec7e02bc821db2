//! The watch table on the fake backend: the paths real descriptors reach only by luck of
//! timing (a notification racing a cancel, a modify while a cancel is in flight, a
//! backend error, a multishot the backend ends) driven step by step.

use super::*;
use crate::core::op_name::decode;
use crate::sys::fake::{FakeDriver, FakeOp};
use std::os::unix::net::UnixStream;

const POLLIN: i32 = libc::POLLIN as i32;

struct Rig {
    w: Watches,
    io: FakeDriver,
    _peer: UnixStream,
    serial: u64,
}

fn rig() -> Rig {
    Rig {
        w: Watches::default(),
        io: FakeDriver::default(),
        _peer: UnixStream::pair().unwrap().0,
        serial: 0,
    }
}

impl Rig {
    fn watch(&mut self, interest: Interest) -> ConnKey {
        let (a, b) = UnixStream::pair().unwrap();
        self._peer = a;
        let fd = OwnedFd::from(b);
        let (file, _) = crate::sys::fd_info::identify(fd.as_fd()).unwrap();
        self.serial += 1;
        let id = WatchId::new(0, self.serial);
        self.w.insert(&mut self.io, id, fd, file, interest, 7)
    }

    /// Feed what the fake completed to the table.
    fn run(&mut self) -> Vec<Event> {
        let mut done = Vec::new();
        self.io.drain(&mut done);
        let mut out = Vec::new();
        for c in done {
            if let Some((OpKind::Watch, key)) = decode(c.user_data) {
                out.extend(self.w.complete(&mut self.io, key, &c));
            }
        }
        out
    }

    /// Polls started so far (of any watch), with their multishot flag.
    fn polls(&self) -> usize {
        self.io
            .started
            .iter()
            .filter(|(op, _)| *op == FakeOp::Poll)
            .count()
    }
}

fn removal(events: &[Event]) -> RemoveReason {
    match events {
        [Event::Removed(r)] => r.notice.reason,
        other => panic!("expected one removal, got {other:?}"),
    }
}

#[test]
fn an_error_it_did_not_ask_for_removes_the_watch_as_failed() {
    let mut r = rig();
    let key = r.watch(Interest::READABLE.edge());
    r.io.complete(key.name(OpKind::Watch), -libc::EINVAL, false);
    let events = r.run();
    assert_eq!(
        removal(&events),
        RemoveReason::Failed {
            errno: libc::EINVAL
        }
    );
    assert!(r.w.is_empty());
    assert_eq!(
        r.w.remove(&mut r.io, key, RemoveReason::Removed)
            .unwrap_err(),
        ()
    );
}

#[test]
fn a_notification_racing_the_removal_is_dropped() {
    let mut r = rig();
    let key = r.watch(Interest::READABLE.edge());
    let name = key.name(OpKind::Watch);
    r.io.complete(name, POLLIN, true); // posted, not yet reaped
    assert!(r
        .w
        .remove(&mut r.io, key, RemoveReason::Removed)
        .unwrap()
        .is_none());
    let events = r.run();
    assert_eq!(
        removal(&events),
        RemoveReason::Removed,
        "and no Ready before it"
    );
    assert_eq!(r.io.pending_count(), 0);
}

#[test]
fn modify_while_a_cancel_is_in_flight_arms_the_latest_interest_once() {
    let mut r = rig();
    let key = r.watch(Interest::READABLE.edge());
    assert!(r.w.modify(&mut r.io, key, Interest::WRITABLE));
    assert!(r.w.modify(&mut r.io, key, Interest::HANGUP.oneshot()));
    assert_eq!(r.polls(), 1, "the new poll waits for the old one's end");
    assert!(r.run().is_empty());
    assert_eq!(r.polls(), 2);
    let (FakeOp::Poll, ud) = *r.io.started.last().unwrap() else {
        panic!("{:?}", r.io.started)
    };
    assert_eq!(ud, key.name(OpKind::Watch));
    assert_eq!(r.w.view(key).unwrap().interest, Interest::HANGUP.oneshot());
}

#[test]
fn a_removal_during_a_modify_wins_and_the_first_reason_stands() {
    let mut r = rig();
    let key = r.watch(Interest::READABLE);
    r.w.modify(&mut r.io, key, Interest::WRITABLE);
    assert!(r
        .w
        .remove(&mut r.io, key, RemoveReason::Shutdown)
        .unwrap()
        .is_none());
    assert!(r
        .w
        .remove(&mut r.io, key, RemoveReason::Removed)
        .unwrap()
        .is_none());
    assert_eq!(removal(&r.run()), RemoveReason::Shutdown);
    assert_eq!(r.polls(), 1, "not armed again");
}

#[test]
fn a_completion_after_the_removal_reaches_nothing() {
    let mut r = rig();
    let key = r.watch(Interest::READABLE.oneshot());
    r.io.complete(key.name(OpKind::Watch), POLLIN, false);
    assert!(matches!(r.run()[..], [Event::Ready { .. }]));
    // One-shot, fired: no poll in flight, so the removal is at once.
    let now = r.w.remove(&mut r.io, key, RemoveReason::Removed).unwrap();
    assert!(now.is_some());
    let forged = Completion::new(key.name(OpKind::Watch), POLLIN, false, 0);
    assert!(r.w.complete(&mut r.io, key, &forged).is_none());
}

#[test]
fn persistent_watches_are_armed_again_after_their_notification_one_shots_when_asked() {
    let mut r = rig();
    let level = r.watch(Interest::READABLE);
    let edge = r.watch(Interest::READABLE.edge());
    let once = r.watch(Interest::READABLE.oneshot());
    assert_eq!(r.polls(), 3);
    // The level poll is one-shot; the edge multishot is ended by the backend.
    for key in [level, edge, once] {
        r.io.complete(key.name(OpKind::Watch), POLLIN, false);
    }
    assert_eq!(r.run().len(), 3);
    for key in [level, edge, once] {
        r.w.after_ready(&mut r.io, key);
    }
    assert_eq!(r.polls(), 5, "level and edge again, not the one-shot");
    assert!(r.w.rearm(&mut r.io, once));
    assert!(r.w.rearm(&mut r.io, once), "armed already: nothing more");
    assert_eq!(r.polls(), 6);
}
