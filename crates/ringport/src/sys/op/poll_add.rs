//! Poll a descriptor for readiness (io_uring's IORING_OP_POLL_ADD). Each completion's
//! result is the ready mask, in poll(2) bits (`POLLIN`, `POLLOUT`, ...): what was asked
//! and is ready, plus `POLLERR`, `POLLHUP`, `POLLNVAL` and `POLLRDHUP` whatever was asked
//! (as io_uring reports them); a negative errno ends it. A one-shot poll completes once;
//! a multishot one posts completions with `more()` until a cancel ends it (a final
//! -ECANCELED) or the backend ends it (a final completion without `more()`: re-arm).
//!
//! Both backends start by looking at the readiness already there (a one-shot poll of a
//! ready descriptor completes at once), then are **edge-triggered**: a multishot poll
//! reports when readiness arrives (for a socket or pipe: each write into it), not again
//! while it merely stays.
//! - io_uring: the kernel's poll without `IORING_POLL_ADD_LEVEL` (the io-uring crate
//!   builds no level-triggered entry) is edge-triggered for one-shot and multishot; it
//!   checks readiness when armed.
//! - readiness backend: the descriptor joins the epoll set (mio, edge-triggered; a first
//!   registration reports readiness already there, a descriptor already in the set is
//!   checked with poll(2) when the poll is armed); each epoll report that concerns what
//!   a poll asked for is answered with what epoll reported, as poll(2) bits (like epoll
//!   itself, a report may come for readiness already consumed since). `POLLPRI` alone is not watched there (mio's interest
//!   here is readable/writable). When its last poll ends, a descriptor nothing else is
//!   armed on leaves the epoll set, so a caller may close it; unless the poll asked to
//!   `linger` (its owner polls the descriptor again and again, as a watch re-armed after
//!   each notification does): then it stays in the set, so the next poll costs one
//!   `poll(2)` look instead of an epoll removal and a re-add, until [`ReleaseFd`] takes
//!   it out.

#[cfg(test)]
mod tests;

use super::{Call, Op};
#[cfg(test)]
use crate::sys::fake::{FakeDriver, FakeOp};
use crate::sys::poll::{edge, retry, OpBit, Outcome, PollCore, PollIo, PollOpState};
use crate::sys::uring::UringCore;
use io_uring::{opcode, types};
use std::collections::HashMap;
use std::os::fd::RawFd;

/// Reported whatever a poll asked for (io_uring's IO_POLL_UNMASK).
const ALWAYS: u32 =
    (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL | libc::POLLRDHUP) as u16 as u32;
/// Masks that mean "readable" (the epoll interest they need).
const READ_EVENTS: u32 =
    (libc::POLLIN | libc::POLLPRI | libc::POLLRDNORM | libc::POLLRDHUP) as u16 as u32;
/// Masks that mean "writable".
const WRITE_EVENTS: u32 = (libc::POLLOUT | libc::POLLWRNORM) as u16 as u32;

/// Poll `fd` for the readiness in `events` (poll(2) bits).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PollAdd {
    /// The descriptor (kept open by the caller until the final completion).
    pub fd: RawFd,
    /// What to wait for: `POLLIN`, `POLLOUT`, `POLLRDHUP`, ... (as `u32`).
    pub events: u32,
    /// Keep reporting (each completion with `more()`) until cancelled.
    pub multishot: bool,
    /// Readiness backend: keep the descriptor in the epoll set when the poll ends (the
    /// caller polls it again soon, and calls [`ReleaseFd`] before closing it).
    pub linger: bool,
}

// Nothing in the engine polls a descriptor yet (watches will); the tests do.
#[cfg_attr(not(test), allow(dead_code))]
impl PollAdd {
    /// One completion, once `fd` is ready for `events`.
    pub(crate) fn oneshot(fd: RawFd, events: u32) -> PollAdd {
        PollAdd {
            fd,
            events,
            multishot: false,
            linger: false,
        }
    }

    /// A completion each time `fd` becomes ready for `events`, until cancelled.
    pub(crate) fn multishot(fd: RawFd, events: u32) -> PollAdd {
        PollAdd {
            fd,
            events,
            multishot: true,
            linger: false,
        }
    }
}

impl Op for PollAdd {
    type Started = ();
    const NAME: &'static str = "poll_add";
    const URING_OPCODES: &'static [(u8, &'static str)] = &[(opcode::PollAdd::CODE, "poll_add")];

    fn start_uring(self, core: &mut UringCore, user_data: u64) {
        let e = opcode::PollAdd::new(types::Fd(self.fd), self.events)
            .multi(self.multishot)
            .build()
            .user_data(user_data);
        // SAFETY: the entry points to no memory; the caller keeps the fd open until the
        // poll's final completion.
        unsafe { core.push(&e) }
    }

    fn start_poll(self, core: &mut PollCore, user_data: u64) {
        let (io, polls, bit) = core.op_state::<Polling>();
        let (fd, want) = (self.fd, interest(self.events));
        let before = *io.fd(fd);
        // Registering (or widening the interest) makes epoll report what is ready now;
        // a descriptor already registered for this gets no such report: look now.
        let reported = !before.registered || before.interest & want != want;
        if let Err(e) = io.register(fd, want, false) {
            return io.fail(user_data, e);
        }
        let w = Watch {
            user_data,
            events: self.events,
            multishot: self.multishot,
            linger: self.linger,
        };
        if !reported {
            match ready_now(fd, self.events) {
                Err(errno) => return io.post(user_data, -errno, false),
                Ok(ready) => {
                    if w.answer(io, ready) && !w.multishot {
                        return; // done; the registration was there before
                    }
                }
            }
        }
        polls.by_fd.entry(fd).or_default().push(w);
        io.arm(fd, bit);
    }

    #[cfg(test)]
    fn start_fake(self, fake: &mut FakeDriver, user_data: u64) {
        fake.start(FakeOp::Poll, user_data)
    }
}

