//! File transfers on a connection: a file sent from disk to the socket without passing
//! through user space ([`Conn::send_file`]), and the next bytes of the stream written to a
//! file without being held in memory ([`Conn::receive_to_file`]). Both report to
//! [`Handler::on_transfer`] with a [`TransferEvent`].
//!
//! - **Sending** is queued in order with the connection's other sends. On io_uring the
//!   bytes move file → pipe → socket with `IORING_OP_SPLICE` (page references, no copy);
//!   on the readiness backend with `sendfile(2)` when the socket is writable. A file that
//!   turns out shorter than asked (truncated while it was sent) ends the transfer with
//!   [`TransferError::Truncated`], with the count of bytes never sent, and closes the
//!   connection with [`CloseReason::FileTruncated`]: the peer was promised bytes the
//!   stream cannot carry.
//! - **Receiving**: the next `len` bytes the peer sends go to the file at its current
//!   position (io_uring writes; `pwrite(2)` on the readiness backend), not to `on_data`.
//!   At most [`RECEIVE_WINDOW`] bytes are held waiting for the disk: reading pauses
//!   while writes are behind. A write error ends the transfer with a typed
//!   [`TransferError`]; the rest of its bytes are still read and dropped, so the stream
//!   stays in step and the handler can answer the peer.
//!
//! A connection that closes with transfers unfinished reports each one as
//! [`TransferEvent::Failed`] with [`TransferError::Closed`] just before `on_close`, and
//! drops its files.
//!
//! [`Conn::send_file`]: crate::Conn::send_file
//! [`Conn::receive_to_file`]: crate::Conn::receive_to_file
//! [`Handler::on_transfer`]: crate::Handler::on_transfer
//! [`CloseReason::FileTruncated`]: crate::CloseReason::FileTruncated

mod conn_api;
pub(crate) mod state;

use std::fmt;
use std::fs::File;

/// Most bytes a receive into a file holds in memory waiting for its writes.
pub const RECEIVE_WINDOW: usize = 1024 * 1024;

/// Progress is reported at most once per this many bytes of a transfer.
pub const PROGRESS_STEP: u64 = 1024 * 1024;

/// Names one transfer of a connection (unique among the connection's transfers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransferId(pub(crate) u64);

impl TransferId {
    /// The number, counting the connection's transfers from 0.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TransferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "transfer {}", self.0)
    }
}

/// Which way a transfer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// A file to the peer ([`crate::Conn::send_file`]).
    Send,
    /// The peer's bytes to a file ([`crate::Conn::receive_to_file`]).
    Receive,
}

/// What happened to a transfer, told to [`crate::Handler::on_transfer`].
#[derive(Debug)]
#[non_exhaustive]
pub enum TransferEvent {
    /// `done` of `total` bytes have gone to the socket (sending) or the file
    /// (receiving); at most once per [`PROGRESS_STEP`] bytes, never for the last bytes
    /// (the end is `Sent` or `Received`).
    Progress {
        /// The transfer.
        id: TransferId,
        /// Its direction.
        direction: Direction,
        /// Bytes moved so far.
        done: u64,
        /// Bytes it moves in all.
        total: u64,
    },
    /// Every byte of a file send has been handed to the kernel.
    Sent {
        /// The transfer.
        id: TransferId,
        /// Its bytes.
        bytes: u64,
    },
    /// Every byte of a receive has been written to its file, which comes back here.
    Received {
        /// The transfer.
        id: TransferId,
        /// Its bytes.
        bytes: u64,
        /// The file (positioned where it was; the bytes were written from there on).
        file: File,
    },
    /// The transfer ended early.
    Failed {
        /// The transfer.
        id: TransferId,
        /// Its direction.
        direction: Direction,
        /// Bytes moved before it ended.
        done: u64,
        /// Why.
        error: TransferError,
    },
}

/// Why a transfer ended early.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// The file ended before the bytes asked for were sent (it was truncated while it was
    /// being sent, or was never that long): `undelivered` bytes were never sent.
    #[error("the file ended early: {undelivered} bytes were not sent")]
    Truncated {
        /// The bytes asked for and never sent.
        undelivered: u64,
    },
    /// Writing the file failed: the disk (or its quota) is full.
    #[error("no space left for the file")]
    DiskFull,
    /// Reading or writing the file failed with this OS error (EIO, EBADF, ...).
    #[error("file I/O failed: {}", std::io::Error::from_raw_os_error(*errno))]
    Io {
        /// The OS error number.
        errno: i32,
    },
    /// The peer shut its side before sending all the bytes a receive waited for:
    /// `missing` never came.
    #[error("the peer ended the stream {missing} bytes short")]
    PeerClosed {
        /// The bytes that never came.
        missing: u64,
    },
    /// The connection closed first.
    #[error("the connection closed first")]
    Closed,
}

impl TransferError {
    /// The error for a failed file operation's errno.
    pub(crate) fn from_errno(errno: i32) -> TransferError {
        match errno {
            libc::ENOSPC | libc::EDQUOT => TransferError::DiskFull,
            e => TransferError::Io { errno: e },
        }
    }

    /// A short name for counters and logs.
    pub fn name(&self) -> &'static str {
        match self {
            TransferError::Truncated { .. } => "truncated",
            TransferError::DiskFull => "disk_full",
            TransferError::Io { .. } => "io",
            TransferError::PeerClosed { .. } => "peer_closed",
            TransferError::Closed => "closed",
        }
    }
}

/// Why [`crate::Conn::receive_to_file`] refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveFileError {
    /// A receive into a file (or an exact read) is already under way on this connection.
    #[error("a receive into a file or an exact read is already under way")]
    Busy,
    /// The peer has shut its side: nothing more will arrive.
    #[error("the peer has shut its side of the stream")]
    PeerClosed,
    /// The connection is closing.
    #[error("the connection is closing")]
    Closing,
    /// The file's position plus `len` is past the largest file offset.
    #[error("the file range ends past the largest file offset")]
    FileRange,
    /// The file's position could not be read.
    #[error("cannot read the file's position: {0}")]
    Position(#[source] std::io::Error),
}
