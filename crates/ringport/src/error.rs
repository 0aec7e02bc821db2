//! Error and close-reason types.

use crate::codec::FrameError;
use std::io;

/// Why a connection closed. Every close carries one; `on_close` and the stats see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// The handler called [`crate::Conn::close`] and the queue was flushed.
    Local,
    /// The handler called [`crate::Conn::abort`]: closed at once, queue dropped.
    Aborted,
    /// The peer closed its side (read EOF) and the connection finished.
    PeerClosed,
    /// The peer reset the connection (ECONNRESET, EPIPE).
    PeerReset,
    /// A handler callback panicked; only this connection closed.
    HandlerPanic,
    /// Closed by a graceful shutdown after its queue was flushed.
    Shutdown,
    /// The shutdown deadline passed before the queue could be flushed.
    ShutdownDeadline,
    /// An outbound connect was refused (ECONNREFUSED).
    ConnectRefused,
    /// An outbound connect did not complete within the connect timeout.
    ConnectTimeout,
    /// Another I/O error; the value is the OS error number.
    Io(i32),
    /// A frame header announced a payload longer than the codec's maximum (the connection
    /// closed before anything was allocated for it).
    FrameTooLong {
        /// The announced payload length.
        len: u64,
        /// The codec's maximum.
        max: u64,
    },
    /// The peer sent bytes the codec cannot frame (a line too long, a length smaller than
    /// its header, ...).
    Protocol(FrameError),
    /// A timeout fired (which one is in the value).
    Timeout(Timeout),
    /// The peer does not read: the connection's send queue passed its hard cap (or the
    /// server's send-memory budget ran out while it was above its low water mark).
    SlowReader,
    /// The connection's partly received frame took its worker over the budget for such
    /// frames ([`crate::EngineConfig::frame_budget`]).
    FrameBudget,
    /// The kernel gave up on an established connection (ETIMEDOUT: unacknowledged data
    /// past TCP_USER_TIMEOUT or the retransmission limit, or unanswered keepalive probes).
    TransportTimeout,
    /// The connection's worker died (a bug outside any handler guard); the server goes on
    /// with its other workers, degraded (see [`crate::Stats::workers_lost`]).
    WorkerLost,
    /// A job the connection spawned ([`crate::Conn::spawn_job`]) panicked; the pool
    /// thread survived, the connection's later job results are dropped.
    JobPanic,
    /// A file being sent ([`crate::Conn::send_file`]) ended before the bytes asked for:
    /// the peer was promised bytes the stream cannot carry (the transfer was reported
    /// [`crate::TransferError::Truncated`], with the count never sent).
    FileTruncated,
}

/// Which timeout closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Timeout {
    /// Connected, but no byte arrived within the first-data timeout.
    FirstData,
    /// Nothing was received or sent within the idle timeout.
    Idle,
    /// A frame was started and not finished within the read timeout (slowloris).
    Read,
    /// Queued bytes made no progress within the write timeout.
    Write,
    /// The peer answered none of the heartbeat's pings.
    Heartbeat,
}

impl CloseReason {
    /// Every name [`CloseReason::name`] returns, in [`CloseReason::index`] order.
    pub const NAMES: [&'static str; 23] = [
        "local",
        "aborted",
        "peer_closed",
        "peer_reset",
        "handler_panic",
        "shutdown",
        "shutdown_deadline",
        "connect_refused",
        "connect_timeout",
        "io_error",
        "frame_too_long",
        "protocol_error",
        "timeout_first_data",
        "timeout_idle",
        "timeout_read",
        "timeout_write",
        "slow_reader",
        "timeout_heartbeat",
        "frame_budget",
        "transport_timeout",
        "worker_lost",
        "job_panic",
        "file_truncated",
    ];

