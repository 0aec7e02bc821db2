//! Send one datagram to an address (`sendto`): one completion with the bytes sent or an
//! error. Several may be in flight on one socket, each under its own name; the engine
//! submits a batch of them per wait.
//!
//! - io_uring: `IORING_OP_SEND` with a destination address; the address and the bytes
//!   are held by this op's state until the completion is reaped.
//! - readiness backend: queued, and sent on the next pass with whatever else was queued
//!   on the socket by then, in one `sendmmsg` (up to 64 datagrams); if the socket's
//!   buffer is full (EAGAIN), they wait, in order, until epoll says it is writable.

#[cfg(test)]
mod tests;

use super::Op;
#[cfg(test)]
use crate::sys::fake::{FakeDriver, FakeOp};
use crate::sys::int_map::IntMap;
use crate::sys::poll::{edge, retry, OpBit, Outcome, PollCore, PollIo, PollOpState};
use crate::sys::uring::{UringCore, UringOpState};
use crate::sys::Completion;
use bytes::Bytes;
use io_uring::{opcode, types};
use socket2::SockAddr;
use std::collections::{HashMap, VecDeque};
use std::os::fd::RawFd;

/// Send `data` to `to` on datagram socket `fd`: one datagram, or with `segment` above
/// zero several of `segment` bytes each (UDP GSO: `UDP_SEGMENT`; the kernel cuts `data`
/// into datagrams, the last one possibly shorter).
#[derive(Debug, Clone)]
pub(crate) struct SendTo {
    /// The socket (kept open by the caller until the send's completion).
    pub fd: RawFd,
    pub to: SockAddr,
    pub data: Bytes,
    pub segment: u16,
}

/// `SOL_UDP` and its `UDP_SEGMENT` option (Linux 4.18; the libc crate does not name them
/// for every target).
pub(crate) const SOL_UDP: i32 = 17;
pub(crate) const UDP_SEGMENT: i32 = 103;

/// Room for one control message carrying a `u16` (CMSG_SPACE(2)), 8-byte aligned.
type SegmentCmsg = [u64; 3];

/// Write a `UDP_SEGMENT` control message of `segment` into `buf`; its length.
fn segment_cmsg(buf: &mut SegmentCmsg, segment: u16) -> usize {
    // SAFETY: CMSG_SPACE and CMSG_LEN only compute sizes.
    let (space, len) = unsafe { (libc::CMSG_SPACE(2) as usize, libc::CMSG_LEN(2) as usize) };
    debug_assert!(space <= std::mem::size_of::<SegmentCmsg>());
    let hdr = buf.as_mut_ptr().cast::<libc::cmsghdr>();
    // SAFETY: `buf` is 8-byte aligned and at least CMSG_SPACE(2) bytes long, so it holds
    // one cmsghdr and its two data bytes; all writes stay inside it.
    unsafe {
        (*hdr).cmsg_level = SOL_UDP;
        (*hdr).cmsg_type = UDP_SEGMENT;
        (*hdr).cmsg_len = len as _;
        libc::CMSG_DATA(hdr).cast::<u16>().write_unaligned(segment);
    }
    space
}

impl Op for SendTo {
    type Started = ();
    const NAME: &'static str = "send_to";
    const URING_OPCODES: &'static [(u8, &'static str)] = &[
        (opcode::Send::CODE, "send"),
        (opcode::SendMsg::CODE, "sendmsg (UDP GSO)"),
    ];

    fn start_uring(self, core: &mut UringCore, user_data: u64) {
        let held = core.state::<SendsTo>();
        // SAFETY: msghdr and iovec are plain data; all zeroes is valid.
        let (msg, iov) = unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
        let mut mem = Box::new(Lent {
            to: self.to,
            data: self.data,
            msg,
            iov,
            cmsg: [0; 3],
        });
        let e = if self.segment == 0 {
            opcode::Send::new(types::Fd(self.fd), mem.data.as_ptr(), mem.data.len() as u32)
                .dest_addr(mem.to.as_ptr())
                .dest_addr_len(mem.to.len())
                .build()
        } else {
            let m = &mut *mem;
            m.iov = libc::iovec {
                iov_base: m.data.as_ptr() as *mut libc::c_void,
                iov_len: m.data.len(),
            };
            m.msg.msg_name = m.to.as_ptr() as *mut libc::c_void;
            m.msg.msg_namelen = m.to.len();
            m.msg.msg_iov = &mut m.iov;
            m.msg.msg_iovlen = 1;
            m.msg.msg_controllen = segment_cmsg(&mut m.cmsg, self.segment) as _;
            m.msg.msg_control = m.cmsg.as_mut_ptr().cast();
            opcode::SendMsg::new(types::Fd(self.fd), &m.msg).build()
        }
        .user_data(user_data);
        let earlier = held.lent.insert(user_data, mem);
        debug_assert!(earlier.is_none(), "two sends in flight under one name");
        // SAFETY: the address and the bytes are boxed (the box and the `Bytes` heap never
        // move) in this op's state until the send's completion is reaped, or leaked with
        // the ring.
        unsafe { core.push(&e) }
    }

    fn start_poll(self, core: &mut PollCore, user_data: u64) {
        let (io, sends, bit) = core.op_state::<SendingTo>();
        if !sends.queues.get(&self.fd).is_some_and(|q| !q.is_empty()) {
            // Sent on the next pass, with whatever else is queued by then: one sendmmsg.
            if let Err(e) = io.register(self.fd, edge::READ | edge::WRITE, true) {
                return io.fail(user_data, e);
            }
            io.arm(self.fd, bit);
            io.queue(self.fd);
        }
        sends.queues.entry(self.fd).or_default().push_back((
            user_data,
            self.to,
            self.data,
            self.segment,
        ));
    }

    #[cfg(test)]
    fn start_fake(self, fake: &mut FakeDriver, user_data: u64) {
        fake.start(FakeOp::SendTo, user_data)
    }
}

