//! `PollCore`: one worker's epoll set, descriptor table, receive arena and completion
//! queue, knowing no operation.
//!
//! An operation (`sys/op/`) arms itself on a descriptor: it keeps what it waits for in an
//! op state held here ([`PollCore::op_state`]) and marks the descriptor with that state's
//! bit ([`PollIo::arm`]). When epoll reports the descriptor, or it is queued for another
//! pass, the core calls [`PollOpState::serve`] of every state armed on it; a cancel asks
//! the states armed on the descriptor ([`PollOpState::cancel`]); a close makes them forget
//! it; deadlines are asked of every state. Completions are posted to [`PollIo::post`] and
//! shown to every state as they are handed on ([`PollOpState::reaped`]).

use super::fd_table::{edge, FdState, FdTable};
use crate::sys::op::{AsAny, OpStates};
use crate::sys::Completion;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// Completion and work lists shrink back to this capacity after a burst.
const KEEP_CAPACITY: usize = 1024;
/// Largest single read into the arena.
const READ_MAX: usize = 64 * 1024;
/// A read needs at least this much room in the arena; else it waits for the next pass.
const READ_MIN_ROOM: usize = 2048;

/// The readiness side of an op's driver-held state: what its operations wait for.
pub(crate) trait PollOpState: AsAny {
    /// `fd`, on which this state is armed (`bit`), is ready or queued again: do what its
    /// operation can (non-blocking calls; on EAGAIN clear the fd's remembered readiness),
    /// post completions, disarm when the operation ended. Returns true to be served again
    /// on the next pass without a new epoll report (work left and readiness remembered).
    fn serve(&mut self, io: &mut PollIo, fd: RawFd, bit: OpBit) -> bool;

    /// If the operation named `target` is armed here on `fd`, end it with its final
    /// completion (-ECANCELED), disarm, and return true.
    fn cancel(&mut self, io: &mut PollIo, fd: RawFd, target: u64, bit: OpBit) -> bool;

    /// `fd` is being closed: forget what is armed on it (no completion is posted).
    fn forget(&mut self, fd: RawFd);

    /// The earliest deadline of an armed operation.
    fn next_deadline(&self) -> Option<Instant> {
        None
    }

    /// Deadlines up to `now` have passed: end their operations (this state marks
    /// descriptors with `bit`).
    fn expire(&mut self, _io: &mut PollIo, _now: Instant, _bit: OpBit) {}

    /// `batch` is handed to the engine (the readiness backend's "reaped"; one call per
    /// state per drain).
    fn reaped(&mut self, _batch: &[Completion]) {}
}

/// An op state's mark on the descriptors it is armed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpBit(u32);

/// A claimed receive: a slice of the worker's arena.
#[derive(Debug)]
pub(crate) struct ArenaSlice {
    start: usize,
    len: usize,
}

/// What op states act on: the epoll set, the descriptor table, the completions, the
/// receive arena.
pub(crate) struct PollIo {
    poll: Poll,
    events: Events,
    fds: FdTable,
    /// Descriptors to serve on the next pass.
    work: Vec<RawFd>,
    /// Completions waiting to be drained.
    ready: Vec<Completion>,
    /// Receive memory of the current batch, and the (start, len) of each read in it.
    arena: Box<[u8]>,
    arena_used: usize,
    slices: Vec<(usize, usize)>,
    /// The datagrams read into the arena in this batch.
    datagrams: Vec<ArenaDatagram>,
    /// The largest datagram received whole (room a datagram read needs).
    datagram_max: usize,
}

/// A datagram as a batched read reports it: its bytes in the slot, its source, whether it
/// was cut short.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadDatagram {
    pub len: usize,
    pub from: Option<std::net::SocketAddr>,
    pub truncated: bool,
}

/// A datagram in the arena: where, how long, from whom, cut short or not.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ArenaDatagram {
    start: usize,
    len: usize,
    from: Option<std::net::SocketAddr>,
    truncated: bool,
}

/// The mio interest for bits of [`edge`] (at least readable: mio takes no empty one).
fn interest_of(bits: u8) -> Interest {
    match (bits & edge::READ != 0, bits & edge::WRITE != 0) {
        (false, true) => Interest::WRITABLE,
        (true, true) => Interest::READABLE | Interest::WRITABLE,
        (_, false) => Interest::READABLE,
    }
}

impl PollIo {
    /// Post a completion.
    pub(crate) fn post(&mut self, user_data: u64, result: i32, more: bool) {
        self.ready.push(Completion::new(user_data, result, more, 0));
    }

