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
    /// Datagram receive buffers (io_uring: a second provided-buffer group; none when 0,
    /// and datagram receives then take the stream buffers).
    pub datagram_buffers: u16,
    /// Bytes of each datagram buffer: the largest datagram received whole, plus the
    /// [`DATAGRAM_HEADROOM`] io_uring writes in front of it.
    pub datagram_buffer_size: u32,
}

/// What a datagram buffer holds besides the payload on io_uring: the recvmsg header and
/// room for the source address.
pub(crate) const DATAGRAM_HEADROOM: u32 = 16 + 128;

/// A received datagram, as a datagram receive's completion lends it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Datagram<'a> {
    /// Where it came from (`None`: an address family the engine does not speak).
    pub from: Option<std::net::SocketAddr>,
    /// Its bytes (all of them unless `truncated`).
    pub data: &'a [u8],
    /// It was longer than the buffer: `data` is its beginning only.
    pub truncated: bool,
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

    /// Received datagram data lent by a datagram receive completion until
    /// `recycle_datagram`.
    type DatagramBuf;

    /// The datagram of a datagram receive completion with a result of zero or more.
    fn claim_datagram(&mut self, c: &Completion) -> Option<Self::DatagramBuf>;

    /// The datagram a claimed buffer holds.
    fn datagram<'a>(&'a self, buf: &'a Self::DatagramBuf) -> Datagram<'a>;

    /// Give a claimed datagram's memory back.
    fn recycle_datagram(&mut self, buf: Self::DatagramBuf);

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
