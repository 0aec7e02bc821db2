//! The `Driver` trait: the completion-style interface every backend offers the engine.

use super::op::{Call, Op};
use super::Completion;
use std::io;
use std::time::Duration;

/// Sizes a backend is built with (from the engine configuration).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DriverConfig {
    /// Submission queue entries (io_uring).
    pub ring_entries: u32,
    /// Completion queue entries (io_uring).
    pub cq_entries: u32,
    /// Receive buffers (io_uring's buffer ring; with the size, the readiness backend's
    /// arena).
    pub recv_buffers: u16,
    /// Bytes of each receive buffer.
    pub recv_buffer_size: u32,
}

/// One worker's I/O backend, seen as a completion port: the engine starts operations
/// (`sys/op/`), each named by a `u64` of its own, then waits and drains [`Completion`]s
/// carrying those names back. See the contract in `sys/mod.rs`.
pub(crate) trait Driver: Sized {
    /// Receive data lent by a receive completion until `recycle`.
    type RecvBuf;

    /// Set up the backend for one worker.
    fn new(config: DriverConfig) -> io::Result<Self>;

    /// A short description of the set-up (for logs), e.g. the io_uring flags.
    fn setup_name(&self) -> &'static str;

    /// Start `op`, named `user_data` (its completions carry the name back). What it
    /// lends the kernel is the driver's until its final completion has been reaped. The
    /// one obligation left to the caller is not about memory: a descriptor an op names
    /// must stay open until that op's final completion (else its I/O would reach
    /// whatever file next takes the number).
    fn start<O: Op>(&mut self, op: O, user_data: u64) -> O::Started;

    /// Answer a call on what the driver holds for operations (e.g. [`ReclaimSend`]).
    fn call<C: Call>(&mut self, call: C) -> C::Answer;

    /// The data of a receive completion with a positive result.
    fn claim_recv(&mut self, c: &Completion) -> Option<Self::RecvBuf>;

    /// The bytes of a claimed receive.
    fn recv_bytes(&self, buf: &Self::RecvBuf) -> &[u8];

    /// Give a claimed receive's memory back.
    fn recycle(&mut self, buf: Self::RecvBuf);

    /// Start what was asked and wait for completions: at least one, or `timeout`. A
    /// backend that can may wait for up to `want` completions but no longer than
    /// `min_wait` once one has arrived.
    fn submit_and_wait(
        &mut self,
        want: u32,
        min_wait: Duration,
        timeout: Option<Duration>,
    ) -> io::Result<()>;

    /// Move the completions that are ready into `out`. Returns true if the backend's
    /// completion queue overflowed (nothing lost; counted by the engine).
    fn drain(&mut self, out: &mut Vec<Completion>) -> bool;

    /// The worker is stopping: release what the kernel holds (buffer registrations).
    fn shutdown(&mut self);
}
