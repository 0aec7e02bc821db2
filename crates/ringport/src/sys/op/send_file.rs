//! Send a file: one step of a [`FileSend`] queued at the front of a connection's
//! outbound bytes. The engine starts steps one at a time (a step is the connection's one
//! send in flight) and, on each step's completion, hands its result to [`FinishFileStep`],
//! which moves the transfer's counts along and says how many bytes reached the socket.
//!
//! - io_uring: `IORING_OP_SPLICE`, alternating file → pipe (up to the pipe's size, by page
//!   reference) and pipe → socket (what the pipe holds). Splices run on the kernel's
//!   io-wq threads; the engine's stream sockets on io_uring are blocking, so a splice to
//!   the socket waits there for room and a cancel interrupts it. The step's state keeps the
//!   file and the pipe open until its completion is reaped.
//! - readiness: `sendfile(2)` when the socket is writable (non-blocking: a partial count is
//!   a step's result).

use super::{Call, Op};
#[cfg(test)]
use crate::sys::fake::{FakeDriver, FakeOp};
use crate::sys::file_send::{FileSend, Pipe};
use crate::sys::int_map::IntMap;
use crate::sys::poll::{edge, retry, FdMap, OpBit, Outcome, PollCore, PollIo, PollOpState};
use crate::sys::uring::{UringCore, UringOpState};
use crate::sys::Completion;
use io_uring::{opcode, types};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

/// Most bytes one `sendfile(2)` is asked for (the kernel's own cap is a little under 2 GiB).
const SENDFILE_MAX: u64 = 1 << 30;

/// Start the next step of `file` on socket `fd`; `key` (the low 32 bits of the step's
/// name) finds it again for [`FinishFileStep`]. Fails only if the pipe a first io_uring
/// step needs cannot be made.
#[derive(Debug)]
pub(crate) struct SendFileStep<'a> {
    pub key: u32,
    /// The socket (kept open by the caller until the step's completion).
    pub fd: RawFd,
    pub file: &'a mut FileSend,
}

/// Which way a step moved bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leg {
    /// File into the pipe (io_uring).
    Fill,
    /// Pipe out to the socket (io_uring).
    Drain,
    /// File to the socket (`sendfile`).
    Direct,
}

/// What a step keeps until its completion is reaped: the descriptors it names.
struct StepMem {
    user_data: u64,
    leg: Leg,
    /// The file (its descriptor stays open while the step may use it).
    file: Arc<File>,
    /// The pipe (kept open while the step may use it).
    _pipe: Option<Arc<Pipe>>,
    /// `sendfile`: the file offset and the count asked.
    offset: u64,
    len: u64,
    reaped: bool,
}

/// The file-send steps in flight, by key.
#[derive(Default)]
pub(crate) struct FileSteps {
    steps: IntMap<u32, StepMem>,
}

impl FileSteps {
    fn put(&mut self, key: u32, mem: StepMem) {
        let earlier = self.steps.insert(key, mem);
        debug_assert!(earlier.is_none(), "one file step per key");
    }

    fn note(&mut self, batch: &[Completion]) {
        if self.steps.is_empty() {
            return;
        }
        for c in batch.iter().filter(|c| !c.more()) {
            if let Some(mem) = self.steps.get_mut(&(c.user_data as u32)) {
                if mem.user_data == c.user_data {
                    mem.reaped = true;
                }
            }
        }
    }

