//! The io_uring backend behind the [`Driver`] trait: a ring and its provided-buffer ring.

use super::{BufRing, Uring};
use crate::sys::driver::{Driver, DriverConfig};
use crate::sys::outbound::Outbound;
use crate::sys::Completion;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{OwnedFd, RawFd};
use std::time::Duration;

/// Buffer group id of the worker's receive buffers.
const RECV_GROUP: u16 = 0;

/// One worker's io_uring with its receive buffers.
pub(crate) struct UringDriver {
    // Field order matters: the ring drops first (releasing the buffer registration),
    // then the buffer memory.
    ring: Uring,
    bufs: BufRing,
    /// `shutdown` ran: the worker closed everything first, nothing is armed.
    clean: bool,
}

impl Drop for UringDriver {
    fn drop(&mut self) {
        if !self.clean {
            // An abandoned worker (lost): receives may be armed; keep their buffers.
            self.bufs.leak();
        }
    }
}

impl Driver for UringDriver {
    type RecvBuf = super::buf_ring::BufId;

    fn new(config: DriverConfig) -> io::Result<Self> {
        let ring = Uring::new(config.ring_entries, config.cq_entries)?;
        let bufs = BufRing::new(
            ring.ring(),
            RECV_GROUP,
            config.recv_buffers,
            config.recv_buffer_size,
        )?;
        tracing::debug!(
            setup = ring.setup_name(),
            min_wait = ring.min_wait_supported(),
            "io_uring worker ring set up"
        );
        Ok(UringDriver {
            ring,
            bufs,
            clean: false,
        })
    }

    fn setup_name(&self) -> &'static str {
        self.ring.setup_name()
    }

    fn accept_multi(&mut self, listener: RawFd, user_data: u64) {
        self.ring.accept_multi(listener, user_data)
    }

    fn recv_multi(&mut self, fd: RawFd, user_data: u64) {
        self.ring.recv_multi(fd, self.bufs.group(), user_data)
    }

    #[inline]
    fn claim_recv(&mut self, c: &Completion) -> Option<Self::RecvBuf> {
        self.bufs.claim(c.flags, c.result.max(0) as usize)
    }

    #[inline]
    fn recv_bytes(&self, buf: &Self::RecvBuf) -> &[u8] {
        self.bufs.bytes(buf)
    }

    #[inline]
    fn recycle(&mut self, buf: Self::RecvBuf) {
        self.bufs.recycle(buf)
    }

    #[inline]
    fn send(&mut self, key: u32, fd: RawFd, out: &mut Outbound, user_data: u64) -> usize {
        self.ring.send(key, fd, out, user_data)
    }

    #[inline]
    fn finish_send(&mut self, key: u32, sent: usize, out: &mut Outbound) {
        self.ring.finish_send(key, sent, out)
    }

    fn connect(
        &mut self,
        key: u32,
        fd: RawFd,
        addr: SocketAddr,
        timeout: Duration,
        user_data: u64,
        timeout_user_data: u64,
    ) {
        self.ring
            .connect(key, fd, addr, timeout, user_data, timeout_user_data)
    }

    fn finish_connect(&mut self, key: u32) {
        self.ring.finish_connect(key)
    }

    fn cancel(&mut self, target: u64, _fd: RawFd, user_data: u64) {
        self.ring.cancel(target, user_data)
    }

    fn shutdown_write(&mut self, fd: RawFd, user_data: u64) {
        self.ring.shutdown_write(fd, user_data)
    }

    fn close(&mut self, fd: OwnedFd, user_data: u64) {
        self.ring.close(fd, user_data)
    }

    fn arm_doorbell(&mut self, efd: RawFd, user_data: u64) {
        self.ring.arm_doorbell(efd, user_data)
    }

    fn doorbell_done(&mut self) {
        self.ring.doorbell_done()
    }

    fn doorbell_armed(&self) -> bool {
        self.ring.doorbell_armed()
    }

    fn submit_and_wait(
        &mut self,
        want: u32,
        min_wait: Duration,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        self.ring.submit_and_wait(want, min_wait, timeout)
    }

    fn drain(&mut self, out: &mut Vec<Completion>) -> bool {
        self.ring.drain(out)
    }

    fn shutdown(&mut self) {
        self.bufs.unregister(self.ring.ring());
        self.clean = true;
    }
}
