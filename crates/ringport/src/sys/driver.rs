//! The `Driver` trait: the completion-style interface every backend offers the engine.

use super::op::{
    AcceptMulti, Call, Cancel, Close, Connect, DoorbellArmed, DoorbellRead, Op, ReclaimSend,
    RecvMulti, SendMsg, ShutdownWrite,
};
use super::Completion;
use crate::sys::outbound::Outbound;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{OwnedFd, RawFd};
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
    /// lends the kernel is the driver's until its final completion has been reaped.
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

    /// Multishot accept ([`AcceptMulti`]).
    /// Shim; call sites move to `start`.
    fn accept_multi(&mut self, listener: RawFd, user_data: u64) {
        self.start(AcceptMulti { listener }, user_data)
    }

    /// Multishot receive ([`RecvMulti`]).
    /// Shim; call sites move to `start`.
    fn recv_multi(&mut self, fd: RawFd, user_data: u64) {
        self.start(RecvMulti { fd }, user_data)
    }

    /// Send the front of `out` ([`SendMsg`]); returns the bytes the operation covers.
    /// Shim; call sites move to `start`.
    fn send(&mut self, key: u32, fd: RawFd, out: &mut Outbound, user_data: u64) -> usize {
        self.start(SendMsg { key, fd, out }, user_data)
    }

    /// The send named `key` completed having sent `sent` bytes: its unsent chunks go
    /// back to `out` ([`ReclaimSend`]: only once its completion was reaped).
    /// Shim; call sites move to `call`.
    fn finish_send(&mut self, key: u32, sent: usize, out: &mut Outbound) {
        self.call(ReclaimSend { key, sent, out })
    }

    /// Connect `fd` to `addr` with a timeout ([`Connect`]: two completions).
    /// Shim; call sites move to `start`.
    fn connect(
        &mut self,
        key: u32,
        fd: RawFd,
        addr: SocketAddr,
        timeout: Duration,
        user_data: u64,
        timeout_user_data: u64,
    ) {
        let op = Connect {
            key,
            fd,
            addr,
            timeout,
            timeout_user_data,
        };
        self.start(op, user_data)
    }

    /// Nothing: a connect's memory is released by the driver once both of its
    /// completions have been reaped.
    /// Shim; call sites move to `start` (and drop this call).
    fn finish_connect(&mut self, _key: u32) {}

    /// Cancel the operation named `target`, started on `fd` ([`Cancel`]).
    /// Shim; call sites move to `start`.
    fn cancel(&mut self, target: u64, fd: RawFd, user_data: u64) {
        self.start(Cancel { target, fd }, user_data)
    }

    /// Shut the write side of a socket ([`ShutdownWrite`]).
    /// Shim; call sites move to `start`.
    fn shutdown_write(&mut self, fd: RawFd, user_data: u64) {
        self.start(ShutdownWrite { fd }, user_data)
    }

    /// Close a descriptor; ownership passes to the backend ([`Close`]).
    /// Shim; call sites move to `start`.
    fn close(&mut self, fd: OwnedFd, user_data: u64) {
        self.start(Close { fd }, user_data)
    }

    /// Wait for the doorbell eventfd `efd` to be rung ([`DoorbellRead`]; one at a time).
    /// Shim; call sites move to `start`.
    fn arm_doorbell(&mut self, efd: RawFd, user_data: u64) {
        self.start(DoorbellRead { efd }, user_data)
    }

    /// Nothing: the driver notes the doorbell read's completion itself when it reaps it.
    /// Shim; call sites move to `start` (and drop this call).
    fn doorbell_done(&mut self) {}

    /// True while the doorbell read is in flight (its completion not yet drained).
    /// Shim; call sites move to `call` ([`DoorbellArmed`]).
    fn doorbell_armed(&mut self) -> bool {
        self.call(DoorbellArmed)
    }
}