    /// The operation could not be started: complete it with the error.
    pub(crate) fn fail(&mut self, user_data: u64, e: io::Error) {
        self.post(user_data, super::syscalls::neg_errno(&e), false);
    }

    /// The state of `fd`.
    pub(crate) fn fd(&mut self, fd: RawFd) -> &mut FdState {
        self.fds.get_mut(fd)
    }

    /// Add `fd` to the epoll set with `interest` (bits of [`edge`]) if it is not there
    /// yet, or widen its interest. A new fd is taken as writable if `assume_writable`
    /// (a connected socket, until a write says otherwise).
    pub(crate) fn register(
        &mut self,
        fd: RawFd,
        interest: u8,
        assume_writable: bool,
    ) -> io::Result<()> {
        let st = self.fds.get_mut(fd);
        if st.registered {
            if st.interest & interest == interest {
                return Ok(());
            }
            let wider = st.interest | interest;
            self.poll.registry().reregister(
                &mut SourceFd(&fd),
                Token(fd as usize),
                interest_of(wider),
            )?;
            self.fds.get_mut(fd).interest = wider;
            return Ok(());
        }
        self.poll.registry().register(
            &mut SourceFd(&fd),
            Token(fd as usize),
            interest_of(interest),
        )?;
        let st = self.fds.get_mut(fd);
        st.registered = true;
        st.interest = interest;
        st.writable = assume_writable;
        Ok(())
    }

    /// Take `fd` out of the epoll set and forget its readiness (a re-arm starts fresh).
    /// The marks of states still armed on it stay.
    pub(crate) fn deregister(&mut self, fd: RawFd) {
        let Some(&st) = self.fds.get(fd) else {
            return;
        };
        if st.registered {
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        }
        if st.armed == 0 {
            self.fds.clear(fd);
        } else {
            *self.fds.get_mut(fd) = FdState {
                armed: st.armed,
                queued: st.queued,
                ..FdState::default()
            };
        }
    }

    /// Mark `fd` with an op state's bit: it is served when `fd` is ready.
    pub(crate) fn arm(&mut self, fd: RawFd, bit: OpBit) {
        self.fds.get_mut(fd).armed |= bit.0;
    }

    /// Remove an op state's mark from `fd`.
    pub(crate) fn disarm(&mut self, fd: RawFd, bit: OpBit) {
        self.fds.get_mut(fd).armed &= !bit.0;
    }

    /// Serve `fd` on the next pass (with the readiness it has).
    pub(crate) fn queue(&mut self, fd: RawFd) {
        let st = self.fds.get_mut(fd);
        if !st.queued {
            st.queued = true;
            self.work.push(fd);
        }
    }

    /// Room for one read in this batch's arena, or `None` when it is full until the next
    /// wait.
    pub(crate) fn arena_room(&mut self) -> Option<&mut [u8]> {
        let room = self.arena.len() - self.arena_used;
        if room < READ_MIN_ROOM || self.slices.len() >= u16::MAX as usize {
            return None;
        }
        let start = self.arena_used;
        Some(&mut self.arena[start..start + room.min(READ_MAX)])
    }

    /// The first `n` bytes of [`PollIo::arena_room`] were read: lend them with a
    /// multishot receive completion named `user_data` (claimed by `claim`).
    pub(crate) fn post_received(&mut self, user_data: u64, n: usize) {
        let idx = self.slices.len() as u32;
        self.slices.push((self.arena_used, n));
        self.arena_used += n;
        self.ready
            .push(Completion::new(user_data, n as i32, true, idx << 16));
    }

    /// Room in this batch's arena for up to `want` datagram slots of the largest datagram
    /// taken whole each: the slot size and the room (none when the arena has less than
    /// one slot left until the next wait).
    pub(crate) fn datagram_slots(&mut self, want: usize) -> Option<(usize, &mut [u8])> {
        let max = self.datagram_max.max(1);
        let room = self.arena.len() - self.arena_used;
        let slots = (room / max)
            .min(want)
            .min(u16::MAX as usize - self.datagrams.len());
        if slots == 0 {
            return None;
        }
        let start = self.arena_used;
        Some((max, &mut self.arena[start..start + slots * max]))
    }

    /// Datagrams were read into the slots of [`PollIo::datagram_slots`] (slot `i` holds
    /// `got[i]`'s bytes): pack them at the front of the arena's free room and lend each
    /// with a multishot datagram receive completion named `user_data`.
    pub(crate) fn post_datagrams(&mut self, user_data: u64, got: &[ReadDatagram]) {
        let (base, max) = (self.arena_used, self.datagram_max.max(1));
        for (i, d) in got.iter().enumerate() {
            let from_slot = base + i * max;
            // Packing moves bytes down only: the cursor never passes slot `i`'s start.
            self.arena
                .copy_within(from_slot..from_slot + d.len, self.arena_used);
            let idx = self.datagrams.len() as u32;
            self.datagrams.push(ArenaDatagram {
                start: self.arena_used,
                len: d.len,
                from: d.from,
                truncated: d.truncated,
            });
            self.arena_used += d.len;
            self.ready
                .push(Completion::new(user_data, d.len as i32, true, idx << 16));
        }
    }

