//! The system calls of the readiness backend, each with the memory it touches spelled out.

use crate::sys::outbound::Chunk;
use socket2::SockRef;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, RawFd};

/// What a non-blocking call did.
pub(super) enum Outcome {
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

/// Retry a call interrupted by a signal.
fn retry(mut f: impl FnMut() -> isize) -> Outcome {
    loop {
        let rc = f();
        if rc < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return outcome(rc);
    }
}

/// Receive into `buf` without blocking.
pub(super) fn recv(fd: RawFd, buf: &mut [u8]) -> Outcome {
    retry(|| {
        // SAFETY: writes at most `buf.len()` bytes into `buf`, which we borrow mutably.
        unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) }
    })
}

/// Read an eventfd counter without blocking.
pub(super) fn read_counter(fd: RawFd) -> Outcome {
    let mut value: u64 = 0;
    retry(|| {
        // SAFETY: reads 8 bytes into a live local u64.
        unsafe {
            libc::read(
                fd,
                (&mut value as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        }
    })
}

/// Accept one connection as a non-blocking, close-on-exec socket.
pub(super) fn accept(listener: RawFd) -> Outcome {
    retry(|| {
        // SAFETY: null address pointers ask for no peer address; nothing else is passed.
        unsafe {
            libc::accept4(
                listener,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            ) as isize
        }
    })
}

/// Send the chunks, in order, with one sendmsg (no SIGPIPE, no blocking). `iov` is
/// scratch space.
pub(super) fn send_chunks(fd: RawFd, chunks: &[Chunk], iov: &mut Vec<libc::iovec>) -> Outcome {
    if let [one] = chunks {
        // One chunk (the usual case): plain send, no message header to build and copy in.
        let bytes = one.as_slice();
        return retry(|| {
            // SAFETY: reads at most `bytes.len()` bytes from `bytes`, borrowed for the call.
            unsafe {
                libc::send(
                    fd,
                    bytes.as_ptr().cast(),
                    bytes.len(),
                    libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                )
            }
        });
    }
    iov.clear();
    iov.extend(chunks.iter().map(|c| libc::iovec {
        iov_base: c.as_slice().as_ptr() as *mut libc::c_void,
        iov_len: c.as_slice().len(),
    }));
    // SAFETY: msghdr is plain data; all-zero is its empty value.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_iov = iov.as_mut_ptr();
    hdr.msg_iovlen = iov.len() as _;
    retry(|| {
        // SAFETY: the header points at `iov`, whose entries point into `chunks`; both are
        // borrowed for this call and the kernel only reads them during it.
        unsafe { libc::sendmsg(fd, &hdr, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) }
    })
}

/// Run `f` on a descriptor the caller keeps open for the duration of the call.
fn with_sock<R>(fd: RawFd, f: impl FnOnce(SockRef<'_>) -> R) -> R {
    // SAFETY: every caller passes a descriptor it owns or that the engine keeps open
    // until its close is submitted, which happens after this call.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    f(SockRef::from(&borrowed))
}

/// Put a descriptor in non-blocking mode.
pub(super) fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    with_sock(fd, |s| s.set_nonblocking(true))
}

/// Start a non-blocking connect: Done(0) if it completed at once, WouldBlock if it is
/// in progress.
pub(super) fn start_connect(fd: RawFd, addr: SocketAddr) -> Outcome {
    match with_sock(fd, |s| s.connect(&addr.into())) {
        Ok(()) => Outcome::Done(0),
        Err(e) => match e.raw_os_error() {
            Some(libc::EINPROGRESS) | Some(libc::EAGAIN) => Outcome::WouldBlock,
            Some(code) => Outcome::Failed(code),
            None => Outcome::Failed(libc::EIO),
        },
    }
}

/// The pending error of a socket (SO_ERROR): 0 when a connect succeeded.
pub(super) fn take_error(fd: RawFd) -> i32 {
    match with_sock(fd, |s| s.take_error()) {
        Ok(None) => 0,
        Ok(Some(e)) => e.raw_os_error().unwrap_or(libc::EIO),
        Err(e) => e.raw_os_error().unwrap_or(libc::EIO),
    }
}

/// shutdown(SHUT_WR).
pub(super) fn shutdown_write(fd: RawFd) -> i32 {
    match with_sock(fd, |s| s.shutdown(std::net::Shutdown::Write)) {
        Ok(()) => 0,
        Err(e) => -e.raw_os_error().unwrap_or(libc::EIO),
    }
}
