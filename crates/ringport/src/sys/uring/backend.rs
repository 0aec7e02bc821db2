//! The io_uring backend behind the [`Driver`] trait: a ring core and its provided-buffer
//! ring. Operations start through [`Op::start_uring`]; nothing here is op-specific.

use super::{BufRing, UringCore};
use crate::sys::driver::{Driver, DriverConfig};
use crate::sys::op::{Call, Op};
use crate::sys::Completion;
use std::io;
use std::time::Duration;

/// Buffer group id of the worker's receive buffers.
const RECV_GROUP: u16 = 0;
/// Buffer group id of the worker's datagram buffers.
const DATAGRAM_GROUP: u16 = 1;

/// One worker's io_uring with its receive buffers.
pub(crate) struct UringDriver {
    // Field order matters: the ring drops first (releasing the buffer registration),
    // then the buffer memory.
    core: UringCore,
    bufs: BufRing,
    /// Datagram buffers, if the engine has datagram sockets (else datagram receives take
    /// `bufs`).
    datagrams: Option<BufRing>,
    /// `shutdown` ran: the worker closed everything first, nothing is armed.
    clean: bool,
}

impl Drop for UringDriver {
    fn drop(&mut self) {
        if !self.clean {
            // An abandoned worker (lost): receives may be armed; keep their buffers.
            self.bufs.leak();
            if let Some(d) = self.datagrams.as_mut() {
                d.leak();
            }
        }
    }
}

impl Driver for UringDriver {
    type RecvBuf = super::buf_ring::BufId;

    fn new(config: DriverConfig) -> io::Result<Self> {
        let mut core = UringCore::new(config.ring_entries, config.cq_entries, RECV_GROUP)?;
        let bufs = BufRing::new(
            core.ring(),
            RECV_GROUP,
            config.recv_buffers,
            config.recv_buffer_size,
        )?;
        debug_assert_eq!(bufs.group(), core.recv_group());
        let datagrams = match config.datagram_buffers {
            0 => None,
            n => {
                let ring =
                    BufRing::new(core.ring(), DATAGRAM_GROUP, n, config.datagram_buffer_size)?;
                core.set_datagram_group(DATAGRAM_GROUP);
                Some(ring)
            }
        };
        tracing::debug!(
            setup = core.setup_name(),
            min_wait = core.min_wait_supported(),
            "io_uring worker ring set up"
        );
        Ok(UringDriver {
            core,
            bufs,
            datagrams,
            clean: false,
        })
    }

    fn setup_name(&self) -> &'static str {
        self.core.setup_name()
    }

    #[inline]
    fn start<O: Op>(&mut self, op: O, user_data: u64) -> O::Started {
        op.start_uring(&mut self.core, user_data)
    }

    #[inline]
    fn call<C: Call>(&mut self, call: C) -> C::Answer {
        call.call_uring(&mut self.core)
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

    type DatagramBuf = super::buf_ring::BufId;

    fn claim_datagram(&mut self, c: &Completion) -> Option<Self::DatagramBuf> {
        // A multishot recvmsg's result is the bytes it wrote into the buffer: header,
        // address, payload.
        let len = usize::try_from(c.result).ok()?;
        self.datagrams
            .as_mut()
            .unwrap_or(&mut self.bufs)
            .claim(c.flags, len)
    }

    fn datagram<'a>(&'a self, buf: &'a Self::DatagramBuf) -> crate::sys::Datagram<'a> {
        let bytes = self.datagrams.as_ref().unwrap_or(&self.bufs).bytes(buf);
        crate::sys::op::parse_datagram(bytes)
    }

    fn recycle_datagram(&mut self, buf: Self::DatagramBuf) {
        self.datagrams
            .as_mut()
            .unwrap_or(&mut self.bufs)
            .recycle(buf)
    }

    fn submit_and_wait(
        &mut self,
        want: u32,
        min_wait: Duration,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        self.core.submit_and_wait(want, min_wait, timeout)
    }

    fn drain(&mut self, out: &mut Vec<Completion>) -> bool {
        self.core.drain(out)
    }

    fn shutdown(&mut self) {
        self.bufs.unregister(self.core.ring());
        if let Some(d) = &self.datagrams {
            d.unregister(self.core.ring());
        }
        self.clean = true;
    }
}
