//! Multishot receive: one completion per chunk received (bytes > 0, the data lent by the
//! backend: `Driver::claim_recv`), ended by EOF (0), an error, or a cancel. No receive
//! memory belongs to the connection: io_uring picks a buffer of the worker's provided
//! group when data arrives; the readiness backend reads into the worker's arena.

use super::Op;
#[cfg(test)]
use crate::sys::fake::{FakeDriver, FakeOp};
use crate::sys::poll::{retry, ArmedNames, OpBit, Outcome, PollCore, PollIo, PollOpState};
use crate::sys::uring::UringCore;
use io_uring::{opcode, types};
use std::os::fd::RawFd;

/// Reads of one socket per pass (readiness backend) before others get their turn.
const READS_PER_PASS: usize = 4;

/// Multishot receive on a connected socket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecvMulti {
    /// The socket (kept open by the caller until the receive's final completion).
    pub fd: RawFd,
}

impl Op for RecvMulti {
    type Started = ();
    const NAME: &'static str = "recv";
    const URING_OPCODES: &'static [(u8, &'static str)] = &[(opcode::RecvMulti::CODE, "recv")];

    fn start_uring(self, core: &mut UringCore, user_data: u64) {
        let e = opcode::RecvMulti::new(types::Fd(self.fd), core.recv_group())
            .build()
            .user_data(user_data);
        // SAFETY: buffers come from the registered ring, owned by the worker's BufRing,
        // which outlives every receive: a clean shutdown closes every connection first,
        // and a driver dropped without one leaks the buffers (`UringDriver::drop`).
        unsafe { core.push(&e) }
    }

    fn start_poll(self, core: &mut PollCore, user_data: u64) {
        let (io, recvs, bit) = core.op_state::<Receiving>();
        recvs.armed.arm(io, self.fd, user_data, bit);
    }

    #[cfg(test)]
    fn start_fake(self, fake: &mut FakeDriver, user_data: u64) {
        fake.start(FakeOp::Recv, user_data)
    }
}

/// One receive on a connected socket (io_uring: `IORING_OP_RECV` taking one buffer of the
/// worker's group; its completion is final), for a connection whose reading is paced:
/// one chunk per arm instead of everything the socket holds (see the engine's job cap).
/// The readiness backend reads as for [`RecvMulti`]: a pause reaches it before its next
/// pass, so it reads at most a pass's few chunks beyond one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecvOnce {
    /// The socket (kept open by the caller until the receive's completion).
    pub fd: RawFd,
}

impl Op for RecvOnce {
    type Started = ();
    const NAME: &'static str = "recv (one)";
    const URING_OPCODES: &'static [(u8, &'static str)] = &[(opcode::Recv::CODE, "recv (one)")];

    fn start_uring(self, core: &mut UringCore, user_data: u64) {
        // No address and no length: with BUFFER_SELECT the kernel picks a buffer of the
        // group and receives up to its size.
        let e = opcode::Recv::new(types::Fd(self.fd), std::ptr::null_mut(), 0)
            .buf_group(core.recv_group())
            .build()
            .flags(io_uring::squeue::Flags::BUFFER_SELECT)
            .user_data(user_data);
        // SAFETY: as for `RecvMulti`: the buffer comes from the registered ring, owned by
        // the worker's BufRing, which outlives every receive.
        unsafe { core.push(&e) }
    }

    fn start_poll(self, core: &mut PollCore, user_data: u64) {
        RecvMulti { fd: self.fd }.start_poll(core, user_data)
    }

    #[cfg(test)]
    fn start_fake(self, fake: &mut FakeDriver, user_data: u64) {
        fake.start(FakeOp::Recv, user_data)
    }
}

/// The readiness backend's armed receives: each one's name, by descriptor (valid where
/// this state's bit marks the descriptor).
#[derive(Debug, Default)]
struct Receiving {
    armed: ArmedNames,
}

impl PollOpState for Receiving {
    fn serve(&mut self, io: &mut PollIo, fd: RawFd, bit: OpBit) -> bool {
        let ud = self.armed.name(fd);
        if !io.fd(fd).readable {
            return false;
        }
        for _ in 0..READS_PER_PASS {
            let Some(room) = io.arena_room() else {
                return true; // the arena is full for this batch; served on the next pass
            };
            let want = room.len();
            match recv(fd, room) {
                Outcome::Done(0) => {
                    self.armed.end(io, fd, bit, ud, 0);
                    return false;
                }
                Outcome::Done(n) => {
                    io.post_received(ud, n);
                    let st = io.fd(fd);
                    if n < want && !st.read_closed {
                        // A short read emptied the socket and epoll reports new data (and
                        // a FIN) with a new edge; once a FIN was seen, read on to EOF.
                        st.readable = false;
                        return false;
                    }
                }
                Outcome::WouldBlock => {
                    io.fd(fd).readable = false;
                    return false;
                }
                Outcome::Failed(e) => {
                    self.armed.end(io, fd, bit, ud, -e);
                    return false;
                }
            }
        }
        true // still readable: more on the next pass
    }

    fn cancel(&mut self, io: &mut PollIo, fd: RawFd, target: u64, bit: OpBit) -> bool {
        self.armed.cancel(io, fd, target, bit)
    }

    fn forget(&mut self, fd: RawFd) {
        self.armed.forget(fd);
    }
}

/// Receive into `buf` without blocking.
fn recv(fd: RawFd, buf: &mut [u8]) -> Outcome {
    retry(|| {
        // SAFETY: writes at most `buf.len()` bytes into `buf`, which we borrow mutably.
        unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) }
    })
}
