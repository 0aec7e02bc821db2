//! Bare non-blocking `recvmmsg`/`sendmmsg` UDP echo loop on one socket: the
//! "bare loop" anchor, about the least a server can do per datagram on Linux
//! without io_uring.
//!
//! - Everything is allocated once: 64 buffers of 64 KiB, 64 source
//!   addresses, 64 iovecs and the 64 `mmsghdr`s pointing at them.
//! - Receive: one `recvmmsg` takes up to 64 datagrams. The socket is
//!   non-blocking, so a batch smaller than 64 means the receive queue was
//!   empty at that moment: the loop then waits in `poll(2)` for readability
//!   before the next `recvmmsg`. A full batch is followed straight away by
//!   another `recvmmsg`. (So an idle-ish server makes three syscalls per
//!   batch, poll + recvmmsg + sendmmsg; a busy one two.)
//! - Echo: the same `mmsghdr`s, each iovec cut to the received length and
//!   the source address as destination, go to `sendmmsg`. If it sends fewer
//!   than asked (the socket's send buffer filled up, or a datagram failed)
//!   or fails with EAGAIN, the unsent tail is kept, the loop waits in `poll`
//!   for writability and retries it, and only then reads more. Any other
//!   error belongs to the first unsent datagram, which is dropped (as UDP
//!   may drop it), and the rest are retried.
//! - A receive error other than EAGAIN/EINTR ends the server: an unconnected
//!   UDP socket without IP_RECVERR is not handed ICMP errors, so one would
//!   be a real fault.

use std::io;
use std::mem::size_of;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, RawFd};

use crate::DATAGRAM_BUF_SIZE;

/// Datagrams per `recvmmsg`/`sendmmsg`.
const BATCH: usize = 64;

pub fn run(socket: UdpSocket) -> io::Result<()> {
    socket.set_nonblocking(true)?;
    let fd = socket.as_raw_fd();
    let mut batch = Batch::new();
    // Whether the receive queue may be empty: wait before the next receive.
    let mut wait = true;
    loop {
        if wait {
            wait_for(fd, libc::POLLIN)?;
        }
        let n = match batch.recv(fd) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait = true;
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                wait = false;
                continue;
            }
            Err(e) => return Err(e),
        };
        wait = n < BATCH;
        batch.echo(fd, n)?;
    }
}

/// The batch's buffers, addresses, iovecs and headers. `hdrs[i]` points at
/// `addrs[i]` and `iovs[i]`, and `iovs[i]` at buffer `i` of `bufs`; those
/// pointers are taken once from `as_mut_ptr` and the three Vecs are never
/// resized, so they stay valid for the Batch's life. `bufs`, `addrs` and
/// `iovs` are only ever accessed through those pointers (no references to
/// them are made after `new`); `hdrs` is passed afresh to each syscall.
struct Batch {
    // Only owned here (the kernel fills and reads them through the pointers).
    _bufs: Vec<u8>,
    _addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

impl Batch {
    fn new() -> Batch {
        let mut bufs = vec![0u8; BATCH * DATAGRAM_BUF_SIZE];
        // SAFETY: sockaddr_storage is a plain C struct of integers, for which
        // all zero bytes is a valid value.
        let mut addrs: Vec<libc::sockaddr_storage> = vec![unsafe { std::mem::zeroed() }; BATCH];
        let mut iovs: Vec<libc::iovec> = (0..BATCH)
            .map(|i| libc::iovec {
                iov_base: bufs.as_mut_ptr().wrapping_add(i * DATAGRAM_BUF_SIZE).cast(),
                iov_len: DATAGRAM_BUF_SIZE,
            })
            .collect();
        let hdrs = (0..BATCH)
            .map(|i| {
                // SAFETY: mmsghdr is a plain C struct of integers and raw
                // pointers, for which all zero bytes (null pointers) is a
                // valid value; the fields that matter are set below.
                let mut hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
                hdr.msg_hdr.msg_name = addrs.as_mut_ptr().wrapping_add(i).cast();
                hdr.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                hdr.msg_hdr.msg_iov = iovs.as_mut_ptr().wrapping_add(i);
                hdr.msg_hdr.msg_iovlen = 1;
                hdr
            })
            .collect();
        Batch {
            _bufs: bufs,
            _addrs: addrs,
            iovs,
            hdrs,
        }
    }

    /// Receives up to BATCH datagrams into `hdrs[..n]`; returns n.
    fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        // SAFETY: `hdrs` holds BATCH headers, each pointing at a whole
        // sockaddr_storage (msg_namelen says so) and at one iovec of a
        // DATAGRAM_BUF_SIZE buffer, all alive and not otherwise in use
        // (see `Batch`); the timeout pointer may be null.
        let r = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                0,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(r as usize)
    }

    /// Sends datagrams `0..n` just received back to their sources, waiting
    /// for writability whenever the socket cannot take more, then readies
    /// the headers for the next receive.
    fn echo(&mut self, fd: RawFd, n: usize) -> io::Result<()> {
        for i in 0..n {
            // The source address and its length (msg_namelen) stay as the
            // receive left them: they are the destination.
            let len = self.hdrs[i].msg_len as usize;
            self.set_iov_len(i, len);
        }
        let mut sent = 0;
        while sent < n {
            // SAFETY: `sent < n <= BATCH`, so the pointer and the n - sent
            // headers after it are inside `hdrs`; each points at its source
            // address and at an iovec covering the received bytes of its
            // buffer, all alive (see `Batch`).
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    self.hdrs.as_mut_ptr().add(sent),
                    (n - sent) as libc::c_uint,
                    0,
                )
            };
            if r >= 0 {
                sent += r as usize;
                if sent < n {
                    // Short: the send buffer is full (or the next datagram
                    // fails, which the retry will report).
                    wait_for(fd, libc::POLLOUT)?;
                }
                continue;
            }
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EAGAIN) => wait_for(fd, libc::POLLOUT)?,
                Some(libc::EINTR) => {}
                // The error is datagram `sent`'s: drop it, send the rest.
                _ => sent += 1,
            }
        }
        for i in 0..n {
            self.set_iov_len(i, DATAGRAM_BUF_SIZE);
            self.hdrs[i].msg_hdr.msg_namelen =
                size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        }
        Ok(())
    }

    fn set_iov_len(&mut self, i: usize, len: usize) {
        assert!(i < BATCH && len <= DATAGRAM_BUF_SIZE);
        let iov = self.iovs.as_mut_ptr().wrapping_add(i);
        // SAFETY: `i < BATCH`, so `iov` is inside `iovs`; it is written
        // through a raw pointer (no reference to `iovs`, see `Batch`), and no
        // syscall is using it now. `len` fits the iovec's buffer.
        unsafe { (*iov).iov_len = len };
    }
}

/// Waits until `fd` is ready for `events` (or has an error to report).
fn wait_for(fd: RawFd, events: libc::c_short) -> io::Result<()> {
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    loop {
        // SAFETY: `pfd` is one valid pollfd, and the count passed is 1.
        if unsafe { libc::poll(&mut pfd, 1, -1) } >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
