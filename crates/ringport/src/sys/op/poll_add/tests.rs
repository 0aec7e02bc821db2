//! POLL_ADD on both drivers, built directly, with socket pairs: one-shot, multishot
//! (edge-triggered on both: each write reports once, lasting readiness not again), a
//! one-shot of readiness already there, and cancels.

use super::*;
use crate::sys::driver::Driver;
use crate::sys::op::testing::{driver, settle, wait_until};
use crate::sys::op::Cancel;
use crate::sys::poll::PollDriver;
use crate::sys::uring::UringDriver;
use crate::sys::Completion;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

const POLLIN: u32 = libc::POLLIN as u32;
const POLLOUT: u32 = libc::POLLOUT as u32;
/// Long enough for a completion that should not come to have come.
const QUIET: Duration = Duration::from_millis(30);

/// The completions named `ud`.
fn named(got: &[Completion], ud: u64) -> Vec<Completion> {
    got.iter().filter(|c| c.user_data == ud).copied().collect()
}

fn one_shot_reports_readable_after_a_write<D: Driver>() {
    let Some(mut d) = driver::<D>() else { return };
    let (mut a, b) = UnixStream::pair().expect("socketpair");
    d.start(PollAdd::oneshot(b.as_raw_fd(), POLLIN), 1);
    let mut got = Vec::new();
    settle(&mut d, &mut got, QUIET);
    assert!(
        got.is_empty(),
        "readable before anything was written: {got:?}"
    );
    a.write_all(b"x").unwrap();
    wait_until(&mut d, &mut got, |g| !g.is_empty());
    settle(&mut d, &mut got, QUIET);
    assert_eq!(got.len(), 1, "one-shot: one completion, {got:?}");
    assert_ne!(got[0].result as u32 & POLLIN, 0, "{:?}", got[0]);
    assert!(!got[0].more());
}

fn one_shot_of_readiness_already_there_completes_at_once<D: Driver>() {
    let Some(mut d) = driver::<D>() else { return };
    let (_a, b) = UnixStream::pair().expect("socketpair");
    // A fresh socket is writable.
    d.start(PollAdd::oneshot(b.as_raw_fd(), POLLOUT), 2);
    let mut got = Vec::new();
    wait_until(&mut d, &mut got, |g| !g.is_empty());
    assert_eq!(got[0].user_data, 2);
    assert_eq!(got[0].result as u32 & (POLLOUT | POLLIN), POLLOUT);
    assert!(!got[0].more());
}

fn multishot_reports_each_write_and_a_cancel_ends_it<D: Driver>() {
    let Some(mut d) = driver::<D>() else { return };
    let (mut a, mut b) = UnixStream::pair().expect("socketpair");
    let (watch, cancel) = (3u64, 4u64);
    let fd = b.as_raw_fd();
    d.start(PollAdd::multishot(fd, POLLIN), watch);
    let mut got = Vec::new();
    let mut buf = [0u8; 16];

    a.write_all(b"1").unwrap();
    wait_until(&mut d, &mut got, |g| !g.is_empty());
    // Edge-triggered: the byte stays unread, yet nothing more is reported.
    settle(&mut d, &mut got, QUIET);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(b.read(&mut buf).unwrap(), 1);

    // A one-shot armed while data is already there completes at once; the multishot
    // sees no new edge from it.
    a.write_all(b"2").unwrap();
    wait_until(&mut d, &mut got, |g| g.len() >= 2);
    d.start(PollAdd::oneshot(fd, POLLIN), 5);
    wait_until(&mut d, &mut got, |g| g.len() >= 3);
    settle(&mut d, &mut got, QUIET);
    assert_eq!(b.read(&mut buf).unwrap(), 1);
    let reports = named(&got, watch);
    assert_eq!(reports.len(), 2, "one report per write: {got:?}");
    assert!(reports
        .iter()
        .all(|c| c.more() && c.result as u32 & POLLIN != 0));
    assert_eq!(named(&got, 5).len(), 1, "{got:?}");

    // The cancel ends it: a final -ECANCELED, and the cancel's own 0.
    got.clear();
    d.start(Cancel { target: watch, fd }, cancel);
    wait_until(&mut d, &mut got, |g| g.len() >= 2);
    let end = named(&got, watch);
    assert_eq!(end.len(), 1, "{got:?}");
    assert_eq!((end[0].result, end[0].more()), (-libc::ECANCELED, false));
    assert_eq!(named(&got, cancel)[0].result, 0);

    // Nothing after the end; a second cancel finds nothing.
    got.clear();
    a.write_all(b"3").unwrap();
    settle(&mut d, &mut got, QUIET);
    assert!(
        got.is_empty(),
        "reported after its final completion: {got:?}"
    );
    d.start(Cancel { target: watch, fd }, cancel);
    wait_until(&mut d, &mut got, |g| !g.is_empty());
    assert_eq!((got[0].user_data, got[0].result), (cancel, -libc::ENOENT));
}

#[test]
fn uring_one_shot_reports_readable_after_a_write() {
    one_shot_reports_readable_after_a_write::<UringDriver>();
}

#[test]
fn poll_one_shot_reports_readable_after_a_write() {
    one_shot_reports_readable_after_a_write::<PollDriver>();
}

#[test]
fn uring_one_shot_of_readiness_already_there_completes_at_once() {
    one_shot_of_readiness_already_there_completes_at_once::<UringDriver>();
}

#[test]
fn poll_one_shot_of_readiness_already_there_completes_at_once() {
    one_shot_of_readiness_already_there_completes_at_once::<PollDriver>();
}

#[test]
fn uring_multishot_reports_each_write_and_a_cancel_ends_it() {
    multishot_reports_each_write_and_a_cancel_ends_it::<UringDriver>();
}

#[test]
fn poll_multishot_reports_each_write_and_a_cancel_ends_it() {
    multishot_reports_each_write_and_a_cancel_ends_it::<PollDriver>();
}
