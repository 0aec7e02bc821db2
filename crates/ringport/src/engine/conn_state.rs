//! What a worker keeps per connection besides the user-facing `Conn`.

use crate::codec::{FrameDecoder, FrameReader};
use crate::conn::Conn;
use crate::error::CloseReason;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Outbound connect in flight.
    Connecting,
    /// Open: callbacks run.
    Open,
    /// Closing with this reason: in-flight ops are cancelled and awaited; then
    /// `on_close` runs and the fd is closed.
    Closing(CloseReason),
    /// `on_close` has run; the fd's close is in flight. The slot is freed on its completion.
    Closed,
}

/// A connection as its worker sees it.
pub(crate) struct ConnState<S> {
    pub conn: Conn,
    /// The user's state; `None` until `on_open` and after `on_close`.
    pub session: Option<S>,
    /// The socket; taken when its close is submitted.
    pub fd: Option<OwnedFd>,
    pub raw_fd: RawFd,
    pub phase: Phase,
    /// Operations submitted and not yet finally completed (multishot counts once).
    pub inflight: u32,
    pub recv_armed: bool,
    /// Bytes covered by the in-flight send (0: none in flight).
    pub sending: usize,
    /// Completions still due from the connect and its linked timeout (0, 1 or 2).
    pub connect_ops: u8,
    /// `on_open` has run (the connection counted as open).
    pub opened: bool,
    /// Admitted by the engine's gate (released when it closes).
    pub admitted: bool,
    /// Read EOF seen: the peer shut its write side.
    pub read_eof: bool,
    /// shutdown(SHUT_WR) has been submitted.
    pub write_shut: bool,
    /// Queued on the worker's dirty list (sends, closes to act on after the batch).
    pub dirty: bool,
    /// Cancels for in-flight ops have been submitted.
    pub cancelled: bool,
    /// Cuts received bytes into deliveries (holds memory only for a frame that spans
    /// receives).
    pub reader: FrameReader<FrameDecoder>,
}

impl<S> ConnState<S> {
    pub(crate) fn new(
        conn: Conn,
        fd: OwnedFd,
        phase: Phase,
        reader: FrameReader<FrameDecoder>,
    ) -> ConnState<S> {
        ConnState {
            conn,
            session: None,
            raw_fd: fd.as_raw_fd(),
            fd: Some(fd),
            phase,
            inflight: 0,
            recv_armed: false,
            sending: 0,
            connect_ops: 0,
            opened: false,
            admitted: false,
            read_eof: false,
            write_shut: false,
            dirty: false,
            cancelled: false,
            reader,
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }
}
