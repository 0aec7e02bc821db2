//! A file queued for sending on a connection: where it is, and (io_uring) the pipe its
//! pages pass through. The send steps (`op/send_file.rs`) move it along; the engine reads
//! its counts for progress.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

/// The pipe size asked for (the most an unprivileged process may have by default:
/// `/proc/sys/fs/pipe-max-size`): one splice moves up to this much.
const PIPE_BYTES: i32 = 1024 * 1024;

/// A pipe between a file and a socket (io_uring moves file pages into it, then out to
/// the socket, by reference). Non-blocking at both ends.
#[derive(Debug)]
pub(crate) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    /// Its capacity in bytes (what the kernel granted).
    capacity: u32,
}

impl Pipe {
    pub(crate) fn new() -> io::Result<Pipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` is a writable array of two descriptors, as pipe2 requires.
        let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded: both descriptors are new and owned by no one else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: fcntl on a descriptor we own; F_SETPIPE_SZ takes an int. A refusal
        // (EPERM over the user's pipe quota) leaves the default size.
        unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BYTES) };
        // SAFETY: fcntl on a descriptor we own; F_GETPIPE_SZ takes no argument.
        let size = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
        let capacity = if size > 0 { size as u32 } else { 64 * 1024 };
        Ok(Pipe {
            read,
            write,
            capacity,
        })
    }

    pub(crate) fn read_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    pub(crate) fn write_fd(&self) -> RawFd {
        self.write.as_raw_fd()
    }

    pub(crate) fn capacity(&self) -> u32 {
        self.capacity
    }
}

/// A file being sent: `total` bytes from `start`, `sent` of them handed to the socket.
#[derive(Debug)]
pub(crate) struct FileSend {
    /// The transfer's number on its connection.
    pub id: u64,
    pub file: Arc<File>,
    /// The file offset of the transfer's first byte.
    pub start: u64,
    pub total: u64,
    /// Bytes handed to the socket.
    pub sent: u64,
    /// io_uring: bytes read from the file into the pipe and not yet spliced out.
    pub in_pipe: u64,
    /// io_uring: the pipe, made by the first step.
    pub pipe: Option<Arc<Pipe>>,
    /// The file ended before `total` bytes (it shrank).
    pub file_ended: bool,
    /// Progress reported up to here.
    pub reported: u64,
}

impl FileSend {
    pub(crate) fn new(id: u64, file: Arc<File>, start: u64, total: u64) -> FileSend {
        FileSend {
            id,
            file,
            start,
            total,
            sent: 0,
            in_pipe: 0,
            pipe: None,
            file_ended: false,
            reported: 0,
        }
    }

    /// Bytes not yet read from the file.
    pub(crate) fn unread(&self) -> u64 {
        self.total - self.sent - self.in_pipe
    }

    /// The file offset of the next byte to read from it.
    pub(crate) fn read_offset(&self) -> u64 {
        self.start + self.sent + self.in_pipe
    }

    /// Every byte has gone to the socket, or the file ended and the pipe is empty.
    pub(crate) fn finished(&self) -> bool {
        self.sent == self.total || (self.file_ended && self.in_pipe == 0)
    }
}
