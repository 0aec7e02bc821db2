//! What a worker keeps per connection besides the user-facing `Conn`.

use super::timeouts::ConnTiming;
use crate::codec::{FrameDecoder, FrameReader};
use crate::conn::Conn;
use std::os::fd::OwnedFd;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Outbound connect in flight.
    Connecting,
    /// Open: callbacks run.
    Open,
    /// Closing (the reason is in `conn.close`, as `CloseRequest::Now`): in-flight ops are
    /// cancelled and awaited; then
    /// `on_close` runs and the fd is closed.
    Closing,
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
    pub phase: Phase,
    /// Operations submitted and not yet finally completed (multishot counts once).
    pub inflight: u32,
    pub recv_armed: bool,
    /// A send is in flight (one at a time).
    pub sending: bool,
    /// Completions still due from the connect and its linked timeout (0, 1 or 2).
    pub connect_ops: u8,
    /// `on_open` has run (the connection counted as open).
    pub opened: bool,
    /// Admitted by the engine's gate (released when it closes).
    pub admitted: bool,
    /// Activity stamps and the timeout watch (only with timeouts configured).
    pub timing: Option<Box<ConnTiming>>,
    /// The send queue is above its high water mark.
    pub above_high: bool,
    /// The queue size last counted in the engine's send budget.
    pub queued_reported: usize,
    /// A receive was cancelled to pause reading (backpressure).
    pub read_pause_cancelled: bool,
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
    /// Created on the first receive that needs it (a framing codec, an exact read); the
    /// raw codec hands receives straight to the handler without one.
    pub reader: Option<Box<FrameReader<FrameDecoder>>>,
}

impl<S> ConnState<S> {
    pub(crate) fn new(conn: Conn, fd: OwnedFd, phase: Phase) -> ConnState<S> {
        ConnState {
            conn,
            session: None,
            fd: Some(fd),
            phase,
            inflight: 0,
            recv_armed: false,
            sending: false,
            connect_ops: 0,
            opened: false,
            admitted: false,
            timing: None,
            above_high: false,
            queued_reported: 0,
            read_pause_cancelled: false,
            read_eof: false,
            write_shut: false,
            dirty: false,
            cancelled: false,
            reader: None,
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// The connection takes more bytes from other threads (a `ConnRef` send, a
    /// broadcast): open, not asked to close, write side not shut.
    pub(crate) fn takes_sends(&self) -> bool {
        self.is_open()
            && self.conn.close == crate::conn::CloseRequest::None
            && !self.conn.shutdown_write
    }
}

#[cfg(test)]
mod tests {
    /// An idle connection's whole state must stay small (the idle-memory target is
    /// 256 bytes of RSS per connection, kernel socket excluded).
    #[test]
    fn connection_state_stays_small() {
        let size = std::mem::size_of::<super::ConnState<()>>();
        use std::mem::size_of;
        assert!(
            size <= 200,
            "ConnState<()> is {size} bytes (Conn {})",
            size_of::<crate::conn::Conn>()
        );
    }
}
