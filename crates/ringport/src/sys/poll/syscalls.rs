//! What every readiness-backend system call shares: the outcome of a non-blocking call,
//! the retry on EINTR, and borrowing a descriptor for socket2. Each operation's own calls
//! are in its file under `sys/op/`, with the memory they touch spelled out.

use socket2::SockRef;
use std::io;
use std::os::fd::{BorrowedFd, RawFd};

/// What a non-blocking call did.
pub(crate) enum Outcome {
    /// It transferred this many bytes (or returned this fd).
    Done(usize),
    /// Nothing to do now (EAGAIN).
    WouldBlock,
    /// It failed with this errno.
    Failed(i32),
}

fn outcome(rc: isize) -> Outcome {
    if rc >= 0 {
        return Outcome::Done(rc as usize);
    }
    match io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
    {
        libc::EAGAIN => Outcome::WouldBlock,
        e => Outcome::Failed(e),
    }
}

/// Run a system call (`f` returns its raw result), retrying it when a signal
/// interrupted it.
pub(crate) fn retry(mut f: impl FnMut() -> isize) -> Outcome {
    loop {
        let rc = f();
        if rc < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return outcome(rc);
    }
}

/// Run `f` on a descriptor the caller keeps open for the duration of the call.
pub(crate) fn with_sock<R>(fd: RawFd, f: impl FnOnce(SockRef<'_>) -> R) -> R {
    // SAFETY: every caller passes a descriptor it owns or that the engine keeps open
    // until its close is submitted, which happens after this call.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    f(SockRef::from(&borrowed))
}

/// Put a descriptor in non-blocking mode.
pub(crate) fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    with_sock(fd, |s| s.set_nonblocking(true))
}

/// An errno as a completion result (negative), EIO when the error has none.
pub(crate) fn neg_errno(e: &io::Error) -> i32 {
    -e.raw_os_error().unwrap_or(libc::EIO)
}