    /// This reason's position in [`CloseReason::NAMES`] (for counter arrays).
    pub fn index(&self) -> usize {
        match self {
            CloseReason::Local => 0,
            CloseReason::Aborted => 1,
            CloseReason::PeerClosed => 2,
            CloseReason::PeerReset => 3,
            CloseReason::HandlerPanic => 4,
            CloseReason::Shutdown => 5,
            CloseReason::ShutdownDeadline => 6,
            CloseReason::ConnectRefused => 7,
            CloseReason::ConnectTimeout => 8,
            CloseReason::Io(_) => 9,
            CloseReason::FrameTooLong { .. } => 10,
            CloseReason::Protocol(_) => 11,
            CloseReason::Timeout(Timeout::FirstData) => 12,
            CloseReason::Timeout(Timeout::Idle) => 13,
            CloseReason::Timeout(Timeout::Read) => 14,
            CloseReason::Timeout(Timeout::Write) => 15,
            CloseReason::SlowReader => 16,
            CloseReason::Timeout(Timeout::Heartbeat) => 17,
            CloseReason::FrameBudget => 18,
            CloseReason::TransportTimeout => 19,
            CloseReason::WorkerLost => 20,
            CloseReason::JobPanic => 21,
            CloseReason::FileTruncated => 22,
        }
    }

    /// Every variant's short name, for per-reason counters and reports.
    pub fn name(&self) -> &'static str {
        Self::NAMES[self.index()]
    }

    /// The old spelled-out match, kept to check `NAMES` against (tests).
    #[cfg(test)]
    fn name_by_match(&self) -> &'static str {
        match self {
            CloseReason::Local => "local",
            CloseReason::Aborted => "aborted",
            CloseReason::PeerClosed => "peer_closed",
            CloseReason::PeerReset => "peer_reset",
            CloseReason::HandlerPanic => "handler_panic",
            CloseReason::Shutdown => "shutdown",
            CloseReason::ShutdownDeadline => "shutdown_deadline",
            CloseReason::ConnectRefused => "connect_refused",
            CloseReason::ConnectTimeout => "connect_timeout",
            CloseReason::Io(_) => "io_error",
            CloseReason::FrameTooLong { .. } => "frame_too_long",
            CloseReason::Protocol(_) => "protocol_error",
            CloseReason::Timeout(Timeout::FirstData) => "timeout_first_data",
            CloseReason::Timeout(Timeout::Idle) => "timeout_idle",
            CloseReason::Timeout(Timeout::Read) => "timeout_read",
            CloseReason::Timeout(Timeout::Write) => "timeout_write",
            CloseReason::SlowReader => "slow_reader",
            CloseReason::Timeout(Timeout::Heartbeat) => "timeout_heartbeat",
            CloseReason::FrameBudget => "frame_budget",
            CloseReason::TransportTimeout => "transport_timeout",
            CloseReason::WorkerLost => "worker_lost",
            CloseReason::JobPanic => "job_panic",
            CloseReason::FileTruncated => "file_truncated",
        }
    }

    /// Map the errno of a failed operation on an established connection to a reason.
    pub(crate) fn from_errno(errno: i32) -> CloseReason {
        match errno {
            libc::ECONNRESET | libc::EPIPE => CloseReason::PeerReset,
            libc::ETIMEDOUT => CloseReason::TransportTimeout,
            e => CloseReason::Io(e),
        }
    }

    /// Map the errno of a failed outbound connect to a reason (ECANCELED: its linked
    /// timeout fired).
    pub(crate) fn from_connect_errno(errno: i32) -> CloseReason {
        match errno {
            libc::ECONNREFUSED => CloseReason::ConnectRefused,
            libc::ETIMEDOUT | libc::ECANCELED => CloseReason::ConnectTimeout,
            e => CloseReason::from_errno(e),
        }
    }

    /// The reason a framing error closes a connection with.
    pub(crate) fn from_frame_error(e: FrameError) -> CloseReason {
        match e {
            FrameError::TooLong { len, max } => CloseReason::FrameTooLong { len, max },
            other => CloseReason::Protocol(other),
        }
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::Io(e) => write!(f, "io error: {}", io::Error::from_raw_os_error(*e)),
            CloseReason::FrameTooLong { len, max } => {
                write!(f, "frame too long: {len} bytes announced, maximum {max}")
            }
            CloseReason::Protocol(e) => write!(f, "protocol error: {e}"),
            other => f.write_str(other.name()),
        }
    }
}

