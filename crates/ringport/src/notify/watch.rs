//! A watch's public names: its id, why it ended, the notice that ends it, and why one
//! could not be made.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// A watch: which worker (or port) holds it and its serial number there. Unique for the
/// life of its engine or port; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WatchId {
    worker: u8,
    serial: u64,
}

impl WatchId {
    pub(crate) fn new(worker: u8, serial: u64) -> WatchId {
        WatchId { worker, serial }
    }

    /// The worker it is on (0 on a [`crate::notify::Port`]).
    pub fn worker(self) -> usize {
        usize::from(self.worker)
    }

    pub(crate) fn serial(self) -> u64 {
        self.serial
    }
}

impl fmt::Display for WatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "watch {} on worker {}", self.serial, self.worker)
    }
}

/// Why a watch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoveReason {
    /// Its owner removed it (`remove`, `unwatch`).
    Removed,
    /// The backend could not watch the descriptor, or stopped with an error (the errno):
    /// e.g. epoll refuses a file it cannot poll with `EPERM`.
    Failed {
        /// The error number.
        errno: i32,
    },
    /// The engine (or port) shut down.
    Shutdown,
    /// Its `on_ready` callback panicked.
    HandlerPanic,
    /// Its worker was lost (see [`crate::Stats::workers_lost`]).
    WorkerLost,
}

impl RemoveReason {
    /// Every reason's name.
    pub const NAMES: [&'static str; 5] = [
        "removed",
        "failed",
        "shutdown",
        "handler_panic",
        "worker_lost",
    ];

    /// A short name for statistics and logs.
    pub fn name(self) -> &'static str {
        Self::NAMES[self.index()]
    }

    pub(crate) fn index(self) -> usize {
        match self {
            RemoveReason::Removed => 0,
            RemoveReason::Failed { .. } => 1,
            RemoveReason::Shutdown => 2,
            RemoveReason::HandlerPanic => 3,
            RemoveReason::WorkerLost => 4,
        }
    }
}

impl fmt::Display for RemoveReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoveReason::Removed => f.write_str("removed by its owner"),
            RemoveReason::Failed { errno } => write!(
                f,
                "the backend failed: {}",
                io::Error::from_raw_os_error(*errno)
            ),
            RemoveReason::Shutdown => f.write_str("shut down"),
            RemoveReason::HandlerPanic => f.write_str("its callback panicked"),
            RemoveReason::WorkerLost => f.write_str("its worker was lost"),
        }
    }
}

/// The last word about a watch: after it, nothing of the watch is left anywhere and no
/// notification of it follows. It hands the descriptor back; dropping the notice closes
/// it.
#[derive(Debug)]
#[non_exhaustive]
pub struct WatchRemoved {
    /// The watch.
    pub id: WatchId,
    /// The token it was made with.
    pub token: u64,
    /// Why it ended.
    pub reason: RemoveReason,
    fd: OwnedFd,
}

impl WatchRemoved {
    pub(crate) fn new(id: WatchId, token: u64, reason: RemoveReason, fd: OwnedFd) -> Self {
        WatchRemoved {
            id,
            token,
            reason,
            fd,
        }
    }

    /// The descriptor, still open.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Take the descriptor back (to keep it, or watch it again).
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

/// Why a watch could not be made, or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// The file is watched already on this engine or port: through this descriptor's
    /// number, a dup of it, or another descriptor of the same open socket or pipe end.
    /// One watch per file keeps notifications unambiguous (and epoll would refuse some).
    #[error("this file is watched already (through this descriptor or a duplicate of it)")]
    AlreadyWatched,
    /// The descriptor is a regular file, a directory or a device without readiness
    /// (`/dev/null`), which cannot be polled (io_uring would call it always ready, epoll
    /// refuses it).
    #[error("{0} cannot be watched: it is always ready")]
    NotPollable(&'static str),
    /// Examining the descriptor failed.
    #[error("the descriptor could not be examined: {0}")]
    Io(#[from] io::Error),
    /// No such watch (it was removed, its notice delivered, or it never existed here).
    #[error("no such watch")]
    Unknown,
    /// The worker's mailbox is full; try again.
    #[error("the worker's mailbox is full")]
    Busy,
    /// The engine, or the worker, has stopped.
    #[error("the engine has stopped")]
    Stopped,
    /// There is no worker with this index.
    #[error("there is no worker {0}")]
    NoWorker(usize),
}

/// A watch that was not made: why, and the descriptor back, still open.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct WatchRefused {
    /// Why.
    pub error: WatchError,
    /// The descriptor that was to be watched.
    pub fd: OwnedFd,
}
