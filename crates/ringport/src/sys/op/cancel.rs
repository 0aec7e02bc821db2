//! Cancel an operation by name: the target completes with -ECANCELED unless it had
//! already finished; the cancel itself completes with 0, or -ENOENT (nothing by that name
//! in flight) or -EALREADY (io_uring: too late to stop it).

use super::Op;
#[cfg(test)]
use crate::sys::fake::FakeDriver;
use crate::sys::poll::PollCore;
use crate::sys::uring::UringCore;
use io_uring::opcode;
use std::os::fd::RawFd;

/// Cancel the operation named `target`, started on `fd`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cancel {
    /// The name of the operation to cancel.
    pub target: u64,
    /// The descriptor it was started on (the readiness backend looks there).
    pub fd: RawFd,
}

impl Op for Cancel {
    type Started = ();
    const NAME: &'static str = "cancel";
    const URING_OPCODES: &'static [(u8, &'static str)] =
        &[(opcode::AsyncCancel::CODE, "async_cancel")];

    fn start_uring(self, core: &mut UringCore, user_data: u64) {
        let e = opcode::AsyncCancel::new(self.target)
            .build()
            .user_data(user_data);
        // SAFETY: the entry points to no memory.
        unsafe { core.push(&e) }
    }

    fn start_poll(self, core: &mut PollCore, user_data: u64) {
        // The op state armed on `fd` under that name posts the target's -ECANCELED.
        let found = core.cancel(self.fd, self.target);
        let result = if found { 0 } else { -libc::ENOENT };
        core.io().post(user_data, result, false);
    }

    #[cfg(test)]
    fn start_fake(self, fake: &mut FakeDriver, user_data: u64) {
        fake.cancel(self.target, user_data)
    }
}