    /// [`FinishFileStep`].
    fn finish(&mut self, key: u32, result: i32, file: Option<&mut FileSend>) -> StepDone {
        let ok = |sent| StepDone {
            sent,
            errno: None,
            socket_side: false,
        };
        if !self.steps.get(&key).is_some_and(|m| m.reaped) {
            tracing::error!(
                key,
                "file step finished before its completion was reaped; kept"
            );
            return StepDone {
                sent: 0,
                errno: Some(libc::EIO),
                socket_side: true,
            };
        }
        let mem = self.steps.remove(&key).expect("checked above");
        let Ok(n) = u64::try_from(result) else {
            let e = -result;
            let socket_side = match mem.leg {
                Leg::Fill => false,
                Leg::Drain => true,
                Leg::Direct => socket_errno(e),
            };
            return StepDone {
                sent: 0,
                errno: Some(e),
                socket_side,
            };
        };
        // The connection closed and let its file go while this step was out.
        let Some(file) = file else {
            return ok(0);
        };
        match mem.leg {
            Leg::Fill => {
                // A splice of 0 bytes out of the file (asked for at least one): its end.
                file.in_pipe += n;
                file.file_ended |= n == 0;
                ok(0)
            }
            Leg::Drain if n == 0 => {
                // Nothing moved out of a pipe holding bytes: its pages were of a file cut
                // under them (the kernel drops pages that are no longer valid). The rest
                // is never sent.
                file.in_pipe = 0;
                file.file_ended = true;
                ok(0)
            }
            Leg::Drain => {
                let n = n.min(file.in_pipe);
                file.in_pipe -= n;
                file.sent += n;
                ok(n)
            }
            Leg::Direct => {
                let n = n.min(file.total - file.sent);
                file.sent += n;
                file.file_ended |= n == 0 && mem.len > 0;
                ok(n)
            }
        }
    }
}

/// A finished step: bytes it handed to the socket, or the errno it failed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StepDone {
    pub sent: u64,
    pub errno: Option<i32>,
    /// The error is the socket's (the connection fails), not the file's.
    pub socket_side: bool,
}

/// Errors of `sendfile(2)` that are the socket's, not the file's.
fn socket_errno(e: i32) -> bool {
    matches!(
        e,
        libc::EPIPE
            | libc::ECONNRESET
            | libc::ENOTCONN
            | libc::ETIMEDOUT
            | libc::EHOSTUNREACH
            | libc::ENETUNREACH
            | libc::ECONNABORTED
            | libc::ENETDOWN
            | libc::ESHUTDOWN
            | libc::ECANCELED
    )
}

impl Op for SendFileStep<'_> {
    type Started = io::Result<()>;
    const NAME: &'static str = "send_file";
    const URING_OPCODES: &'static [(u8, &'static str)] = &[(opcode::Splice::CODE, "splice")];

    fn start_uring(self, core: &mut UringCore, user_data: u64) -> io::Result<()> {
        let f = self.file;
        let pipe = match &f.pipe {
            Some(p) => p.clone(),
            None => f.pipe.insert(Arc::new(Pipe::new()?)).clone(),
        };
        let (leg, e) = if f.in_pipe > 0 {
            let len = f.in_pipe.min(u32::MAX as u64) as u32;
            let e = opcode::Splice::new(types::Fd(pipe.read_fd()), -1, types::Fd(self.fd), -1, len);
            (Leg::Drain, e)
        } else {
            let len = f.unread().min(u64::from(pipe.capacity())) as u32;
            let e = opcode::Splice::new(
                types::Fd(f.file.as_raw_fd()),
                f.read_offset() as i64,
                types::Fd(pipe.write_fd()),
                -1,
                len,
            );
            (Leg::Fill, e)
        };
        core.state::<FileSteps>().put(
            self.key,
            StepMem {
                user_data,
                leg,
                file: f.file.clone(),
                _pipe: Some(pipe),
                offset: 0,
                len: 0,
                reaped: false,
            },
        );
        let e = e.build().user_data(user_data);
        // SAFETY: a splice points to no memory (offsets are passed by value); the file and
        // the pipe it names are kept open by the step's state until its completion is
        // reaped, the socket by the caller (the `Driver::start` contract).
        unsafe { core.push(&e) };
        Ok(())
    }

    fn start_poll(self, core: &mut PollCore, user_data: u64) -> io::Result<()> {
        let (io, state, bit) = core.op_state::<PollFileSteps>();
        let f = self.file;
        state.steps.put(
            self.key,
            StepMem {
                user_data,
                leg: Leg::Direct,
                file: f.file.clone(),
                _pipe: None,
                offset: f.read_offset(),
                len: f.unread().min(SENDFILE_MAX),
                reaped: false,
            },
        );
        if let Err(e) = io.register(self.fd, edge::READ | edge::WRITE, true) {
            io.fail(user_data, e);
            return Ok(());
        }
        state.waiting.set(self.fd, self.key);
        io.arm(self.fd, bit);
        io.queue(self.fd);
        Ok(())
    }

    #[cfg(test)]
    fn start_fake(self, fake: &mut FakeDriver, user_data: u64) -> io::Result<()> {
        fake.start(FakeOp::SendFile, user_data);
        Ok(())
    }
}

