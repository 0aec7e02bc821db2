//! The names of the multishot receives an op state has armed, one per descriptor: what
//! the stream receive and the datagram receive of the readiness backend share (arming,
//! ending with a final completion, cancelling, forgetting a closed descriptor).

use super::{FdMap, OpBit, PollIo};
use std::os::fd::RawFd;

/// One name per descriptor (valid where the owning state's bit marks the descriptor).
#[derive(Debug, Default)]
pub(crate) struct ArmedNames {
    names: FdMap<u64>,
}

impl ArmedNames {
    /// Arm `user_data` on `fd` (registered for reads and writes) and serve it on the next
    /// pass; an `fd` epoll refuses completes at once with the error.
    pub(crate) fn arm(&mut self, io: &mut PollIo, fd: RawFd, user_data: u64, bit: OpBit) {
        if let Err(e) = io.register(fd, super::edge::READ | super::edge::WRITE, true) {
            return io.fail(user_data, e);
        }
        self.names.set(fd, user_data);
        io.arm(fd, bit);
        io.queue(fd);
    }

    /// The name armed on `fd`.
    pub(crate) fn name(&self, fd: RawFd) -> u64 {
        self.names.value(fd)
    }

    /// The operation on `fd` ended: post its final completion.
    pub(crate) fn end(&mut self, io: &mut PollIo, fd: RawFd, bit: OpBit, ud: u64, result: i32) {
        self.names.clear(fd);
        io.disarm(fd, bit);
        io.post(ud, result, false);
    }

    /// Cancel `target` if it is the one armed on `fd` (a final -ECANCELED).
    pub(crate) fn cancel(&mut self, io: &mut PollIo, fd: RawFd, target: u64, bit: OpBit) -> bool {
        if self.names.value(fd) != target {
            return false;
        }
        self.end(io, fd, bit, target, -libc::ECANCELED);
        true
    }

    /// `fd` is being closed.
    pub(crate) fn forget(&mut self, fd: RawFd) {
        self.names.clear(fd);
    }
}