    fn claim(&self, c: &Completion) -> Option<ArenaSlice> {
        let &(start, len) = self.slices.get((c.flags >> 16) as usize)?;
        (c.result >= 0 && c.result as usize == len).then_some(ArenaSlice { start, len })
    }

    fn bytes(&self, buf: &ArenaSlice) -> &[u8] {
        &self.arena[buf.start..buf.start + buf.len]
    }

    /// The engine has handled every completion of the previous batch: the arena is free.
    fn reset_arena(&mut self) {
        self.arena_used = 0;
        self.slices.clear();
        self.datagrams.clear();
        if self.datagrams.capacity() > KEEP_CAPACITY {
            self.datagrams.shrink_to(KEEP_CAPACITY);
        }
        if self.slices.capacity() > KEEP_CAPACITY {
            self.slices.shrink_to(KEEP_CAPACITY);
        }
    }

    /// epoll_wait, remembering what each reported descriptor became and queueing it.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self.poll.poll(&mut self.events, timeout) {
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
                st.edges |= edge::READ;
            }
            if ev.is_read_closed() || ev.is_error() {
                st.read_closed = true;
            }
            if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                st.writable = true;
                st.edges |= edge::WRITE;
            }
            if ev.is_error() || (ev.is_read_closed() && ev.is_write_closed()) {
                st.edges |= edge::ERROR;
            }
            if ev.is_error() {
                st.edges |= edge::ERR;
            }
            if ev.is_read_closed() {
                st.edges |= edge::RDHUP;
            }
            if ev.is_read_closed() && ev.is_write_closed() {
                st.edges |= edge::HUP;
            }
            if !st.queued {
                st.queued = true;
                self.work.push(fd);
            }
        }
        Ok(())
    }
}

/// One worker's readiness backend: [`PollIo`] and the op states.
pub(crate) struct PollCore {
    io: PollIo,
    states: OpStates<dyn PollOpState>,
    /// The last `submit_and_wait` handed over completions without polling.
    skipped_poll: bool,
}

impl PollCore {
    /// An epoll set and a receive arena of `arena_bytes`, taking datagrams of up to
    /// `datagram_max` bytes whole.
    pub(crate) fn new(arena_bytes: usize, datagram_max: usize) -> io::Result<PollCore> {
        Ok(PollCore {
            io: PollIo {
                poll: Poll::new()?,
                events: Events::with_capacity(1024),
                fds: FdTable::default(),
                work: Vec::new(),
                ready: Vec::new(),
                arena: vec![0u8; arena_bytes].into_boxed_slice(),
                arena_used: 0,
                slices: Vec::new(),
                datagrams: Vec::new(),
                datagram_max,
            },
            states: OpStates::default(),
            skipped_poll: false,
        })
    }

    /// What op states act on.
    pub(crate) fn io(&mut self) -> &mut PollIo {
        &mut self.io
    }

    /// The op state of type `S` (made on first use), with [`PollIo`] and its bit.
    pub(crate) fn op_state<S: PollOpState + Default>(&mut self) -> (&mut PollIo, &mut S, OpBit) {
        let (index, state) = self.states.get_or_make::<S>(|| Box::new(S::default()));
        assert!(index < 32, "more op states than descriptor marks");
        (&mut self.io, state, OpBit(1 << index))
    }

    /// Cancel the operation named `target` armed on `fd`; false if none is.
    pub(crate) fn cancel(&mut self, fd: RawFd, target: u64) -> bool {
        let mut armed = self.io.fds.get(fd).map_or(0, |s| s.armed);
        while armed != 0 {
            let i = armed.trailing_zeros();
            armed &= armed - 1;
            if self
                .states
                .at(i as usize)
                .cancel(&mut self.io, fd, target, OpBit(1 << i))
            {
                return true;
            }
        }
        false
    }

    /// `fd` is being closed (which removes it from the epoll set): forget its state and
    /// whatever is armed on it before the number is reused.
    pub(crate) fn forget_fd(&mut self, fd: RawFd) {
        let mut armed = self.io.fds.get(fd).map_or(0, |s| s.armed);
        while armed != 0 {
            let i = armed.trailing_zeros();
            armed &= armed - 1;
            self.states.at(i as usize).forget(fd);
        }
        self.io.fds.clear(fd);
    }

