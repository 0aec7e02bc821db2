//! `Uring`: one worker's ring with a safe submission API. Every operation that lends
//! memory to the kernel keeps that memory here until its completion has been drained.

use super::probe;
use crate::sys::outbound::{Chunk, Outbound};
use crate::sys::send_table::{Reusable, SendTable};
use crate::sys::Completion;
use io_uring::{opcode, squeue, types, EnterFlags, IoUring};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Most iovecs one sendmsg may carry (Linux UIO_MAXIOV).
const IOV_MAX: usize = 1024;

/// Submissions that may fail in a row (other than EBUSY and EINTR, which are part of
/// normal operation) before the ring is given up on. Each failure waits a millisecond, so
/// a transient shortage (ENOMEM, EAGAIN) has this many milliseconds to pass.
const SUBMIT_FAILURES_MAX: u32 = 100;

/// Consecutive submit failures, and the verdict once there were too many.
#[derive(Debug, Default)]
struct SubmitFailures {
    in_a_row: u32,
    /// The errno that broke the ring: it takes no more entries, and the next wait
    /// returns this error (the worker stops and is reported lost).
    broken: Option<i32>,
}

impl SubmitFailures {
    /// A submit failed with `errno`; true if it may be tried again.
    fn failed(&mut self, errno: i32) -> bool {
        self.in_a_row += 1;
        if self.in_a_row >= SUBMIT_FAILURES_MAX {
            self.broken = Some(errno);
        }
        self.broken.is_none()
    }

    fn succeeded(&mut self) {
        self.in_a_row = 0;
    }

    /// `what` failed with `e`: count it; if it may be tried again, log the first of a
    /// run and wait a millisecond (true), else log that the ring is given up (false).
    fn retry_after(&mut self, e: &io::Error, what: &str) -> bool {
        if self.failed(e.raw_os_error().unwrap_or(libc::EIO)) {
            if self.in_a_row == 1 {
                tracing::warn!(error = %e, "{what} failed; retrying");
            }
            std::thread::sleep(Duration::from_millis(1));
            true
        } else {
            tracing::error!(error = %e, tries = SUBMIT_FAILURES_MAX, "{what} keeps failing; giving the ring up");
            false
        }
    }
}

/// An in-flight sendmsg: the header and iovecs the kernel reads, and the chunks they
/// point into, moved here from the connection so they outlive the operation.
struct SendOp {
    hdr: libc::msghdr,
    iov: Vec<libc::iovec>,
    chunks: Vec<Chunk>,
    /// The operation's name, to know its completion when the driver reaps it.
    user_data: u64,
    /// Its completion has been reaped: the kernel is done with the memory above.
    reaped: bool,
}

impl Default for SendOp {
    fn default() -> Self {
        SendOp {
            // SAFETY: msghdr is plain data; all-zero is its empty value.
            hdr: unsafe { std::mem::zeroed() },
            iov: Vec::new(),
            chunks: Vec::new(),
            user_data: 0,
            reaped: false,
        }
    }
}

impl Reusable for SendOp {
    fn room(&self) -> usize {
        self.chunks.capacity().max(self.iov.capacity())
    }

    fn shrink_room(&mut self, max: usize) {
        self.chunks.shrink_to(max);
        self.iov.shrink_to(max);
    }
}

/// An in-flight connect: the address and the linked timeout's timespec.
struct ConnectOp {
    addr: socket2::SockAddr,
    timeout: types::Timespec,
    /// The names of the connect and of its linked timeout, and how many of those two
    /// completions have been reaped (the memory is the kernel's until both are).
    user_data: [u64; 2],
    reaped: u8,
}

/// Note a reaped completion of a send or connect, whose memory the driver keeps until
/// then: a send's or connect's key is the low 32 bits of its name (the slot, in the
/// engine's naming), so one look at that key's op says whether this is its completion.
fn note_reaped(
    sends: &mut SendTable<SendOp>,
    connects: &mut [Option<Box<ConnectOp>>],
    user_data: u64,
) {
    let key = user_data as u32;
    if let Some(op) = sends.get_mut(key).filter(|op| op.user_data == user_data) {
        op.reaped = true;
    }
    if let Some(Some(op)) = connects.get_mut(key as usize) {
        if op.user_data.contains(&user_data) {
            op.reaped += 1;
        }
    }
}

