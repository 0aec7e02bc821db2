//! Operations as types. Each operation is a type that says, in its own file and side by
//! side, how it becomes an io_uring submission and how the readiness backend emulates it,
//! and owns (in a state type of that file) whatever it lends the kernel until its final
//! completion has been reaped.
//!
//! The backends' cores know no operation:
//! - [`UringCore`] pushes entries (the obligation is its `unsafe fn push`), keeps op
//!   states by type and tells each one about every completion it reaps
//!   ([`UringOpState`]), so an op releases its memory when the kernel is done with it;
//! - [`PollCore`] owns the epoll set, the descriptor table and the receive arena, keeps
//!   op states by type, marks a descriptor with the states armed on it, and calls those
//!   states when it is ready, cancelled or closed, or a deadline passes ([`PollOpState`]).
//!
//! The engine starts an operation with `Driver::start(op, user_data)` and asks about what
//! the driver holds for it (a finished send's unsent chunks) with `Driver::call(call)`.
//!
//! Adding an operation: its file here (the type, `impl Op`, any state), a `mod` line, and
//! one line in the `registry!` below, which re-exports it and puts its opcodes in the list
//! the io_uring probe checks.
//!
//! [`UringCore`]: crate::sys::uring::UringCore
//! [`UringOpState`]: crate::sys::uring::UringOpState
//! [`PollCore`]: crate::sys::poll::PollCore
//! [`PollOpState`]: crate::sys::poll::PollOpState

mod accept;
mod cancel;
mod close;
mod connect;
mod doorbell;
mod poll_add;
mod recv;
mod recv_from;
mod send;
mod send_file;
mod send_to;
mod shutdown;
mod state;
#[cfg(test)]
pub(crate) mod testing;
mod write_file;

#[cfg(test)]
use crate::sys::fake::FakeDriver;
use crate::sys::poll::PollCore;
use crate::sys::uring::UringCore;

pub(crate) use doorbell::DoorbellArmed;
pub(crate) use poll_add::ReleaseFd;
pub(crate) use recv_from::parse_datagram;
pub(crate) use send::ReclaimSend;
pub(crate) use send_file::FinishFileStep;
pub(crate) use send_to::{SOL_UDP, UDP_SEGMENT};
pub(crate) use state::{AsAny, OpStates};
pub(crate) use write_file::ReclaimWrite;

/// One kind of operation: the engine names each one with a `u64` (`user_data`) that
/// comes back in every completion it posts; the last has `more() == false`.
pub(crate) trait Op: Sized {
    /// What starting it answers at once (a send: the bytes it covers; else nothing).
    type Started;
    /// The operation's name (logs).
    const NAME: &'static str;
    /// The io_uring opcodes it submits, with the names a failed probe reports.
    const URING_OPCODES: &'static [(u8, &'static str)];

    /// Start it on io_uring: build its entries (lent memory goes into its state in
    /// `core` first) and push them.
    fn start_uring(self, core: &mut UringCore, user_data: u64) -> Self::Started;

    /// Start it on the readiness backend: do it now, or arm its state on the descriptor
    /// to be served when the descriptor is ready.
    fn start_poll(self, core: &mut PollCore, user_data: u64) -> Self::Started;

    /// Start it on the fake backend of the engine's tests: record it (and complete it at
    /// once if the kernel would: a cancel, a close); the test scripts the rest.
    #[cfg(test)]
    fn start_fake(self, fake: &mut FakeDriver, user_data: u64) -> Self::Started;
}

/// A synchronous call on what the driver holds for operations (nothing reaches the
/// kernel): e.g. give a finished send's unsent chunks back.
pub(crate) trait Call: Sized {
    /// What the call returns.
    type Answer;

    /// Answer it on io_uring.
    fn call_uring(self, core: &mut UringCore) -> Self::Answer;

    /// Answer it on the readiness backend.
    fn call_poll(self, core: &mut PollCore) -> Self::Answer;

    /// Answer it on the fake backend (tests).
    #[cfg(test)]
    fn call_fake(self, fake: &mut FakeDriver) -> Self::Answer;
}

/// The registry: every operation type, one line each. It re-exports the type and lists
/// its io_uring opcodes for the probe (`uring/probe.rs`).
macro_rules! registry {
    ($($module:ident :: $op:ident),* $(,)?) => {
        $(pub(crate) use $module::$op;)*

        /// The io_uring opcodes of every registered operation, by operation.
        pub(crate) const URING_OPCODES: &[&[(u8, &str)]] =
            &[$(<$op as Op>::URING_OPCODES),*];

        /// The names of every registered operation.
        #[allow(dead_code)] // for logs and tests
        pub(crate) const NAMES: &[&str] = &[$(<$op as Op>::NAME),*];
    };
}

registry! {
    accept::AcceptMulti,
    recv::RecvMulti,
    recv::RecvOnce,
    send::SendMsg,
    connect::Connect,
    shutdown::ShutdownWrite,
    cancel::Cancel,
    close::Close,
    doorbell::DoorbellRead,
    poll_add::PollAdd,
    recv_from::RecvFromMulti,
    send_to::SendTo,
    send_file::SendFileStep,
    write_file::WriteAt,
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_registered_op_names_its_opcodes() {
        assert_eq!(super::URING_OPCODES.len(), super::NAMES.len());
        let mut codes: Vec<u8> = super::URING_OPCODES
            .iter()
            .flat_map(|ops| ops.iter().map(|(code, _)| *code))
            .collect();
        assert!(super::URING_OPCODES.iter().all(|ops| !ops.is_empty()));
        // Ops may share an opcode (a stream send and a GSO datagram send are both
        // sendmsg); none lists one twice.
        for ops in super::URING_OPCODES {
            let mut own: Vec<u8> = ops.iter().map(|(code, _)| *code).collect();
            own.sort_unstable();
            own.dedup();
            assert_eq!(own.len(), ops.len(), "{ops:?}");
        }
        codes.sort_unstable();
        codes.dedup();
        assert!(!codes.is_empty());
    }
}