    /// The data of a receive completion.
    pub(crate) fn claim_recv(&self, c: &Completion) -> Option<ArenaSlice> {
        self.io.claim(c)
    }

    /// The datagram of a datagram receive completion.
    pub(crate) fn claim_datagram(&self, c: &Completion) -> Option<ArenaDatagram> {
        let d = *self.io.datagrams.get((c.flags >> 16) as usize)?;
        (c.result >= 0 && c.result as usize == d.len).then_some(d)
    }

    /// A claimed datagram.
    pub(crate) fn datagram<'a>(&'a self, d: &ArenaDatagram) -> crate::sys::Datagram<'a> {
        crate::sys::Datagram {
            from: d.from,
            data: &self.io.arena[d.start..d.start + d.len],
            truncated: d.truncated,
        }
    }

    /// The bytes of a claimed receive.
    pub(crate) fn recv_bytes(&self, buf: &ArenaSlice) -> &[u8] {
        self.io.bytes(buf)
    }

    /// Serve what is queued, wait for readiness (at most `timeout`, and no longer than
    /// the first deadline), serve what became ready.
    pub(crate) fn submit_and_wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.io.reset_arena();
        self.process();
        if !self.io.ready.is_empty() && !self.skipped_poll {
            // Our own operations completed (sends just written, usually): hand them over
            // now and poll on the next call, rather than a zero-timeout epoll_wait here
            // (one syscall per message less for a request/reply connection). Never twice
            // in a row, so readiness is still polled at least every other call.
            self.skipped_poll = true;
            if self.next_deadline().is_some() {
                self.expire(Instant::now());
            }
            return Ok(());
        }
        self.skipped_poll = false;
        let now = Instant::now();
        let mut wait = timeout;
        if let Some(first) = self.next_deadline() {
            let until = first.saturating_duration_since(now);
            wait = Some(wait.map_or(until, |w| w.min(until)));
        }
        if !self.io.ready.is_empty() || !self.io.work.is_empty() {
            wait = Some(Duration::ZERO);
        }
        self.io.wait(wait)?;
        self.expire(Instant::now());
        self.process();
        Ok(())
    }

    /// Move the completions posted into `out`, showing each to the op states first.
    pub(crate) fn drain(&mut self, out: &mut Vec<Completion>) {
        if !self.io.ready.is_empty() {
            for s in self.states.iter_mut() {
                s.reaped(&self.io.ready);
            }
        }
        out.append(&mut self.io.ready);
        // Do not keep memory sized by a past burst.
        if self.io.ready.capacity() > KEEP_CAPACITY {
            self.io.ready.shrink_to(KEEP_CAPACITY);
        }
        if self.io.work.capacity() > KEEP_CAPACITY && self.io.work.len() < KEEP_CAPACITY {
            self.io.work.shrink_to(KEEP_CAPACITY);
        }
        // The receive slices are still lent (claimed until the next wait clears them);
        // their list shrinks there.
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.states.iter().filter_map(|s| s.next_deadline()).min()
    }

    fn expire(&mut self, now: Instant) {
        for (i, s) in self.states.iter_mut().enumerate() {
            s.expire(&mut self.io, now, OpBit(1 << i));
        }
    }

    /// Serve every queued descriptor once; those with work left go back in the queue.
    fn process(&mut self) {
        let list = std::mem::take(&mut self.io.work);
        for fd in list {
            // Not queued any more: closed (its state cleared) since it was queued.
            if !self.io.fds.get(fd).is_some_and(|s| s.queued) {
                continue;
            }
            self.io.fds.get_mut(fd).queued = false;
            let again = self.serve(fd);
            if let Some(st) = self.io.fds.get(fd) {
                if st.edges != 0 {
                    self.io.fds.get_mut(fd).edges = 0;
                }
            }
            if again {
                self.io.queue(fd);
            }
        }
    }

    /// Serve every op state armed on `fd`; true if one wants another pass.
    fn serve(&mut self, fd: RawFd) -> bool {
        let mut armed = self.io.fds.get(fd).map_or(0, |s| s.armed);
        let mut again = false;
        while armed != 0 {
            let i = armed.trailing_zeros();
            armed &= armed - 1;
            again |= self
                .states
                .at(i as usize)
                .serve(&mut self.io, fd, OpBit(1 << i));
        }
        again
    }

    /// (descriptor states, capacity), for tests.
    #[cfg(test)]
    pub(crate) fn fd_footprint(&self) -> (usize, usize) {
        self.io.fds.footprint()
    }
}
