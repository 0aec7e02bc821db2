//! Send one datagram to an address (`sendto`): one completion with the bytes sent or an
//! error. Several may be in flight on one socket, each under its own name; the engine
//! submits a batch of them per wait.
//!
//! - io_uring: `IORING_OP_SEND` with a destination address; the address and the bytes
//!   are held by this op's state until the completion is reaped.
//! - readiness backend: `sendto` at once; if the socket's buffer is full (EAGAIN), the
//!   datagram waits, in order behind any other, until epoll says it is writable.

#[cfg(test)]
mod tests;

use super::Op;
#[cfg(test)]
use crate::sys::fake::{FakeDriver, FakeOp};
use crate::sys::poll::{edge, retry, OpBit, Outcome, PollCore, PollIo, PollOpState};
use crate::sys::uring::{UringCore, UringOpState};
use crate::sys::Completion;
use bytes::Bytes;
use io_uring::{opcode, types};
use socket2::SockAddr;
use std::collections::{HashMap, VecDeque};
use std::os::fd::RawFd;

/// Send `data` to `to` on datagram socket `fd`.
#[derive(Debug, Clone)]
pub(crate) struct SendTo {
    /// The socket (kept open by the caller until the send's completion).
    pub fd: RawFd,
    pub to: SockAddr,
    pub data: Bytes,
}

impl Op for SendTo {
    type Started = ();
    const NAME: &'static str = "send_to";
    const URING_OPCODES: &'static [(u8, &'static str)] = &[(opcode::Send::CODE, "send")];

    fn start_uring(self, core: &mut UringCore, user_data: u64) {
        let held = core.state::<SendsTo>();
        let mem = Box::new(Lent {
            to: self.to,
            data: self.data,
        });
        let e = opcode::Send::new(types::Fd(self.fd), mem.data.as_ptr(), mem.data.len() as u32)
            .dest_addr(mem.to.as_ptr())
            .dest_addr_len(mem.to.len())
            .build()
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
        let queue = sends.queues.entry(self.fd).or_default();
        let waiting = (user_data, self.to, self.data);
        if !queue.is_empty() {
            return queue.push_back(waiting); // behind the others, in order
        }
        match send_to(self.fd, &waiting.1, &waiting.2) {
            Outcome::Done(n) => io.post(user_data, n as i32, false),
            Outcome::Failed(e) => io.post(user_data, -e, false),
            Outcome::WouldBlock => {
                if let Err(e) = io.register(self.fd, edge::READ | edge::WRITE, true) {
                    return io.fail(user_data, e);
                }
                io.fd(self.fd).writable = false;
                queue.push_back(waiting);
                io.arm(self.fd, bit);
            }
        }
        if sends.queues.get(&self.fd).is_some_and(VecDeque::is_empty) {
            sends.queues.remove(&self.fd);
        }
    }

    #[cfg(test)]
    fn start_fake(self, fake: &mut FakeDriver, user_data: u64) {
        fake.start(FakeOp::SendTo, user_data)
    }
}

/// What one io_uring send lends the kernel.
struct Lent {
    to: SockAddr,
    data: Bytes,
}

/// The io_uring sends in flight, by name.
#[derive(Default)]
struct SendsTo {
    lent: HashMap<u64, Box<Lent>>,
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

/// The readiness backend's datagrams waiting for room, by socket, in order.
#[derive(Default)]
struct SendingTo {
    queues: HashMap<RawFd, VecDeque<(u64, SockAddr, Bytes)>>,
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
        while let Some((ud, to, data)) = queue.front() {
            match send_to(fd, to, data) {
                Outcome::Done(n) => io.post(*ud, n as i32, false),
                Outcome::Failed(e) => io.post(*ud, -e, false),
                Outcome::WouldBlock => {
                    io.fd(fd).writable = false;
                    return false;
                }
            }
            queue.pop_front();
        }
        self.none_left(io, fd, bit);
        false
    }

    fn cancel(&mut self, io: &mut PollIo, fd: RawFd, target: u64, bit: OpBit) -> bool {
        let Some(queue) = self.queues.get_mut(&fd) else {
            return false;
        };
        let Some(i) = queue.iter().position(|(ud, ..)| *ud == target) else {
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

/// `sendto` without blocking (and without SIGPIPE).
fn send_to(fd: RawFd, to: &SockAddr, data: &[u8]) -> Outcome {
    retry(|| {
        // SAFETY: reads `data.len()` bytes from `data` and the address from `to`, both
        // borrowed for the call.
        unsafe {
            libc::sendto(
                fd,
                data.as_ptr().cast(),
                data.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                to.as_ptr().cast(),
                to.len(),
            )
        }
    })
}
