//! Multishot datagram receive: one completion per datagram (its bytes lent by the
//! backend: `Driver::claim_datagram`), with its source address and whether it was cut
//! short. An error (an ICMP error queued on a connected socket, say) ends the receive
//! with a final completion; the socket itself is fine, and its owner arms another. So
//! does, on io_uring, a zero-length datagram: the kernel ends a multishot recvmsg on it
//! (as on a stream's end of file), in a final completion that still carries it.
//!
//! - io_uring: `IORING_OP_RECVMSG` multishot with a provided buffer per datagram (the
//!   worker's datagram group): the kernel writes a header, the source address and the
//!   payload into the buffer, and flags a datagram longer than the room left as
//!   truncated (MSG_TRUNC).
//! - readiness backend: `recvmmsg` (up to 64 datagrams per call, one arena slot of the
//!   largest datagram each, packed after the call) when epoll says the socket is
//!   readable, until it returns fewer than asked; a datagram cut short carries
//!   MSG_TRUNC.

#[cfg(test)]
mod tests;

use super::Op;
#[cfg(test)]
use crate::sys::fake::{FakeDriver, FakeOp};
use crate::sys::poll::{
    retry, ArmedNames, OpBit, Outcome, PollCore, PollIo, PollOpState, ReadDatagram,
};
use crate::sys::uring::{UringCore, UringOpState};
use crate::sys::{Completion, Datagram};
use io_uring::{opcode, types};
use std::net::SocketAddr;
use std::os::fd::RawFd;

/// Room for the source address: any family (`sockaddr_storage`).
const NAME_LEN: u32 = std::mem::size_of::<libc::sockaddr_storage>() as u32;

/// Bytes of the header io_uring writes first (`struct io_uring_recvmsg_out`: name,
/// control and payload lengths, flags).
const RECVMSG_OUT: usize = 16;
const _: () = assert!(RECVMSG_OUT + NAME_LEN as usize == crate::sys::DATAGRAM_HEADROOM as usize);

/// Batched reads of one socket per pass (readiness backend) before others get their
/// turn, and the most datagrams one read takes.
const READS_PER_PASS: usize = 4;
const BATCH: usize = 64;

/// Multishot receive of datagrams, with their source addresses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecvFromMulti {
    /// The socket (kept open by the caller until the receive's final completion).
    pub fd: RawFd,
}

impl Op for RecvFromMulti {
    type Started = ();
    const NAME: &'static str = "recv_from";
    const URING_OPCODES: &'static [(u8, &'static str)] =
        &[(opcode::RecvMsg::CODE, "recvmsg (multishot)")];

    fn start_uring(self, core: &mut UringCore, user_data: u64) {
        let group = core.datagram_group();
        let state = core.state::<Header>();
        state.in_flight.insert(user_data);
        let header: *const libc::msghdr = &*state.msg;
        let e = opcode::RecvMsgMulti::new(types::Fd(self.fd), header, group)
            .build()
            .user_data(user_data);
        // SAFETY: the msghdr template is boxed in an op state the core keeps for its whole
        // life (never moved, never changed); buffers come from a registered ring that
        // outlives every receive (see `RecvMulti`).
        unsafe { core.push(&e) }
    }

    fn start_poll(self, core: &mut PollCore, user_data: u64) {
        let (io, recvs, bit) = core.op_state::<ReceivingFrom>();
        recvs.armed.arm(io, self.fd, user_data, bit);
    }

    #[cfg(test)]
    fn start_fake(self, fake: &mut FakeDriver, user_data: u64) {
        fake.start(FakeOp::RecvFrom, user_data)
    }
}

/// The msghdr every multishot recvmsg names: room for an address, no control data (the
/// kernel reads only these lengths from it), and the receives naming it.
struct Header {
    msg: Box<libc::msghdr>,
    in_flight: std::collections::HashSet<u64>,
}

impl Default for Header {
    fn default() -> Header {
        Header {
            msg: Box::new(template()),
            in_flight: Default::default(),
        }
    }
}

impl UringOpState for Header {
    fn reaped(&mut self, batch: &[Completion]) {
        if !self.in_flight.is_empty() {
            for c in batch.iter().filter(|c| !c.more()) {
                self.in_flight.remove(&c.user_data);
            }
        }
    }

    fn held(&self) -> usize {
        self.in_flight.len()
    }

    fn leak(&mut self) {
        std::mem::forget(std::mem::replace(&mut self.msg, Box::new(template())));
    }
}

fn template() -> libc::msghdr {
    // SAFETY: msghdr is plain data; all zeroes (null pointers, zero lengths) is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_namelen = NAME_LEN;
    msg
}