/// Errors of the public API (starting, connecting, configuring).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An OS call failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// An address did not resolve to anything.
    #[error("address {0:?} resolved to nothing")]
    NoAddress(String),
    /// The io_uring backend could not start (missing feature or refused by the kernel).
    #[error("io_uring backend unavailable: {0}")]
    Backend(String),
    /// The engine has stopped; its workers no longer take work.
    #[error("the engine has stopped")]
    Stopped,
    /// The worker's mailbox is full ([`crate::EngineConfig::mailbox_bytes`]); try again
    /// later.
    #[error("the worker has too much waiting for it; try again later")]
    Busy,
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// No listener has this index (see [`crate::Server::local_addrs`]).
    #[error("no listener has index {0}")]
    NoListener(usize),
}

/// Why a send (or another message to a connection) was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The owning worker has stopped.
    #[error("the connection's worker has stopped")]
    WorkerStopped,
    /// The owning worker's mailbox holds as many bytes as it may
    /// ([`crate::EngineConfig::mailbox_bytes`]); try again once the worker has caught up.
    #[error("the connection's worker has too much waiting for it; try again later")]
    Full,
    /// The connection's write side is shut ([`crate::Conn::shutdown_write`]): nothing
    /// more can be sent.
    #[error("the connection's write side is shut")]
    WriteShut,
    /// The connection is closing or closed: nothing more is sent.
    #[error("the connection is closing")]
    Closing,
    /// The payload cannot be framed by the connection's codec.
    #[error("cannot frame the payload: {0}")]
    Unframeable(#[from] FrameError),
    /// A file send's `offset + len` lies past the largest file offset.
    #[error("the file range ends past the largest file offset")]
    FileRange,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etimedout_is_a_connect_timeout_only_while_connecting() {
        assert_eq!(
            CloseReason::from_errno(libc::ETIMEDOUT),
            CloseReason::TransportTimeout
        );
        assert_eq!(
            CloseReason::from_connect_errno(libc::ETIMEDOUT),
            CloseReason::ConnectTimeout
        );
        assert_eq!(
            CloseReason::from_connect_errno(libc::ECONNREFUSED),
            CloseReason::ConnectRefused
        );
        assert_eq!(
            CloseReason::from_errno(libc::ECONNREFUSED),
            CloseReason::Io(libc::ECONNREFUSED)
        );
        assert_eq!(CloseReason::from_errno(libc::EPIPE), CloseReason::PeerReset);
    }

    #[test]
    fn names_and_indexes_agree() {
        let all = [
            CloseReason::Local,
            CloseReason::Aborted,
            CloseReason::PeerClosed,
            CloseReason::PeerReset,
            CloseReason::HandlerPanic,
            CloseReason::Shutdown,
            CloseReason::ShutdownDeadline,
            CloseReason::ConnectRefused,
            CloseReason::ConnectTimeout,
            CloseReason::Io(5),
            CloseReason::FrameTooLong { len: 1, max: 0 },
            CloseReason::Protocol(FrameError::DelimiterInPayload),
            CloseReason::Timeout(Timeout::FirstData),
            CloseReason::Timeout(Timeout::Idle),
            CloseReason::Timeout(Timeout::Read),
            CloseReason::Timeout(Timeout::Write),
            CloseReason::SlowReader,
            CloseReason::Timeout(Timeout::Heartbeat),
            CloseReason::FrameBudget,
            CloseReason::TransportTimeout,
            CloseReason::WorkerLost,
            CloseReason::JobPanic,
            CloseReason::FileTruncated,
        ];
        for (i, r) in all.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert_eq!(r.name(), r.name_by_match());
        }
    }
}
