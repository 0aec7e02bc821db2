//! The portable readiness backend: mio (epoll here), edge-triggered, presented to the
//! engine as the same completion port as io_uring.
//!
//! Operations are emulated, each in its own file under `sys/op/` next to its io_uring
//! form: a multishot receive armed on a socket reads whenever epoll says it is readable,
//! into the worker's receive arena (one buffer per worker, reset every wait, so an idle
//! connection holds no receive memory), and posts one completion per read; a send writes
//! as soon as the socket is writable and completes with the bytes written (a partial
//! write completes partially, as io_uring does, and the engine sends the rest); accept,
//! connect (with its timeout), shutdown, close, cancel and the doorbell post the
//! completions their io_uring counterparts would. The core (`core.rs`) knows none of
//! them: it serves whichever op states are armed on a ready descriptor.

mod armed;
mod core;
mod fd_table;
mod syscalls;
#[cfg(test)]
mod tests;

use super::driver::{Driver, DriverConfig};
use super::op::{Call, Op};
use super::Completion;
use std::io;
use std::time::Duration;

pub(crate) use self::core::{
    ArenaDatagram, ArenaSlice, OpBit, PollCore, PollIo, PollOpState, ReadDatagram,
};
pub(crate) use armed::ArmedNames;
pub(crate) use fd_table::{edge, FdMap};
pub(crate) use syscalls::{retry, set_nonblocking, with_sock, Outcome};

/// One worker's epoll set and the operations armed on it.
pub(crate) struct PollDriver {
    core: PollCore,
}

impl Driver for PollDriver {
    type RecvBuf = ArenaSlice;

    fn new(config: DriverConfig) -> io::Result<Self> {
        // The arena bounds what one wait can read across all connections; it is reset
        // every wait, so it is a per-worker cost like io_uring's buffer ring.
        let arena = (config.recv_buffers as usize * config.recv_buffer_size as usize)
            .clamp(64 * 1024, 1024 * 1024);
        // A datagram read needs room for the largest datagram taken whole; the arena holds
        // at least four.
        // What io_uring takes whole, too: a buffer less the header it writes first.
        let buffer = match config.datagram_buffers {
            0 => config.recv_buffer_size,
            _ => config.datagram_buffer_size,
        };
        let datagram_max = buffer.saturating_sub(crate::sys::DATAGRAM_HEADROOM) as usize;
        // With datagram buffers, room for a batch of 64 of the largest (what io_uring's
        // datagram group holds too).
        let arena = match config.datagram_buffers {
            0 => arena.max(4 * datagram_max),
            n => arena.max(usize::from(n.min(64)) * datagram_max),
        };
        Ok(PollDriver {
            core: PollCore::new(arena, datagram_max)?,
        })
    }

    fn setup_name(&self) -> &'static str {
        "epoll (mio, edge-triggered)"
    }

    #[inline]
    fn start<O: Op>(&mut self, op: O, user_data: u64) -> O::Started {
        op.start_poll(&mut self.core, user_data)
    }

    #[inline]
    fn call<C: Call>(&mut self, call: C) -> C::Answer {
        call.call_poll(&mut self.core)
    }

    fn claim_recv(&mut self, c: &Completion) -> Option<ArenaSlice> {
        self.core.claim_recv(c)
    }

    fn recv_bytes(&self, buf: &ArenaSlice) -> &[u8] {
        self.core.recv_bytes(buf)
    }

    fn recycle(&mut self, _buf: ArenaSlice) {}

    type DatagramBuf = ArenaDatagram;

    fn claim_datagram(&mut self, c: &Completion) -> Option<ArenaDatagram> {
        self.core.claim_datagram(c)
    }

    fn datagram<'a>(&'a self, buf: &'a ArenaDatagram) -> super::Datagram<'a> {
        self.core.datagram(buf)
    }

    fn recycle_datagram(&mut self, _buf: ArenaDatagram) {}

    fn submit_and_wait(
        &mut self,
        _want: u32,
        _min_wait: Duration,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        self.core.submit_and_wait(timeout)
    }

    fn drain(&mut self, out: &mut Vec<Completion>) -> bool {
        self.core.drain(out);
        false
    }

    fn shutdown(&mut self) {}
}
