//! A worker's watches on the fake backend: the error path real descriptors cannot be
//! made to take on both backends, and a notification racing the shutdown.

use super::{Harness, Seen};
use crate::notify::{Interest, RemoveReason, WatchId};
use crate::sys::fake::FakeOp;
use crate::sys::fd_info::FileIdentity;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

/// One end of a fresh socket pair (the fake never touches it) and its file.
fn socket() -> (UnixStream, OwnedFd, FileIdentity) {
    let (a, b) = UnixStream::pair().unwrap();
    let fd = OwnedFd::from(b);
    let (file, _) = crate::sys::fd_info::identify(fd.as_fd()).unwrap();
    (a, fd, file)
}

/// Watch a fresh socket with `token`; returns its peer and the poll's name.
fn watch(h: &mut Harness, interest: Interest, token: u64) -> (UnixStream, u64) {
    let (a, fd, file) = socket();
    h.w.start_watch(WatchId::new(0, token), fd, file, interest, token);
    let (FakeOp::Poll, name) = *h.w.io.started.last().unwrap() else {
        panic!("no poll started: {:?}", h.w.io.started)
    };
    (a, name)
}

#[test]
fn a_backend_error_ends_the_watch_with_one_notice() {
    let mut h = Harness::new();
    let (_peer, poll) = watch(&mut h, Interest::READABLE.edge(), 41);
    h.w.io.complete(poll, libc::POLLIN as i32, true);
    h.w.io.complete(poll, -libc::EINVAL, false);
    h.settle();
    let failed = RemoveReason::Failed {
        errno: libc::EINVAL,
    };
    assert_eq!(
        h.seen(),
        vec![Seen::Ready(41), Seen::WatchRemoved(41, failed)]
    );
    assert_eq!(h.stat(|s| &s.watches_failed), 1);
    assert!(h.w.watches.is_empty());
}

#[test]
fn a_notification_racing_the_shutdown_is_not_delivered() {
    let mut h = Harness::new();
    let (_peer, poll) = watch(&mut h, Interest::READABLE.edge(), 42);
    h.w.io.complete(poll, libc::POLLIN as i32, true); // posted, not reaped
    h.w.begin_shutdown(None);
    h.settle();
    let seen = h.seen();
    assert_eq!(seen, vec![Seen::WatchRemoved(42, RemoveReason::Shutdown)]);
    assert!(!h.w.io.is_pending(poll));
    assert_eq!(h.stat(|s| &s.watches_shut_down), 1);
    // And a watch that arrives while stopping ends before it starts, noticed all the same.
    let (_peer2, fd, file) = socket();
    let polls = h.w.io.started.len();
    h.w.start_watch(WatchId::new(0, 43), fd, file, Interest::READABLE, 43);
    assert_eq!(h.w.io.started.len(), polls, "nothing started");
    assert_eq!(
        h.seen().last(),
        Some(&Seen::WatchRemoved(43, RemoveReason::Shutdown))
    );
}
