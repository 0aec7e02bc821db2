//! Write received bytes to a file at an offset (a receive into a file): `IORING_OP_WRITE`
//! on io_uring, `pwrite(2)` on the readiness backend (regular files are always "ready";
//! the write is done when started). The buffer and the file are the operation's until its
//! completion is reaped; [`ReclaimWrite`] then hands the buffer back for the unwritten
//! rest of a short write, or for reuse.

use super::{Call, Op};
#[cfg(test)]
use crate::sys::fake::FakeDriver;
use crate::sys::int_map::IntMap;
use crate::sys::poll::{retry, Outcome, PollCore, PollIo, PollOpState};
use crate::sys::uring::{UringCore, UringOpState};
use crate::sys::Completion;
use io_uring::{opcode, types};
use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

/// Write `buf` to `file` at `offset`; `key` (the low 32 bits of its name, one write per
/// key at a time) finds the buffer again for [`ReclaimWrite`].
#[derive(Debug)]
pub(crate) struct WriteAt {
    pub key: u32,
    pub file: Arc<File>,
    pub offset: u64,
    pub buf: Vec<u8>,
}

/// What a write lends until its completion is reaped.
struct WriteMem {
    user_data: u64,
    buf: Vec<u8>,
    _file: Arc<File>,
    reaped: bool,
}

/// The writes in flight, by key.
#[derive(Default)]
pub(crate) struct Writes {
    writes: IntMap<u32, WriteMem>,
    /// Writes whose memory was leaked with the ring (never freed while the kernel may
    /// read it).
    leaked: usize,
}

impl Writes {
    fn put(&mut self, key: u32, user_data: u64, buf: Vec<u8>, file: Arc<File>) -> &WriteMem {
        let mem = WriteMem {
            user_data,
            buf,
            _file: file,
            reaped: false,
        };
        let old = self.writes.insert(key, mem);
        debug_assert!(old.is_none(), "one write per key");
        &self.writes[&key]
    }

    fn note(&mut self, batch: &[Completion]) {
        if self.writes.is_empty() {
            return;
        }
        for c in batch.iter().filter(|c| !c.more()) {
            if let Some(m) = self.writes.get_mut(&(c.user_data as u32)) {
                if m.user_data == c.user_data {
                    m.reaped = true;
                }
            }
        }
    }

    fn reclaim(&mut self, key: u32) -> Option<Vec<u8>> {
        if !self.writes.get(&key).is_some_and(|m| m.reaped) {
            tracing::error!(
                key,
                "file write reclaimed before its completion was reaped; kept"
            );
            return None;
        }
        self.writes.remove(&key).map(|m| m.buf)
    }
}

impl Op for WriteAt {
    type Started = ();
    const NAME: &'static str = "write_file";
    const URING_OPCODES: &'static [(u8, &'static str)] = &[(opcode::Write::CODE, "write")];

    fn start_uring(self, core: &mut UringCore, user_data: u64) {
        let fd = self.file.as_raw_fd();
        let len = self.buf.len().min(u32::MAX as usize) as u32;
        let mem = core
            .state::<Writes>()
            .put(self.key, user_data, self.buf, self.file);
        let e = opcode::Write::new(types::Fd(fd), mem.buf.as_ptr(), len)
            .offset(self.offset)
            .build()
            .user_data(user_data);
        // SAFETY: the buffer is heap memory owned by the write's state (moving the Vec
        // into the map does not move its bytes) and the file is held there too, until
        // `ReclaimWrite` after the completion was reaped, or leaked with the ring.
        unsafe { core.push(&e) };
    }

    fn start_poll(self, core: &mut PollCore, user_data: u64) {
        let fd = self.file.as_raw_fd();
        let (buf, offset) = (&self.buf, self.offset as libc::off_t);
        let outcome = retry(|| {
            // SAFETY: reads `buf.len()` bytes of `buf`, borrowed for the call, and writes
            // the file, which `self` keeps open.
            unsafe { libc::pwrite(fd, buf.as_ptr().cast(), buf.len(), offset) }
        });
        let result = match outcome {
            Outcome::Done(n) => n.min(i32::MAX as usize) as i32,
            Outcome::WouldBlock => -libc::EAGAIN,
            Outcome::Failed(e) => -e,
        };
        let (io, writes, _) = core.op_state::<PollWrites>();
        writes.0.put(self.key, user_data, self.buf, self.file);
        io.post(user_data, result, false);
    }

    #[cfg(test)]
    fn start_fake(self, fake: &mut FakeDriver, user_data: u64) {
        fake.write_file(self.key, self.buf, user_data);
    }
}

/// The write named `key` completed: its buffer back (the caller knows from the result
/// how much of it was written). `None` if its completion has not been reaped (an engine
/// bug, logged; the buffer stays lent).
#[derive(Debug)]
pub(crate) struct ReclaimWrite {
    pub key: u32,
}

impl Call for ReclaimWrite {
    type Answer = Option<Vec<u8>>;

    fn call_uring(self, core: &mut UringCore) -> Option<Vec<u8>> {
        core.state::<Writes>().reclaim(self.key)
    }

    fn call_poll(self, core: &mut PollCore) -> Option<Vec<u8>> {
        let (_, writes, _) = core.op_state::<PollWrites>();
        writes.0.reclaim(self.key)
    }

    #[cfg(test)]
    fn call_fake(self, fake: &mut FakeDriver) -> Option<Vec<u8>> {
        fake.reclaim_write(self.key)
    }
}

impl UringOpState for Writes {
    fn reaped(&mut self, batch: &[Completion]) {
        self.note(batch)
    }

    fn held(&self) -> usize {
        self.writes.len()
    }

    fn leak(&mut self) {
        for (_, m) in self.writes.drain() {
            if !m.reaped {
                self.leaked += 1;
                std::mem::forget(m.buf);
            }
        }
    }
}

/// The readiness backend's writes (done when started; kept until reclaimed like the
/// io_uring ones, so both backends answer `ReclaimWrite` the same way).
#[derive(Default)]
struct PollWrites(Writes);

impl PollOpState for PollWrites {
    fn serve(&mut self, _io: &mut PollIo, _fd: RawFd, _bit: crate::sys::poll::OpBit) -> bool {
        false // never armed on a descriptor
    }

    fn cancel(
        &mut self,
        _io: &mut PollIo,
        _fd: RawFd,
        _target: u64,
        _bit: crate::sys::poll::OpBit,
    ) -> bool {
        false
    }

    fn forget(&mut self, _fd: RawFd) {}

    fn reaped(&mut self, batch: &[Completion]) {
        self.0.note(batch)
    }
}
