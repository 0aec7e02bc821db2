//! The portable readiness backend: mio (epoll here), edge-triggered, presented to the
//! engine as the same completion port as io_uring.
//!
//! Operations are emulated: a multishot receive armed on a socket reads whenever epoll
//! says it is readable, into the worker's receive arena (one buffer per worker, reset
//! every wait, so an idle connection holds no receive memory), and posts one completion
//! per read; a send writes as soon as the socket is writable and completes with the bytes
//! written (a partial write completes partially, as io_uring does, and the engine sends
//! the rest); accept, connect (with its timeout), shutdown, close, cancel and the
//! doorbell post the completions their io_uring counterparts would.

mod fd_table;
mod syscalls;
#[cfg(test)]
mod tests;

use super::driver::{Driver, DriverConfig};
use super::send_table::{Reusable, SendTable};
use super::Completion;
use crate::sys::outbound::{Chunk, Outbound};
use fd_table::{FdTable, WaitKind};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};
use syscalls::Outcome;

/// Most chunks one send gathers.
const IOV_MAX: usize = 1024;
/// Completion and work lists shrink back to this capacity after a burst.
const KEEP_CAPACITY: usize = 1024;
/// Largest single read.
const READ_MAX: usize = 64 * 1024;
/// Reads of one socket per pass before others get their turn.
const READS_PER_PASS: usize = 4;
/// Accepts of one listener per pass.
const ACCEPTS_PER_PASS: usize = 64;
/// A read needs at least this much room in the arena; else it waits for the next pass.
const READ_MIN_ROOM: usize = 2048;

/// A claimed receive: a slice of the worker's arena.
#[derive(Debug)]
pub(crate) struct ArenaSlice {
    start: usize,
    len: usize,
}

/// A send in progress: the chunks moved out of the connection's queue.
#[derive(Debug, Default)]
struct SendOp {
    user_data: u64,
    chunks: Vec<Chunk>,
}

impl Reusable for SendOp {
    fn room(&self) -> usize {
        self.chunks.capacity()
    }

    fn shrink_room(&mut self, max: usize) {
        self.chunks.shrink_to(max);
    }
}

/// One worker's epoll set and the operations armed on it.
pub(crate) struct PollDriver {
    poll: Poll,
    events: Events,
    fds: FdTable,
    /// Descriptors to serve on the next pass.
    work: Vec<RawFd>,
    /// Completions waiting to be drained.
    ready: Vec<Completion>,
    /// Sends by key (the chunks they hold between the call and the engine's
    /// `finish_send`), with a bounded free list.
    sends: SendTable<SendOp>,
    /// Scratch iovecs of one sendmsg (at most `IOV_MAX`).
    iov: Vec<libc::iovec>,
    /// Receive memory of the current batch, and the (start, len) of each read in it.
    arena: Box<[u8]>,
    arena_used: usize,
    slices: Vec<(usize, usize)>,
    /// Pending connects: (deadline, fd, the connect's name, its timeout's name).
    deadlines: Vec<(Instant, RawFd, u64, u64)>,
    doorbell_armed: bool,
    /// The last `submit_and_wait` handed over completions without polling.
    skipped_poll: bool,
}

impl PollDriver {
    fn push(&mut self, user_data: u64, result: i32, more: bool) {
        self.ready.push(Completion::new(user_data, result, more, 0));
    }

    fn queue(&mut self, fd: RawFd) {
        let st = self.fds.get_mut(fd);
        if !st.queued {
            st.queued = true;
            self.work.push(fd);
        }
    }

    /// Add `fd` to the epoll set if it is not there yet. A socket that is already
    /// connected is taken as writable until a write says otherwise.
    fn register(&mut self, fd: RawFd, interest: Interest, assume_writable: bool) -> io::Result<()> {
        let st = self.fds.get_mut(fd);
        if st.registered {
            return Ok(());
        }
        self.poll
            .registry()
            .register(&mut SourceFd(&fd), Token(fd as usize), interest)?;
        st.registered = true;
        st.writable = assume_writable;
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) {
        let st = self.fds.get_mut(fd);
        if st.registered {
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        }
        self.fds.clear(fd);
    }

    /// Serve every queued descriptor once; those with work left go back in the queue.
    fn process(&mut self) {
        let list = std::mem::take(&mut self.work);
        for fd in list {
            self.fds.get_mut(fd).queued = false;
            self.serve(fd);
            if self.fds.get(fd).is_some_and(|s| s.has_work()) {
                self.queue(fd);
            }
        }
    }