/// The epoll interest (bits of [`edge`]) a mask needs; readable at least (hang-ups and
/// errors come with any).
fn interest(events: u32) -> u8 {
    match (events & READ_EVENTS != 0, events & WRITE_EVENTS != 0) {
        (false, true) => edge::WRITE,
        (true, true) => edge::READ | edge::WRITE,
        (_, false) => edge::READ,
    }
}

/// One armed poll on the readiness backend.
#[derive(Debug, Clone, Copy)]
struct Watch {
    user_data: u64,
    events: u32,
    multishot: bool,
    linger: bool,
}

impl Watch {
    /// Is an epoll report of `edges` (bits of [`edge`]) about what this poll asked for?
    fn concerns(&self, edges: u8) -> bool {
        edges & edge::ERROR != 0
            || (edges & edge::READ != 0 && self.events & READ_EVENTS != 0)
            || (edges & edge::WRITE != 0 && self.events & WRITE_EVENTS != 0)
    }

    /// Post the part of `ready` (poll(2) bits) this poll reports, if any; true if posted.
    fn answer(&self, io: &mut PollIo, ready: u32) -> bool {
        let mask = ready & (self.events | ALWAYS);
        if mask != 0 {
            io.post(self.user_data, mask as i32, self.multishot);
        }
        mask != 0
    }
}

/// The readiness backend's armed polls, by descriptor (several may watch one fd).
#[derive(Debug, Default)]
struct Polling {
    by_fd: HashMap<RawFd, Vec<Watch>>,
}

impl Polling {
    /// `fd` has no poll left: unmark it and, if nothing else is armed on it and the
    /// last poll did not ask to linger, take it out of the epoll set (the caller may
    /// close it without the driver).
    fn none_left(&mut self, io: &mut PollIo, fd: RawFd, bit: OpBit, linger: bool) {
        self.by_fd.remove(&fd);
        io.disarm(fd, bit);
        if io.fd(fd).armed == 0 && !linger {
            io.deregister(fd);
        }
    }
}

impl PollOpState for Polling {
    fn serve(&mut self, io: &mut PollIo, fd: RawFd, bit: OpBit) -> bool {
        let edges = io.fd(fd).edges;
        let Some(watches) = self.by_fd.get_mut(&fd) else {
            return false;
        };
        if !watches.iter().any(|w| w.concerns(edges)) {
            return false; // queued for another op, or a report of nothing asked for here
        }
        let linger = watches.iter().any(|w| w.linger);
        // Answered with what epoll reported, as poll(2) bits: no look of our own (the
        // look is taken when a poll is armed, where level triggering needs it).
        let ready = reported(edges);
        watches.retain(|w| {
            let answered = w.concerns(edges) && w.answer(io, ready);
            w.multishot || !answered
        });
        if watches.is_empty() {
            self.none_left(io, fd, bit, linger);
        }
        false
    }

    fn cancel(&mut self, io: &mut PollIo, fd: RawFd, target: u64, bit: OpBit) -> bool {
        let Some(watches) = self.by_fd.get_mut(&fd) else {
            return false;
        };
        let Some(i) = watches.iter().position(|w| w.user_data == target) else {
            return false;
        };
        let linger = watches.remove(i).linger;
        if watches.is_empty() {
            self.none_left(io, fd, bit, linger);
        }
        io.post(target, -libc::ECANCELED, false);
        true
    }

    fn forget(&mut self, fd: RawFd) {
        self.by_fd.remove(&fd);
    }
}

/// What an epoll report (bits of [`edge`]) says, in poll(2) bits.
fn reported(edges: u8) -> u32 {
    let bits = [
        (edge::READ, libc::POLLIN),
        (edge::WRITE, libc::POLLOUT),
        (edge::ERR, libc::POLLERR),
        (edge::RDHUP, libc::POLLRDHUP),
        (edge::HUP, libc::POLLHUP),
    ];
    bits.iter()
        .filter(|(e, _)| edges & e != 0)
        .fold(0, |m, (_, p)| m | *p as u16 as u32)
}

/// The caller is done polling `fd` (it is about to close it): the readiness backend
/// takes it out of the epoll set and forgets it, lingering or not (a dup kept elsewhere
/// would otherwise keep its file in the set); io_uring holds nothing for it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReleaseFd {
    pub fd: RawFd,
}

impl Call for ReleaseFd {
    type Answer = ();

    fn call_uring(self, _core: &mut UringCore) {}

    fn call_poll(self, core: &mut PollCore) {
        core.io().deregister(self.fd);
        core.forget_fd(self.fd);
    }

    #[cfg(test)]
    fn call_fake(self, _fake: &mut FakeDriver) {}
}

/// The readiness of `fd` now (poll(2) with no wait): the `revents` bits, `events` and
/// what is always reported; or the errno.
fn ready_now(fd: RawFd, events: u32) -> Result<u32, i32> {
    let mut p = libc::pollfd {
        fd,
        events: (events | ALWAYS) as u16 as i16,
        revents: 0,
    };
    match retry(|| {
        // SAFETY: one pollfd, a live local borrowed for the call; no wait.
        unsafe { libc::poll(&mut p, 1, 0) as isize }
    }) {
        Outcome::Done(_) => Ok(p.revents as u16 as u32),
        Outcome::WouldBlock => Ok(0),
        Outcome::Failed(e) => Err(e),
    }
}
