//! Shut the write side of a socket (SHUT_WR: send FIN); one completion, 0 or an errno.

use super::Op;
#[cfg(test)]
use crate::sys::fake::{FakeDriver, FakeOp};
use crate::sys::poll::{with_sock, PollCore};
use crate::sys::uring::UringCore;
use io_uring::{opcode, types};
use std::os::fd::RawFd;

/// shutdown(fd, SHUT_WR).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShutdownWrite {
    /// The socket (kept open by the caller until the completion).
    pub fd: RawFd,
}

impl Op for ShutdownWrite {
    type Started = ();
    const NAME: &'static str = "shutdown";
    const URING_OPCODES: &'static [(u8, &'static str)] = &[(opcode::Shutdown::CODE, "shutdown")];

    fn start_uring(self, core: &mut UringCore, user_data: u64) {
        let e = opcode::Shutdown::new(types::Fd(self.fd), libc::SHUT_WR)
            .build()
            .user_data(user_data);
        // SAFETY: the entry points to no memory.
        unsafe { core.push(&e) }
    }

    fn start_poll(self, core: &mut PollCore, user_data: u64) {
        let result = match with_sock(self.fd, |s| s.shutdown(std::net::Shutdown::Write)) {
            Ok(()) => 0,
            Err(e) => -e.raw_os_error().unwrap_or(libc::EIO),
        };
        core.io().post(user_data, result, false);
    }

    #[cfg(test)]
    fn start_fake(self, fake: &mut FakeDriver, user_data: u64) {
        fake.start(FakeOp::Shutdown, user_data)
    }
}
