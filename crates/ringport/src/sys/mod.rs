//! The operating-system edge: the only module with `unsafe`.
//!
//! Contract with the engine above:
//! - The engine names every operation with a `u64` user_data of its own choosing and gets
//!   it back, unchanged, in each [`Completion`]. Multishot operations (accept, receive)
//!   post many completions; the last one of an operation has `more() == false`.
//! - Memory an operation reads or writes (send iovecs, connect addresses, timeouts, the
//!   doorbell counter, receive buffers) is owned here until the operation's final
//!   completion has been drained, so no engine mistake can make the kernel touch freed
//!   memory. The engine tells when it is done with a keyed resource
//!   (`finish_send`, `finish_connect`); a resource still in flight when the ring is
//!   dropped is leaked rather than freed.
//! - Receive data is lent from the provided-buffer ring: a completion's buffer is claimed
//!   as a [`uring::BufId`], read through the ring, and given back with `recycle`.
//! - Submissions never fail silently: a full submission queue is flushed to the kernel,
//!   and completions reaped meanwhile are kept for the next drain.

pub(crate) mod eventfd;
pub(crate) mod socket;
pub(crate) mod uring;

pub(crate) use eventfd::EventFd;

/// One completed operation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Completion {
    /// The engine's name for the operation.
    pub user_data: u64,
    /// The result: bytes, an fd, 0, or a negative errno.
    pub result: i32,
    /// The kernel's completion flags.
    pub flags: u32,
}

impl Completion {
    /// More completions of this (multishot) operation will follow.
    pub fn more(&self) -> bool {
        io_uring::cqueue::more(self.flags)
    }
}