    fn serve(&mut self, fd: RawFd) {
        let st = self.fds.get_mut(fd);
        if let (Some(ud), true) = (st.doorbell(), st.readable) {
            let result = match syscalls::read_counter(fd) {
                Outcome::Done(n) => n as i32,
                Outcome::WouldBlock => 0,
                Outcome::Failed(e) => -e,
            };
            let st = self.fds.get_mut(fd);
            if result == 0 {
                st.readable = false;
            } else {
                st.clear_wait();
                self.push(ud, result, false);
            }
        }
        let st = self.fds.get_mut(fd);
        if st.accept().is_some() && st.readable {
            self.accept_some(fd);
        }
        let st = self.fds.get_mut(fd);
        if st.recv().is_some() && st.readable {
            self.recv_some(fd);
        }
        let st = self.fds.get_mut(fd);
        if let (Some(ud), true) = (st.connect(), st.writable) {
            st.clear_wait();
            let err = syscalls::take_error(fd);
            self.push(ud, -err, false);
            self.end_connect(fd, ud, -libc::ECANCELED);
        }
        let st = self.fds.get_mut(fd);
        if let (Some(key), true) = (st.send(), st.writable) {
            self.write(fd, key);
        }
    }

    fn accept_some(&mut self, fd: RawFd) {
        let Some(ud) = self.fds.get_mut(fd).accept() else {
            return;
        };
        for _ in 0..ACCEPTS_PER_PASS {
            match syscalls::accept(fd) {
                Outcome::Done(new_fd) => self.push(ud, new_fd as i32, true),
                Outcome::WouldBlock => {
                    self.fds.get_mut(fd).readable = false;
                    return;
                }
                // The peer left before we took it: nothing to report.
                Outcome::Failed(libc::ECONNABORTED) => {}
                Outcome::Failed(e) => {
                    // EMFILE and the like end the accept, as on io_uring; the engine
                    // pauses and re-arms. Leave the epoll set so a re-arm starts fresh.
                    self.deregister(fd);
                    self.push(ud, -e, false);
                    return;
                }
            }
        }
    }

    fn recv_some(&mut self, fd: RawFd) {
        let Some(ud) = self.fds.get_mut(fd).recv() else {
            return;
        };
        for _ in 0..READS_PER_PASS {
            let room = self.arena.len() - self.arena_used;
            if room < READ_MIN_ROOM || self.slices.len() >= u16::MAX as usize {
                return; // the arena is full for this batch; served on the next pass
            }
            let start = self.arena_used;
            let want = room.min(READ_MAX);
            match syscalls::recv(fd, &mut self.arena[start..start + want]) {
                Outcome::Done(0) => {
                    self.fds.get_mut(fd).set_recv(None);
                    self.push(ud, 0, false);
                    return;
                }
                Outcome::Done(n) => {
                    let idx = self.slices.len() as u32;
                    self.slices.push((start, n));
                    self.arena_used += n;
                    self.ready
                        .push(Completion::new(ud, n as i32, true, idx << 16));
                    let st = self.fds.get_mut(fd);
                    if n < want && !st.read_closed {
                        // A short read emptied the socket and epoll reports new data (and
                        // a FIN) with a new edge; once a FIN was seen, read on to EOF.
                        st.readable = false;
                        return;
                    }
                }
                Outcome::WouldBlock => {
                    self.fds.get_mut(fd).readable = false;
                    return;
                }
                Outcome::Failed(e) => {
                    self.fds.get_mut(fd).set_recv(None);
                    self.push(ud, -e, false);
                    return;
                }
            }
        }
    }

    fn write(&mut self, fd: RawFd, key: u32) {
        let Some(op) = self.sends.get_mut(key) else {
            // Cannot happen: a send is waited for only while its op is in the table.
            self.fds.get_mut(fd).set_send(None);
            return;
        };
        match syscalls::send_chunks(fd, &op.chunks, &mut self.iov) {
            Outcome::WouldBlock => self.fds.get_mut(fd).writable = false,
            done_or_failed => {
                let ud = op.user_data;
                self.fds.get_mut(fd).set_send(None);
                let result = match done_or_failed {
                    Outcome::Done(n) => n as i32,
                    Outcome::Failed(e) => -e,
                    Outcome::WouldBlock => unreachable!(),
                };
                self.push(ud, result, false);
            }
        }
    }

    /// Fail the connects whose deadline passed (as io_uring's linked timeout does).
    fn expire_connects(&mut self, now: Instant) {
        let due: Vec<(RawFd, u64)> = self
            .deadlines
            .iter()
            .filter(|d| d.0 <= now)
            .map(|d| (d.1, d.2))
            .collect();
        for (fd, ud) in due {
            let st = self.fds.get_mut(fd);
            if st.connect() == Some(ud) {
                st.clear_wait();
                self.push(ud, -libc::ECANCELED, false);
            }
            self.end_connect(fd, ud, -libc::ETIME);
        }
    }

