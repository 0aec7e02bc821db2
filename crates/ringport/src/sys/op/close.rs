//! Close a descriptor; ownership passes to the operation. One completion (0 or an errno).

use super::Op;
#[cfg(test)]
use crate::sys::fake::FakeDriver;
use crate::sys::poll::PollCore;
use crate::sys::uring::UringCore;
use io_uring::{opcode, types};
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};

/// Close `fd` (asynchronously on io_uring).
#[derive(Debug)]
pub(crate) struct Close {
    /// The descriptor, owned by the operation from here.
    pub fd: OwnedFd,
}

impl Op for Close {
    type Started = ();
    const NAME: &'static str = "close";
    const URING_OPCODES: &'static [(u8, &'static str)] = &[(opcode::Close::CODE, "close")];

    fn start_uring(self, core: &mut UringCore, user_data: u64) {
        let e = opcode::Close::new(types::Fd(self.fd.into_raw_fd()))
            .build()
            .user_data(user_data);
        // SAFETY: the entry points to no memory; the fd is no longer owned by anyone here
        // (the kernel closes it).
        unsafe { core.push(&e) }
    }

    fn start_poll(self, core: &mut PollCore, user_data: u64) {
        // Closing removes the fd from the epoll set; forget its state before the number
        // is reused.
        core.forget_fd(self.fd.as_raw_fd());
        drop(self.fd);
        core.io().post(user_data, 0, false);
    }

    #[cfg(test)]
    fn start_fake(self, fake: &mut FakeDriver, user_data: u64) {
        fake.close(self.fd, user_data)
    }
}
