//! Multishot accept: one completion per connection (the new fd, non-blocking on the
//! readiness backend, close-on-exec on both), until an error or a cancel ends it
//! (`more() == false`).

use super::Op;
#[cfg(test)]
use crate::sys::fake::{FakeDriver, FakeOp};
use crate::sys::poll::{
    edge, retry, set_nonblocking, OpBit, Outcome, PollCore, PollIo, PollOpState,
};
use crate::sys::uring::UringCore;
use io_uring::{opcode, types};
use std::os::fd::RawFd;

/// Accepts of one listener per pass (readiness backend), so others get their turn.
const ACCEPTS_PER_PASS: usize = 64;

/// Multishot accept on a listening socket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AcceptMulti {
    /// The listening socket (the caller keeps it open until the accept's final
    /// completion).
    pub listener: RawFd,
}

impl Op for AcceptMulti {
    type Started = ();
    const NAME: &'static str = "accept";
    const URING_OPCODES: &'static [(u8, &'static str)] = &[(opcode::AcceptMulti::CODE, "accept")];

    fn start_uring(self, core: &mut UringCore, user_data: u64) {
        let e = opcode::AcceptMulti::new(types::Fd(self.listener))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(user_data);
        // SAFETY: the entry points to no memory; the listener stays open until the
        // accept's final completion (the caller's obligation, as for every fd).
        unsafe { core.push(&e) }
    }

    fn start_poll(self, core: &mut PollCore, user_data: u64) {
        let (io, accepts, bit) = core.op_state::<Accepting>();
        let fd = self.listener;
        let armed = set_nonblocking(fd).and_then(|()| io.register(fd, edge::READ, false));
        if let Err(e) = armed {
            return io.fail(user_data, e);
        }
        accepts.armed.retain(|(l, _)| *l != fd);
        accepts.armed.push((fd, user_data));
        io.arm(fd, bit);
        io.queue(fd);
    }

    #[cfg(test)]
    fn start_fake(self, fake: &mut FakeDriver, user_data: u64) {
        fake.start(FakeOp::Accept, user_data)
    }
}

/// The readiness backend's armed accepts: (listener, name); a worker has a few.
#[derive(Debug, Default)]
struct Accepting {
    armed: Vec<(RawFd, u64)>,
}

impl Accepting {
    fn name_on(&self, fd: RawFd) -> Option<u64> {
        self.armed.iter().find(|(l, _)| *l == fd).map(|(_, ud)| *ud)
    }

    /// The accept on `fd` ended: forget it and leave the epoll set, so that a re-arm
    /// starts fresh.
    fn end(&mut self, io: &mut PollIo, fd: RawFd, bit: OpBit) {
        self.forget(fd);
        io.disarm(fd, bit);
        io.deregister(fd);
    }
}

impl PollOpState for Accepting {
    fn serve(&mut self, io: &mut PollIo, fd: RawFd, bit: OpBit) -> bool {
        let Some(ud) = self.name_on(fd) else {
            return false;
        };
        if !io.fd(fd).readable {
            return false;
        }
        for _ in 0..ACCEPTS_PER_PASS {
            match accept(fd) {
                Outcome::Done(new_fd) => io.post(ud, new_fd as i32, true),
                Outcome::WouldBlock => {
                    io.fd(fd).readable = false;
                    return false;
                }
                // The peer left before we took it: nothing to report.
                Outcome::Failed(libc::ECONNABORTED) => {}
                Outcome::Failed(e) => {
                    // EMFILE and the like end the accept, as on io_uring; the engine
                    // pauses and re-arms.
                    self.end(io, fd, bit);
                    io.post(ud, -e, false);
                    return false;
                }
            }
        }
        true // still readable: more on the next pass
    }

    fn cancel(&mut self, io: &mut PollIo, fd: RawFd, target: u64, bit: OpBit) -> bool {
        if self.name_on(fd) != Some(target) {
            return false;
        }
        self.end(io, fd, bit);
        io.post(target, -libc::ECANCELED, false);
        true
    }

    fn forget(&mut self, fd: RawFd) {
        self.armed.retain(|(l, _)| *l != fd);
    }
}

/// Accept one connection as a non-blocking, close-on-exec socket.
fn accept(listener: RawFd) -> Outcome {
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
