//! Send: one sendmsg of the front of a connection's [`Outbound`] (up to `IOV_MAX` chunks,
//! moved into the operation). Its one completion says how many bytes went out; then the
//! engine takes the unsent chunks back with [`ReclaimSend`], which hands back only memory
//! whose completion has been reaped (an early call is logged and gives nothing back).
//!
//! Both backends keep a send in the same [`SendMem`] (header, iovecs, chunks), in a
//! [`SendTable`] by key: the io_uring kernel reads the header and iovecs until the
//! completion; the readiness backend writes from them when the socket is writable.

mod table;
#[cfg(test)]
mod tests;

use super::{Call, Op};
#[cfg(test)]
use crate::sys::fake::FakeDriver;
use crate::sys::outbound::{Chunk, Outbound};
use crate::sys::poll::{edge, retry, FdMap, OpBit, Outcome, PollCore, PollIo, PollOpState};
use crate::sys::uring::{UringCore, UringOpState};
use crate::sys::Completion;
use io_uring::{opcode, types};
use std::os::fd::RawFd;
use table::{Reusable, SendTable};

/// Most iovecs one sendmsg may carry (Linux UIO_MAXIOV).
const IOV_MAX: usize = 1024;

/// Send the front of `out` on `fd`; `key` (the low 32 bits of the send's name, one send
/// per key at a time) finds it again for [`ReclaimSend`]. Starting it returns the bytes
/// it covers.
#[derive(Debug)]
pub(crate) struct SendMsg<'a> {
    /// The operation's key: the low 32 bits of its name.
    pub key: u32,
    /// The socket (kept open by the caller until the send's completion).
    pub fd: RawFd,
    /// The queue whose front chunks move into the operation.
    pub out: &'a mut Outbound,
}

impl Op for SendMsg<'_> {
    type Started = usize;
    const NAME: &'static str = "send";
    const URING_OPCODES: &'static [(u8, &'static str)] = &[(opcode::SendMsg::CODE, "sendmsg")];

    fn start_uring(self, core: &mut UringCore, user_data: u64) -> usize {
        let mem = core.state::<Sends>().start(self.key, self.out, user_data);
        let hdr: *const libc::msghdr = &mem.hdr;
        let total = mem.total;
        let e = opcode::SendMsg::new(types::Fd(self.fd), hdr)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build()
            .user_data(user_data);
        // SAFETY: the header, the iovecs and the chunks they point into live in the box
        // under `key` in the `Sends` state (a box does not move when the table grows;
        // chunk data is heap memory that moving a chunk does not move), which releases
        // them only after `reaped` saw this send's completion (`ReclaimSend`), or leaks
        // them if the ring is dropped first.
        unsafe { core.push(&e) };
        total
    }

    fn start_poll(self, core: &mut PollCore, user_data: u64) -> usize {
        let (io, sends, bit) = core.op_state::<PollSends>();
        let total = sends.sends.start(self.key, self.out, user_data).total;
        if let Err(e) = io.register(self.fd, edge::READ | edge::WRITE, true) {
            // Completed with the error; the chunks come back with `ReclaimSend`.
            io.fail(user_data, e);
            return total;
        }
        sends.waiting.set(self.fd, self.key);
        io.arm(self.fd, bit);
        io.queue(self.fd);
        total
    }

    #[cfg(test)]
    fn start_fake(self, fake: &mut FakeDriver, user_data: u64) -> usize {
        fake.send(self.key, self.out, user_data)
    }
}

/// The send named `key` completed having sent `sent` bytes: give its unsent chunks back
/// to the front of `out` and release it, if its completion has been reaped (else log,
/// give nothing back, and keep the memory: the kernel may still read it).
#[derive(Debug)]
pub(crate) struct ReclaimSend<'a> {
    /// The send's key.
    pub key: u32,
    /// The bytes its completion reported sent.
    pub sent: usize,
    /// The queue the unsent chunks go back to.
    pub out: &'a mut Outbound,
}

impl Call for ReclaimSend<'_> {
    type Answer = ();

    fn call_uring(self, core: &mut UringCore) {
        core.state::<Sends>().reclaim(self.key, self.sent, self.out)
    }

    fn call_poll(self, core: &mut PollCore) {
        let (_, sends, _) = core.op_state::<PollSends>();
        sends.sends.reclaim(self.key, self.sent, self.out)
    }

    #[cfg(test)]
    fn call_fake(self, fake: &mut FakeDriver) {
        fake.reclaim(self.key, self.sent, self.out)
    }
}

/// What one send lends: the header and iovecs the kernel reads, and the chunks they point
/// into, moved here from the connection so they outlive the operation.
struct SendMem {
    hdr: libc::msghdr,
    iov: Vec<libc::iovec>,
    chunks: Vec<Chunk>,
    /// The bytes the chunks hold.
    total: usize,
    /// The operation's name, to know its completion when it is reaped.
    user_data: u64,
    /// Its completion has been reaped: nothing reads the memory above any more.
    reaped: bool,
}

impl Default for SendMem {
    fn default() -> Self {
        SendMem {
            // SAFETY: msghdr is plain data; all-zero is its empty value.
            hdr: unsafe { std::mem::zeroed() },
            iov: Vec::new(),
            chunks: Vec::new(),
            total: 0,
            user_data: 0,
            reaped: false,
        }
    }
}

impl Reusable for SendMem {
    fn room(&self) -> usize {
        self.chunks.capacity().max(self.iov.capacity())
    }