/// What one io_uring send lends the kernel (the header, iovec and control message only
/// for a GSO send).
struct Lent {
    to: SockAddr,
    data: Bytes,
    msg: libc::msghdr,
    iov: libc::iovec,
    cmsg: SegmentCmsg,
}

/// The io_uring sends in flight, by name.
#[derive(Default)]
struct SendsTo {
    lent: IntMap<u64, Box<Lent>>,
}

impl UringOpState for SendsTo {
    fn reaped(&mut self, batch: &[Completion]) {
        if !self.lent.is_empty() {
            for c in batch {
                self.lent.remove(&c.user_data);
            }
        }
    }

    fn held(&self) -> usize {
        self.lent.len()
    }

    fn leak(&mut self) {
        std::mem::forget(std::mem::take(&mut self.lent));
    }
}

/// A datagram (or GSO run) waiting on the readiness backend: name, address, bytes,
/// segment size.
type Waiting = (u64, SockAddr, Bytes, u16);

/// The readiness backend's datagrams waiting for room, by socket, in order.
#[derive(Default)]
struct SendingTo {
    queues: HashMap<RawFd, VecDeque<Waiting>>,
}

impl SendingTo {
    /// `fd` has nothing waiting any more: forget it and unmark it.
    fn none_left(&mut self, io: &mut PollIo, fd: RawFd, bit: OpBit) {
        self.queues.remove(&fd);
        io.disarm(fd, bit);
    }
}

impl PollOpState for SendingTo {
    fn serve(&mut self, io: &mut PollIo, fd: RawFd, bit: OpBit) -> bool {
        if !io.fd(fd).writable {
            return false;
        }
        let Some(queue) = self.queues.get_mut(&fd) else {
            return false;
        };
        while !queue.is_empty() {
            let (front, _) = queue.as_slices();
            let batch = &front[..front.len().min(BATCH)];
            match send_batch(fd, batch) {
                Outcome::Done(sent) => {
                    for (ud, _, data, _) in queue.drain(..sent) {
                        io.post(ud, data.len() as i32, false);
                    }
                }
                Outcome::WouldBlock => {
                    io.fd(fd).writable = false;
                    return false;
                }
                Outcome::Failed(e) => {
                    // The first datagram failed: it alone; the rest go on.
                    let (ud, ..) = queue.pop_front().expect("a batch of one or more");
                    io.post(ud, -e, false);
                }
            }
        }
        self.none_left(io, fd, bit);
        false
    }

    fn cancel(&mut self, io: &mut PollIo, fd: RawFd, target: u64, bit: OpBit) -> bool {
        let Some(queue) = self.queues.get_mut(&fd) else {
            return false;
        };
        let Some(i) = queue.iter().position(|w| w.0 == target) else {
            return false;
        };
        queue.remove(i);
        if queue.is_empty() {
            self.none_left(io, fd, bit);
        }
        io.post(target, -libc::ECANCELED, false);
        true
    }

    fn forget(&mut self, fd: RawFd) {
        self.queues.remove(&fd);
    }
}

/// The most datagrams one `sendmmsg` takes.
const BATCH: usize = 64;

/// Send the front of the queue without blocking (and without SIGPIPE), in one
/// `sendmmsg`: `Done` with how many datagrams went.
fn send_batch(fd: RawFd, batch: &[Waiting]) -> Outcome {
    let n = batch.len().min(BATCH);
    // SAFETY: these are plain data; all zeroes (null pointers, zero lengths) is valid.
    let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    let mut cmsgs: [SegmentCmsg; BATCH] = [[0; 3]; BATCH];
    for (i, (_, to, data, segment)) in batch.iter().take(n).enumerate() {
        iovs[i] = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        let hdr = &mut msgs[i].msg_hdr;
        hdr.msg_name = to.as_ptr() as *mut libc::c_void;
        hdr.msg_namelen = to.len();
        hdr.msg_iov = &mut iovs[i];
        hdr.msg_iovlen = 1;
        if *segment > 0 {
            hdr.msg_controllen = segment_cmsg(&mut cmsgs[i], *segment) as _;
            hdr.msg_control = cmsgs[i].as_mut_ptr().cast();
        }
    }
    retry(|| {
        // SAFETY: `n` headers, each naming one live iovec over a datagram's bytes and its
        // address, borrowed for the call; the kernel only reads them.
        unsafe {
            libc::sendmmsg(
                fd,
                msgs.as_mut_ptr(),
                n as u32,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            ) as isize
        }
    })
}