/// The kernel's `struct io_uring_getevents_arg` (the io-uring crate has no setter for
/// `min_wait_usec`, added in Linux 6.12).
#[repr(C)]
struct GetEventsArg {
    sigmask: u64,
    sigmask_sz: u32,
    min_wait_usec: u32,
    ts: u64,
}

/// A worker's io_uring.
pub(crate) struct Uring {
    /// The kernel honours a min-wait when waiting for several completions.
    min_wait_supported: bool,
    ring: IoUring,
    setup: &'static str,
    /// Completions reaped while making room in a full submission queue.
    backlog: Vec<Completion>,
    /// Sends by key, boxed (the kernel holds pointers into a live op), and a bounded
    /// free list of finished ones (no allocation per send, no memory kept by a burst).
    sends: SendTable<SendOp>,
    connects: Vec<Option<Box<ConnectOp>>>,
    /// The doorbell read's 8-byte target.
    doorbell: Box<u64>,
    doorbell_armed: bool,
    lost_seen: u32,
    submit_failures: SubmitFailures,
}

impl Uring {
    /// Set up a ring with `sq` submission and `cq` completion entries.
    pub(crate) fn new(sq: u32, cq: u32) -> io::Result<Uring> {
        let (ring, setup) = probe::build_ring(sq, cq)?;
        let mut uring = Uring {
            min_wait_supported: false,
            ring,
            setup,
            backlog: Vec::new(),
            sends: SendTable::default(),
            connects: Vec::new(),
            doorbell: Box::new(0),
            doorbell_armed: false,
            lost_seen: 0,
            submit_failures: SubmitFailures::default(),
        };
        uring.min_wait_supported = uring.probe_min_wait();
        Ok(uring)
    }

    /// The kernel honours a min-wait (batched waits are available).
    pub(crate) fn min_wait_supported(&self) -> bool {
        self.min_wait_supported
    }