/// The file step named `key` completed with `result`: move `file` along and say what
/// reached the socket (only once its completion has been reaped; earlier, an engine bug,
/// it logs, keeps the step's descriptors, and reports EIO).
#[derive(Debug)]
pub(crate) struct FinishFileStep<'a> {
    pub key: u32,
    pub result: i32,
    /// The file, unless the connection let it go (closing) while the step was out.
    pub file: Option<&'a mut FileSend>,
}

impl Call for FinishFileStep<'_> {
    type Answer = StepDone;

    fn call_uring(self, core: &mut UringCore) -> StepDone {
        core.state::<FileSteps>()
            .finish(self.key, self.result, self.file)
    }

    fn call_poll(self, core: &mut PollCore) -> StepDone {
        let (_, state, _) = core.op_state::<PollFileSteps>();
        state.steps.finish(self.key, self.result, self.file)
    }

    #[cfg(test)]
    fn call_fake(self, _fake: &mut FakeDriver) -> StepDone {
        // The fake's steps are sendfile-like: the result is what reached the socket.
        match (u64::try_from(self.result), self.file) {
            (Ok(n), Some(f)) => {
                let n = n.min(f.total - f.sent);
                f.sent += n;
                f.file_ended |= n == 0;
                StepDone {
                    sent: n,
                    errno: None,
                    socket_side: false,
                }
            }
            (Ok(_), None) => StepDone {
                sent: 0,
                errno: None,
                socket_side: false,
            },
            (Err(_), _) => StepDone {
                sent: 0,
                errno: Some(-self.result),
                socket_side: socket_errno(-self.result),
            },
        }
    }
}

impl UringOpState for FileSteps {
    fn reaped(&mut self, batch: &[Completion]) {
        self.note(batch)
    }

    fn held(&self) -> usize {
        self.steps.len()
    }

    fn leak(&mut self) {
        // Only descriptors are held: closing them after the ring is gone is safe.
    }
}

/// The readiness backend's steps, and the key of the step waiting for each socket to be
/// writable.
#[derive(Default)]
struct PollFileSteps {
    steps: FileSteps,
    waiting: FdMap<u32>,
}

impl PollOpState for PollFileSteps {
    fn serve(&mut self, io: &mut PollIo, fd: RawFd, bit: OpBit) -> bool {
        if !io.fd(fd).writable {
            return false;
        }
        let key = self.waiting.value(fd);
        let Some(mem) = self.steps.steps.get_mut(&key) else {
            self.waiting.clear(fd);
            io.disarm(fd, bit);
            return false;
        };
        block_sigpipe();
        let mut offset = mem.offset as libc::off_t;
        let (file, len) = (mem.file.as_raw_fd(), mem.len as usize);
        let outcome = retry(|| {
            // SAFETY: sendfile reads the file and writes the socket, both open for the
            // call (the step's state holds the file; the engine the socket); `offset` is
            // a local the kernel updates.
            unsafe { libc::sendfile(fd, file, &mut offset, len) }
        });
        let result = match outcome {
            Outcome::WouldBlock => {
                io.fd(fd).writable = false;
                return false;
            }
            Outcome::Done(n) => n.min(i32::MAX as usize) as i32,
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
            .steps
            .steps
            .get(&key)
            .is_some_and(|m| m.user_data == target)
        {
            return false;
        }
        self.waiting.clear(fd);
        io.disarm(fd, bit);
        io.post(target, -libc::ECANCELED, false);
        true
    }

    fn forget(&mut self, fd: RawFd) {
        self.waiting.clear(fd);
    }

    fn reaped(&mut self, batch: &[Completion]) {
        self.steps.note(batch)
    }
}

thread_local! {
    static SIGPIPE_BLOCKED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// `sendfile(2)` has no `MSG_NOSIGNAL`: a peer's reset would raise SIGPIPE, which kills a
/// host process that does not ignore it. Block it on this (worker) thread, once; the call
/// then fails with EPIPE like every other send.
fn block_sigpipe() {
    if SIGPIPE_BLOCKED.get() {
        return;
    }
    // SAFETY: `set` is a local signal set, initialised by sigemptyset before use;
    // pthread_sigmask changes only the calling thread's mask and may take a null old set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    SIGPIPE_BLOCKED.set(true);
}