    fn shrink_room(&mut self, max: usize) {
        self.chunks.shrink_to(max);
        self.iov.shrink_to(max);
    }
}

/// The sends of one worker by key, with a bounded free list (no allocation per send,
/// no memory kept by a burst). The io_uring op state; the readiness backend wraps it.
#[derive(Default)]
pub(crate) struct Sends {
    table: SendTable<SendMem>,
}

impl Sends {
    /// Move the front of `out` into a new send under `key` and point its header at it.
    fn start(&mut self, key: u32, out: &mut Outbound, user_data: u64) -> &SendMem {
        debug_assert_eq!(key, user_data as u32, "a send's key is its name's low bits");
        let mem = self.table.start(key);
        mem.user_data = user_data;
        mem.reaped = false;
        mem.total = out.take_front(IOV_MAX, &mut mem.chunks);
        let SendMem {
            hdr, iov, chunks, ..
        } = mem;
        iov.extend(chunks.iter().map(|c| libc::iovec {
            iov_base: c.as_slice().as_ptr() as *mut libc::c_void,
            iov_len: c.as_slice().len(),
        }));
        hdr.msg_iov = iov.as_mut_ptr();
        hdr.msg_iovlen = iov.len() as _;
        mem
    }

    /// Note a reaped completion: a send's key is the low 32 bits of its name, so one
    /// look at that key says whether this is its completion.
    fn note(&mut self, c: &Completion) {
        let key = c.user_data as u32;
        if let Some(mem) = self.table.get_mut(key) {
            if mem.user_data == c.user_data {
                mem.reaped = true;
            }
        }
    }

    /// [`ReclaimSend`].
    fn reclaim(&mut self, key: u32, sent: usize, out: &mut Outbound) {
        // Only once nothing reads it. An early call (an engine bug) keeps the memory in
        // the table, where it stays lent (and is leaked at drop).
        if !self.table.get_mut(key).is_some_and(|mem| mem.reaped) {
            tracing::error!(
                key,
                "send reclaimed before its completion was reaped; memory kept"
            );
            return;
        }
        self.table.finish(key, |mem| {
            mem.iov.clear();
            out.give_back(&mut mem.chunks, sent);
        });
    }
}

impl UringOpState for Sends {
    fn reaped(&mut self, batch: &[Completion]) {
        // A send completes once: multishot completions (receive data) are never one.
        if self.table.in_flight() > 0 {
            batch
                .iter()
                .filter(|c| !c.more())
                .for_each(|c| self.note(c))
        }
    }

    fn held(&self) -> usize {
        self.table.in_flight()
    }

    fn leak(&mut self) {
        self.table.leak()
    }
}

/// The readiness backend's sends: the same table, and the key of the send waiting for
/// each descriptor to be writable (valid where this state's bit marks the descriptor).
#[derive(Default)]
struct PollSends {
    sends: Sends,
    waiting: FdMap<u32>,
}

impl PollOpState for PollSends {
    fn serve(&mut self, io: &mut PollIo, fd: RawFd, bit: OpBit) -> bool {
        if !io.fd(fd).writable {
            return false;
        }
        let key = self.waiting.value(fd);
        let Some(mem) = self.sends.table.get_mut(key) else {
            // Cannot happen: a send is armed only while it is in the table.
            self.waiting.clear(fd);
            io.disarm(fd, bit);
            return false;
        };
        let result = match write(fd, mem) {
            Outcome::WouldBlock => {
                io.fd(fd).writable = false;
                return false;
            }
            Outcome::Done(n) => n as i32,
            Outcome::Failed(e) => -e,
        };
        let ud = mem.user_data;
        self.waiting.clear(fd);
        io.disarm(fd, bit);
        io.post(ud, result, false);
        false
    }

    fn cancel(&mut self, io: &mut PollIo, fd: RawFd, target: u64, bit: OpBit) -> bool {
        let key = self.waiting.value(fd);
        if !self
            .sends
            .table
            .get_mut(key)
            .is_some_and(|mem| mem.user_data == target)
        {
            return false;
        }
        // The op keeps its chunks until the engine's `ReclaimSend`.
        self.waiting.clear(fd);
        io.disarm(fd, bit);
        io.post(target, -libc::ECANCELED, false);
        true
    }

    fn forget(&mut self, fd: RawFd) {
        self.waiting.clear(fd);
    }

    fn reaped(&mut self, batch: &[Completion]) {
        if self.sends.table.in_flight() > 0 {
            batch
                .iter()
                .filter(|c| !c.more())
                .for_each(|c| self.sends.note(c))
        }
    }
}

/// Send a send's chunks, in order, with one call (no SIGPIPE, no blocking).
fn write(fd: RawFd, mem: &SendMem) -> Outcome {
    if let [one] = &mem.chunks[..] {
        // One chunk (the usual case): plain send, no message header to copy in.
        let bytes = one.as_slice();
        return retry(|| {
            // SAFETY: reads at most `bytes.len()` bytes from `bytes`, borrowed for the call.
            unsafe {
                libc::send(
                    fd,
                    bytes.as_ptr().cast(),
                    bytes.len(),
                    libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                )
            }
        });
    }
    retry(|| {
        // SAFETY: the header points at the op's iovecs, whose entries point into its
        // chunks (built by `Sends::start`, unchanged since); `mem` is borrowed for this
        // call and the kernel only reads them during it.
        unsafe { libc::sendmsg(fd, &mem.hdr, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) }
    })
}