    /// A connect ended (completed, failed, cancelled or timed out): post its timeout's
    /// completion with `result` and forget the deadline.
    fn end_connect(&mut self, fd: RawFd, ud: u64, result: i32) {
        if let Some(i) = self.deadlines.iter().position(|d| d.1 == fd && d.2 == ud) {
            let (_, _, _, timeout_ud) = self.deadlines.swap_remove(i);
            self.push(timeout_ud, result, false);
        }
    }

    /// The arm of an operation failed before it started: complete it with the error.
    fn fail_arm(&mut self, user_data: u64, e: io::Error) {
        self.push(user_data, -e.raw_os_error().unwrap_or(libc::EIO), false);
    }
}

impl Driver for PollDriver {
    type RecvBuf = ArenaSlice;

    fn new(config: DriverConfig) -> io::Result<Self> {
        // The arena bounds what one wait can read across all connections; it is reset
        // every wait, so it is a per-worker cost like io_uring's buffer ring.
        let arena = (config.recv_buffers as usize * config.recv_buffer_size as usize)
            .clamp(64 * 1024, 1024 * 1024);
        Ok(PollDriver {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            fds: FdTable::default(),
            work: Vec::new(),
            ready: Vec::new(),
            sends: SendTable::default(),
            iov: Vec::new(),
            arena: vec![0u8; arena].into_boxed_slice(),
            arena_used: 0,
            slices: Vec::new(),
            deadlines: Vec::new(),
            doorbell_armed: false,
            skipped_poll: false,
        })
    }