    /// The setup flags the kernel accepted.
    pub(crate) fn setup_name(&self) -> &'static str {
        self.setup
    }

    pub(crate) fn ring(&self) -> &IoUring {
        &self.ring
    }

    /// Queue an entry, flushing the submission queue to the kernel if it is full.
    ///
    /// # Safety
    /// Every pointer in `entry` must stay valid until the operation's final completion.
    unsafe fn push(&mut self, entry: &squeue::Entry) {
        loop {
            // SAFETY: the caller guarantees the entry's memory outlives the operation.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return;
            }
            if self.submit_failures.broken.is_some() {
                // The ring is given up on: the entry is dropped (its memory stays lent
                // and is leaked with the ring) and the next wait reports the error.
                return;
            }
            self.make_room();
        }
    }

    /// Make room for `n` entries pushed back to back (for linked pairs).
    fn reserve(&mut self, n: usize) {
        while {
            let sq = self.ring.submission();
            sq.capacity() - sq.len() < n
        } {
            if self.submit_failures.broken.is_some() {
                return; // the pushes that follow drop their entries (see `push`)
            }
            self.make_room();
        }
    }

    fn make_room(&mut self) {
        match self.ring.submit() {
            Ok(_) => self.submit_failures.succeeded(),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => self.reap_into_backlog(),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) => {
                self.submit_failures
                    .retry_after(&e, "io_uring submit with the queue full");
                self.reap_into_backlog();
            }
        }
    }

    fn reap_into_backlog(&mut self) {
        let mut cq = self.ring.completion();
        cq.sync();
        for c in cq {
            note_reaped(&mut self.sends, &mut self.connects, c.user_data());
            self.backlog.push(Completion {
                user_data: c.user_data(),
                result: c.result(),
                flags: c.flags(),
            });
        }
    }

    /// Multishot accept on a listening socket.
    pub(crate) fn accept_multi(&mut self, listener: RawFd, user_data: u64) {
        let e = opcode::AcceptMulti::new(types::Fd(listener))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(user_data);
        // SAFETY: the entry points to no memory.
        unsafe { self.push(&e) }
    }

    /// Multishot receive into buffers of group `group`.
    pub(crate) fn recv_multi(&mut self, fd: RawFd, group: u16, user_data: u64) {
        let e = opcode::RecvMulti::new(types::Fd(fd), group)
            .build()
            .user_data(user_data);
        // SAFETY: buffers come from the registered ring, owned by the worker's BufRing,
        // which outlives every receive: a clean shutdown closes every connection first,
        // and a driver dropped without one leaks the buffers (`UringDriver::drop`).
        unsafe { self.push(&e) }
    }

    /// Send the front of `out` (up to IOV_MAX chunks, moved into the operation) with one
    /// sendmsg; `key` names the operation until [`Uring::finish_send`]. Returns the bytes
    /// covered.
    pub(crate) fn send(
        &mut self,
        key: u32,
        fd: RawFd,
        out: &mut Outbound,
        user_data: u64,
    ) -> usize {
        debug_assert_eq!(key, user_data as u32, "a send's key is its name's low bits");
        let op = self.sends.start(key);
        op.user_data = user_data;
        op.reaped = false;
        let total = out.take_front(IOV_MAX, &mut op.chunks);
        let SendOp {
            hdr, iov, chunks, ..
        } = op;
        iov.extend(chunks.iter().map(|c| libc::iovec {
            iov_base: c.as_slice().as_ptr() as *mut libc::c_void,
            iov_len: c.as_slice().len(),
        }));
        hdr.msg_iov = iov.as_mut_ptr();
        hdr.msg_iovlen = iov.len() as _;
        let e = opcode::SendMsg::new(types::Fd(fd), hdr)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build()
            .user_data(user_data);
        // SAFETY: the header, the iovecs and the chunks they point into live in the box
        // under `key` in `self.sends` (a box does not move when the table grows; chunk
        // data is heap memory that moving a chunk does not move) until `finish_send(key)`,
        // which releases them only once the driver has reaped this send's completion.
        unsafe { self.push(&e) }
        total
    }

    /// The send named `key` completed having sent `sent` bytes: give the unsent chunks
    /// back to the front of `out` and release the operation.
    pub(crate) fn finish_send(&mut self, key: u32, sent: usize, out: &mut Outbound) {
        // Only once the kernel is done with it. An early call (an engine bug) keeps the
        // memory in the table, where it stays lent (and is leaked at drop).
        if !self.sends.get_mut(key).is_some_and(|op| op.reaped) {
            tracing::error!(
                key,
                "finish_send before its completion was reaped; memory kept"
            );
            return;
        }
        self.sends.finish(key, |op| {
            op.iov.clear();
            out.give_back(&mut op.chunks, sent);
        });
    }

    /// Connect `fd` to `addr`, failing with ECANCELED after `timeout`. The connect
    /// completes with `user_data`, the timeout with `timeout_user_data`.
    pub(crate) fn connect(
        &mut self,
        key: u32,
        fd: RawFd,
        addr: SocketAddr,
        timeout: Duration,
        user_data: u64,
        timeout_user_data: u64,
    ) {
        let key = key as usize;
        if self.connects.len() <= key {
            self.connects.resize_with(key + 1, || None);
        }
        assert!(
            self.connects[key].is_none(),
            "one connect in flight per key"
        );
        debug_assert_eq!(
            key, user_data as u32 as usize,
            "a connect's key: its name's low bits"
        );
        debug_assert_eq!(key, timeout_user_data as u32 as usize);
        let op = Box::new(ConnectOp {
            addr: addr.into(),
            timeout: types::Timespec::from(timeout),
            user_data: [user_data, timeout_user_data],
            reaped: 0,
        });
        let c = opcode::Connect::new(types::Fd(fd), op.addr.as_ptr().cast(), op.addr.len())
            .build()
            .flags(squeue::Flags::IO_LINK)
            .user_data(user_data);
        let t = opcode::LinkTimeout::new(&op.timeout)
            .build()
            .user_data(timeout_user_data);
        self.connects[key] = Some(op);
        self.reserve(2);
        // SAFETY: the address and timespec live in `self.connects[key]` (boxed) until
        // `finish_connect(key)`, called after both completions.
        unsafe {
            self.push(&c);
            self.push(&t);
        }
    }

    /// Release the memory of the connect named `key` (after both its completions).
    pub(crate) fn finish_connect(&mut self, key: u32) {
        if let Some(slot) = self.connects.get_mut(key as usize) {
            // Only once the kernel is done with it: both completions reaped. An early
            // call (an engine bug) keeps the memory, which is leaked at drop.
            if slot.as_ref().is_some_and(|op| op.reaped >= 2) {
                *slot = None;
            } else {
                tracing::error!(key, "finish_connect before both completions; memory kept");
            }
        }
    }

    /// Cancel the operation named `target`; the cancel itself completes with `user_data`.
    pub(crate) fn cancel(&mut self, target: u64, user_data: u64) {
        let e = opcode::AsyncCancel::new(target)
            .build()
            .user_data(user_data);
        // SAFETY: the entry points to no memory.
        unsafe { self.push(&e) }
    }

    /// Shut the write side of a socket.
    pub(crate) fn shutdown_write(&mut self, fd: RawFd, user_data: u64) {
        let e = opcode::Shutdown::new(types::Fd(fd), libc::SHUT_WR)
            .build()
            .user_data(user_data);
        // SAFETY: the entry points to no memory.
        unsafe { self.push(&e) }
    }

    /// Close a descriptor asynchronously; ownership passes to the kernel.
    pub(crate) fn close(&mut self, fd: OwnedFd, user_data: u64) {
        let e = opcode::Close::new(types::Fd(fd.into_raw_fd()))
            .build()
            .user_data(user_data);
        // SAFETY: the entry points to no memory; the fd is no longer owned by anyone here.
        unsafe { self.push(&e) }
    }

    /// Arm a read of the doorbell eventfd (one at a time).
    pub(crate) fn arm_doorbell(&mut self, efd: RawFd, user_data: u64) {
        if self.doorbell_armed {
            return;
        }
        self.doorbell_armed = true;
        let ptr: *mut u64 = &mut *self.doorbell;
        let e = opcode::Read::new(types::Fd(efd), ptr.cast(), 8)
            .build()
            .user_data(user_data);
        // SAFETY: the 8-byte target is boxed in `self` and outlives the ring (the worker
        // drains the doorbell read before dropping the ring, see `Drop`).
        unsafe { self.push(&e) }
    }

    /// The doorbell read completed.
    pub(crate) fn doorbell_done(&mut self) {
        self.doorbell_armed = false;
    }

    /// True while the doorbell read is in flight.
    pub(crate) fn doorbell_armed(&self) -> bool {
        self.doorbell_armed
    }

    /// Submit what is queued and wait for completions: at least one, or `timeout`. With
    /// `want > 1` and a kernel that has min-wait (6.12+), wait for up to `want`
    /// completions but return once `min_wait` has passed if any have arrived: under load
    /// one enter then reaps a batch; under light load the first completion returns at once
    /// after at most `min_wait`. Does not wait when completions are already waiting.
    pub(crate) fn submit_and_wait(
        &mut self,
        want: u32,
        min_wait: Duration,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        if let Some(errno) = self.submit_failures.broken {
            return Err(io::Error::from_raw_os_error(errno));
        }
        let ready = !self.backlog.is_empty() || !self.ring.completion().is_empty();
        let res = if ready {
            self.ring.submit()
        } else {
            let ts = timeout.map(types::Timespec::from);
            let batching = self.min_wait_supported && want > 1 && !min_wait.is_zero();
            let arg = GetEventsArg {
                sigmask: 0,
                sigmask_sz: 0,
                min_wait_usec: if batching {
                    min_wait.as_micros().min(u32::MAX as u128) as u32
                } else {
                    0
                },
                ts: ts
                    .as_ref()
                    .map_or(0, |t| t as *const types::Timespec as u64),
            };
            let want = if batching { want } else { 1 };
            self.enter(want, &arg)
        };
        match res {
            Ok(_) => {
                self.submit_failures.succeeded();
                Ok(())
            }
            Err(e) => match e.raw_os_error() {
                // ETIME: the wait timed out; EBUSY: overflowed completions must be reaped
                // first; EINTR: a signal. None loses anything: the caller drains next.
                Some(libc::ETIME) | Some(libc::EBUSY) | Some(libc::EINTR) => Ok(()),
                // Anything else (ENOMEM, EAGAIN under memory pressure) may pass: try again
                // on the next call, up to the limit in a row.
                _ if self.submit_failures.retry_after(&e, "io_uring_enter") => Ok(()),
                _ => Err(e),
            },
        }
    }

    /// io_uring_enter with GETEVENTS and an extended argument.
    fn enter(&mut self, want: u32, arg: &GetEventsArg) -> io::Result<usize> {
        let to_submit = self.ring.submission().len() as u32;
        let flags = (EnterFlags::GETEVENTS | EnterFlags::EXT_ARG).bits();
        // SAFETY: `arg` has the kernel's io_uring_getevents_arg layout; it and the
        // timespec it may point to live on the caller's stack for the whole call.
        unsafe {
            self.ring
                .submitter()
                .enter(to_submit, want, flags, Some(arg))
        }
    }

    /// Does the kernel take a min-wait? Older kernels reject a non-zero field with EINVAL.
    fn probe_min_wait(&mut self) -> bool {
        let zero = types::Timespec::new();
        let arg = GetEventsArg {
            sigmask: 0,
            sigmask_sz: 0,
            min_wait_usec: 1,
            ts: &zero as *const types::Timespec as u64,
        };
        !matches!(self.enter(0, &arg), Err(e) if e.raw_os_error() == Some(libc::EINVAL))
    }

    /// Move every available completion into `out`. Returns true when the completion
    /// queue had overflowed into the kernel's backlog (nothing is lost: the kernel keeps
    /// the overflowed completions and hands them over on the next enter).
    pub(crate) fn drain(&mut self, out: &mut Vec<Completion>) -> bool {
        let overflowed = self.ring.submission().cq_overflow();
        out.append(&mut self.backlog);
        let mut cq = self.ring.completion();
        cq.sync();
        let lost = cq.overflow();
        for c in &mut cq {
            note_reaped(&mut self.sends, &mut self.connects, c.user_data());
            out.push(Completion {
                user_data: c.user_data(),
                result: c.result(),
                flags: c.flags(),
            });
        }
        if lost != self.lost_seen {
            // Only possible if the kernel could not allocate its overflow backlog.
            tracing::error!(lost, "the kernel dropped completions");
            self.lost_seen = lost;
        }
        overflowed
    }
}

impl Drop for Uring {
    fn drop(&mut self) {
        // Memory still lent to the kernel must not be freed: leak it. A clean worker exit
        // leaves nothing in flight, so this only happens after an abnormal stop.
        let lent_sends = self.sends.in_flight();
        let lent_connects = self.connects.iter().filter(|c| c.is_some()).count();
        if lent_sends + lent_connects > 0 || self.doorbell_armed {
            tracing::warn!(
                lent_sends,
                lent_connects,
                "ring dropped with operations in flight; leaking their memory"
            );
            self.sends.leak();
            std::mem::forget(std::mem::take(&mut self.connects));
            std::mem::forget(std::mem::replace(&mut self.doorbell, Box::new(0)));
        }
    }
}

#[cfg(test)]
mod tests;