/// The datagram an io_uring datagram buffer holds (header, address, payload).
pub(crate) fn parse_datagram(buffer: &[u8]) -> Datagram<'_> {
    let Ok(out) = types::RecvMsgOut::parse(buffer, &template()) else {
        return Datagram {
            from: None,
            data: &[],
            truncated: true,
        };
    };
    let name = out.name_data();
    let from = (out.incoming_name_len() as usize <= name.len())
        .then(|| socket_addr(name))
        .flatten();
    // The payload follows the header and the address room (there is no control data).
    let start = RECVMSG_OUT + NAME_LEN as usize;
    let len = out.payload_data().len();
    Datagram {
        from,
        data: buffer.get(start..start + len).unwrap_or_default(),
        truncated: out.is_payload_truncated(),
    }
}

/// A socket address from the raw bytes of a `sockaddr_*`.
fn socket_addr(raw: &[u8]) -> Option<SocketAddr> {
    // SAFETY: sockaddr_storage is plain data; all zeroes is valid.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = raw.len().min(NAME_LEN as usize);
    // SAFETY: copies `len` bytes, at most the storage's size, from a live slice into a
    // live local; the two do not overlap.
    unsafe { std::ptr::copy_nonoverlapping(raw.as_ptr(), &mut storage as *mut _ as *mut u8, len) };
    // SAFETY: the storage holds `len` bytes the kernel wrote as a socket address.
    let addr = unsafe { socket2::SockAddr::new(storage, len as libc::socklen_t) };
    addr.as_socket()
}

/// The readiness backend's armed datagram receives, by descriptor.
#[derive(Debug, Default)]
struct ReceivingFrom {
    armed: ArmedNames,
}

impl PollOpState for ReceivingFrom {
    fn serve(&mut self, io: &mut PollIo, fd: RawFd, bit: OpBit) -> bool {
        let ud = self.armed.name(fd);
        if !io.fd(fd).readable {
            return false;
        }
        for _ in 0..READS_PER_PASS {
            let Some((slot, room)) = io.datagram_slots(BATCH) else {
                return true; // the arena is full for this batch; served on the next pass
            };
            let mut got = [ReadDatagram {
                len: 0,
                from: None,
                truncated: false,
            }; BATCH];
            let asked = room.len() / slot.max(1);
            match recv_batch(fd, room, slot, &mut got) {
                Outcome::Done(n) => {
                    io.post_datagrams(ud, &got[..n]);
                    if n < asked {
                        // Fewer than asked for: the socket is empty (epoll reports the next
                        // datagram with a new edge).
                        io.fd(fd).readable = false;
                        return false;
                    }
                }
                Outcome::WouldBlock => {
                    io.fd(fd).readable = false;
                    return false;
                }
                Outcome::Failed(e) => {
                    self.armed.end(io, fd, bit, ud, -e);
                    return false;
                }
            }
        }
        true // still readable: more on the next pass
    }

    fn cancel(&mut self, io: &mut PollIo, fd: RawFd, target: u64, bit: OpBit) -> bool {
        self.armed.cancel(io, fd, target, bit)
    }

    fn forget(&mut self, fd: RawFd) {
        self.armed.forget(fd);
    }
}

/// Datagrams into the `slot`-sized slots of `room` without blocking (one `recvmmsg`),
/// each described in `got`: `Done` with how many.
fn recv_batch(fd: RawFd, room: &mut [u8], slot: usize, got: &mut [ReadDatagram]) -> Outcome {
    let n = (room.len() / slot.max(1)).min(got.len()).min(BATCH);
    // SAFETY: these are plain data; all zeroes (null pointers, zero lengths) is valid.
    let mut names: [libc::sockaddr_storage; BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for i in 0..n {
        iovs[i] = libc::iovec {
            iov_base: room[i * slot..].as_mut_ptr().cast(),
            iov_len: slot,
        };
        let hdr = &mut msgs[i].msg_hdr;
        hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
        hdr.msg_namelen = NAME_LEN;
        hdr.msg_iov = &mut iovs[i];
        hdr.msg_iovlen = 1;
    }
    let outcome = retry(|| {
        // SAFETY: `n` headers, each naming one live iovec over its own `slot` bytes of
        // `room` and one live address storage; all borrowed for the call.
        unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                n as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            ) as isize
        }
    });
    if let Outcome::Done(k) = outcome {
        for i in 0..k {
            let hdr = &msgs[i].msg_hdr;
            // SAFETY: the kernel wrote a socket address of `msg_namelen` bytes here.
            let addr = unsafe { socket2::SockAddr::new(names[i], hdr.msg_namelen) };
            got[i] = ReadDatagram {
                len: (msgs[i].msg_len as usize).min(slot),
                from: addr.as_socket(),
                truncated: hdr.msg_flags & libc::MSG_TRUNC != 0,
            };
        }
    }
    outcome
}