    fn setup_name(&self) -> &'static str {
        "epoll (mio, edge-triggered)"
    }

    fn accept_multi(&mut self, listener: RawFd, user_data: u64) {
        let armed = syscalls::set_nonblocking(listener)
            .and_then(|()| self.register(listener, Interest::READABLE, false));
        if let Err(e) = armed {
            return self.fail_arm(user_data, e);
        }
        self.fds
            .get_mut(listener)
            .wait_for(WaitKind::Accept, user_data);
        self.queue(listener);
    }

    fn recv_multi(&mut self, fd: RawFd, user_data: u64) {
        if let Err(e) = self.register(fd, Interest::READABLE | Interest::WRITABLE, true) {
            return self.fail_arm(user_data, e);
        }
        self.fds.get_mut(fd).set_recv(Some(user_data));
        self.queue(fd);
    }

    fn claim_recv(&mut self, c: &Completion) -> Option<ArenaSlice> {
        let &(start, len) = self.slices.get((c.flags >> 16) as usize)?;
        (c.result >= 0 && c.result as usize == len).then_some(ArenaSlice { start, len })
    }

    fn recv_bytes(&self, buf: &ArenaSlice) -> &[u8] {
        &self.arena[buf.start..buf.start + buf.len]
    }

    fn recycle(&mut self, _buf: ArenaSlice) {}

    fn send(&mut self, key: u32, fd: RawFd, out: &mut Outbound, user_data: u64) -> usize {
        let op = self.sends.start(key);
        let total = out.take_front(IOV_MAX, &mut op.chunks);
        op.user_data = user_data;
        if let Err(e) = self.register(fd, Interest::READABLE | Interest::WRITABLE, true) {
            self.fail_arm(user_data, e);
            return total;
        }
        self.fds.get_mut(fd).set_send(Some(key));
        self.queue(fd);
        total
    }

    fn finish_send(&mut self, key: u32, sent: usize, out: &mut Outbound) {
        self.sends
            .finish(key, |op| out.give_back(&mut op.chunks, sent));
    }

    fn connect(
        &mut self,
        _key: u32,
        fd: RawFd,
        addr: SocketAddr,
        timeout: Duration,
        user_data: u64,
        timeout_user_data: u64,
    ) {
        let started = match syscalls::set_nonblocking(fd) {
            Ok(()) => syscalls::start_connect(fd, addr),
            Err(e) => Outcome::Failed(e.raw_os_error().unwrap_or(libc::EIO)),
        };
        let result = match started {
            Outcome::Done(_) => 0,
            Outcome::Failed(e) => -e,
            Outcome::WouldBlock => {
                // Not writable until connected: no optimistic write readiness here.
                let interest = Interest::READABLE | Interest::WRITABLE;
                match self.register(fd, interest, false) {
                    Ok(()) => {
                        let deadline = Instant::now() + timeout;
                        self.fds.get_mut(fd).wait_for(WaitKind::Connect, user_data);
                        self.deadlines
                            .push((deadline, fd, user_data, timeout_user_data));
                        self.queue(fd);
                        return;
                    }
                    Err(e) => -e.raw_os_error().unwrap_or(libc::EIO),
                }
            }
        };
        self.push(user_data, result, false);
        self.push(timeout_user_data, -libc::ECANCELED, false);
    }

    fn finish_connect(&mut self, _key: u32) {}

    fn cancel(&mut self, target: u64, fd: RawFd, user_data: u64) {
        let st = self.fds.get_mut(fd);
        let mut found = true;
        if st.accept() == Some(target) {
            self.deregister(fd);
            self.push(target, -libc::ECANCELED, false);
        } else if st.recv() == Some(target) {
            st.set_recv(None);
            self.push(target, -libc::ECANCELED, false);
        } else if st.doorbell() == Some(target) {
            st.clear_wait();
            self.push(target, -libc::ECANCELED, false);
        } else if st.connect() == Some(target) {
            st.clear_wait();
            self.push(target, -libc::ECANCELED, false);
            self.end_connect(fd, target, -libc::ECANCELED);
        } else if st
            .send()
            .and_then(|k| self.sends.get_mut(k))
            .is_some_and(|op| op.user_data == target)
        {
            // The op keeps its chunks until the engine's `finish_send`.
            st.set_send(None);
            self.push(target, -libc::ECANCELED, false);
        } else {
            found = false;
        }
        self.push(user_data, if found { 0 } else { -libc::ENOENT }, false);
    }

    fn shutdown_write(&mut self, fd: RawFd, user_data: u64) {
        let result = syscalls::shutdown_write(fd);
        self.push(user_data, result, false);
    }

    fn close(&mut self, fd: OwnedFd, user_data: u64) {
        // Closing removes the fd from the epoll set; forget its state before the number
        // is reused.
        self.fds.clear(fd.as_raw_fd());
        drop(fd);
        self.push(user_data, 0, false);
    }

    fn arm_doorbell(&mut self, efd: RawFd, user_data: u64) {
        if self.doorbell_armed {
            return;
        }
        let armed = syscalls::set_nonblocking(efd)
            .and_then(|()| self.register(efd, Interest::READABLE, false));
        if let Err(e) = armed {
            return self.fail_arm(user_data, e);
        }
        self.doorbell_armed = true;
        self.fds
            .get_mut(efd)
            .wait_for(WaitKind::Doorbell, user_data);
        self.queue(efd);
    }

    fn doorbell_done(&mut self) {
        self.doorbell_armed = false;
    }

    fn doorbell_armed(&self) -> bool {
        self.doorbell_armed
    }

    fn submit_and_wait(
        &mut self,
        _want: u32,
        _min_wait: Duration,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        // The engine has handled every completion of the previous batch: the arena is
        // free again.
        self.arena_used = 0;
        self.slices.clear();
        if self.slices.capacity() > KEEP_CAPACITY {
            self.slices.shrink_to(KEEP_CAPACITY);
        }
        self.process();
        if !self.ready.is_empty() && !self.skipped_poll {
            // Our own operations completed (sends just written, usually): hand them over
            // now and poll on the next call, rather than a zero-timeout epoll_wait here
            // (one syscall per message less for a request/reply connection). Never twice
            // in a row, so readiness is still polled at least every other call.
            self.skipped_poll = true;
            if !self.deadlines.is_empty() {
                self.expire_connects(Instant::now());
            }
            return Ok(());
        }
        self.skipped_poll = false;
        let now = Instant::now();
        let mut wait = timeout;
        if let Some(first) = self.deadlines.iter().map(|d| d.0).min() {
            let until = first.saturating_duration_since(now);
            wait = Some(wait.map_or(until, |w| w.min(until)));
        }
        if !self.ready.is_empty() || !self.work.is_empty() {
            wait = Some(Duration::ZERO);
        }
        match self.poll.poll(&mut self.events, wait) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        for ev in self.events.iter() {
            let fd = ev.token().0 as RawFd;
            let st = self.fds.get_mut(fd);
            if !st.registered {
                continue;
            }
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                st.readable = true;
            }
            if ev.is_read_closed() || ev.is_error() {
                st.read_closed = true;
            }
            if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                st.writable = true;
            }
            if !st.queued {
                st.queued = true;
                self.work.push(fd);
            }
        }
        self.expire_connects(Instant::now());
        self.process();
        Ok(())
    }

    fn drain(&mut self, out: &mut Vec<Completion>) -> bool {
        out.append(&mut self.ready);
        // Do not keep memory sized by a past burst.
        if self.ready.capacity() > KEEP_CAPACITY {
            self.ready.shrink_to(KEEP_CAPACITY);
        }
        if self.work.capacity() > KEEP_CAPACITY && self.work.len() < KEEP_CAPACITY {
            self.work.shrink_to(KEEP_CAPACITY);
        }
        // The receive slices are still lent (claimed until the next wait clears them);
        // their list shrinks there.
        if self.deadlines.capacity() > KEEP_CAPACITY && self.deadlines.len() < KEEP_CAPACITY {
            self.deadlines.shrink_to(KEEP_CAPACITY);
        }
        false
    }

    fn shutdown(&mut self) {}
}
