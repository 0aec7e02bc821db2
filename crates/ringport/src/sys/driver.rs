//! The `Driver` trait: the completion-style interface every backend offers the engine.

use super::Completion;
use crate::sys::outbound::Outbound;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{OwnedFd, RawFd};
use std::time::Duration;

/// Sizes a backend is built with (from the engine configuration).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DriverConfig {
    pub ring_entries: u32,
    pub cq_entries: u32,
    pub recv_buffers: u16,
    pub recv_buffer_size: u32,
}

/// One worker's I/O backend, seen as a completion port: the engine starts operations,
/// each named by a `u64` of its own, then waits and drains [`Completion`]s carrying
/// those names back. See the contract in `sys/mod.rs`.
pub(crate) trait Driver: Sized {
    /// Receive data lent by a receive completion until `recycle`.
    type RecvBuf;

    /// Set up the backend for one worker.
    fn new(config: DriverConfig) -> io::Result<Self>;

    /// A short description of the set-up (for logs), e.g. the io_uring flags.
    fn setup_name(&self) -> &'static str;

    /// Multishot accept on a listening socket: one completion per connection (the new
    /// fd), until an error or a cancel ends it (`more() == false`).
    fn accept_multi(&mut self, listener: RawFd, user_data: u64);

    /// Multishot receive: one completion per chunk received (bytes > 0), ended by EOF (0),
    /// an error, or a cancel.
    fn recv_multi(&mut self, fd: RawFd, user_data: u64);

    /// The data of a receive completion with a positive result.
    fn claim_recv(&mut self, c: &Completion) -> Option<Self::RecvBuf>;

    /// The bytes of a claimed receive.
    fn recv_bytes(&self, buf: &Self::RecvBuf) -> &[u8];

    /// Give a claimed receive's memory back.
    fn recycle(&mut self, buf: Self::RecvBuf);

    /// Send the front of `out` (the chunks move into the operation); one send per `key`
    /// at a time, and `key` is the low 32 bits of `user_data`. Returns the bytes the
    /// operation covers. Its completion says how many went out; then the engine calls
    /// `finish_send`.
    fn send(&mut self, key: u32, fd: RawFd, out: &mut Outbound, user_data: u64) -> usize;

    /// The send named `key` completed having sent `sent` bytes: the unsent chunks go
    /// back to the front of `out`. Safe to call at any time: a backend releases the
    /// operation's memory only once it has reaped its completion (an early call is logged
    /// and gives nothing back).
    fn finish_send(&mut self, key: u32, sent: usize, out: &mut Outbound);

    /// Connect `fd` to `addr`. Two completions follow: the connect's (`user_data`: 0, a
    /// negative errno, or -ECANCELED once `timeout` passed) and the timeout's
    /// (`timeout_user_data`). After both, the engine calls `finish_connect(key)`.
    fn connect(
        &mut self,
        key: u32,
        fd: RawFd,
        addr: SocketAddr,
        timeout: Duration,
        user_data: u64,
        timeout_user_data: u64,
    );

    /// Release what the connect named `key` held (`key`: the low 32 bits of both names),
    /// once both its completions have been reaped (an early call is logged, and the
    /// memory kept).
    fn finish_connect(&mut self, key: u32);

    /// Cancel the operation named `target`, started on `fd` (it completes with
    /// -ECANCELED unless it had already finished); the cancel itself completes with
    /// `user_data`.
    fn cancel(&mut self, target: u64, fd: RawFd, user_data: u64);

    /// Shut the write side of a socket (send FIN).
    fn shutdown_write(&mut self, fd: RawFd, user_data: u64);

    /// Close a descriptor; ownership passes to the backend.
    fn close(&mut self, fd: OwnedFd, user_data: u64);

    /// Wait for the doorbell eventfd `efd` to be rung (one wait at a time); completes
    /// with `user_data`.
    fn arm_doorbell(&mut self, efd: RawFd, user_data: u64);

    /// The doorbell wait completed.
    fn doorbell_done(&mut self);

    /// True while the doorbell wait is pending.
    fn doorbell_armed(&self) -> bool;

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
