//! What a worker keeps per connection besides the user-facing `Conn`.

use super::timeouts::ConnTiming;
use crate::codec::{FrameDecoder, FrameReader};
use crate::conn::Conn;
use crate::core::lifecycle::CloseRequest;
use std::os::fd::OwnedFd;

/// A connection as its worker sees it.
pub(crate) struct ConnState<S> {
    pub conn: Conn,
    /// The user's state; `None` until `on_open` and after `on_close`.
    pub session: Option<S>,
    /// The socket; taken when its close is submitted.
    pub fd: Option<OwnedFd>,
    /// Admitted by the engine's gate (released when it closes).
    pub admitted: bool,
    /// The send queue is above its high water mark.
    pub above_high: bool,
    /// Queued on the worker's dirty list (sends, closes to act on after the batch).
    pub dirty: bool,
    /// Activity stamps and the timeout watch (only with timeouts configured).
    pub timing: Option<Box<ConnTiming>>,
    /// The queue size last counted in the engine's send budget.
    pub queued_reported: usize,
    /// Cuts received bytes into deliveries (holds memory only for a frame that spans
    /// receives). Created on the first receive that needs it (a framing codec, an exact
    /// read); the raw codec hands receives straight to the handler without one.
    pub reader: Option<Box<FrameReader<FrameDecoder>>>,
}

impl<S> ConnState<S> {
    pub(crate) fn new(conn: Conn, fd: OwnedFd) -> ConnState<S> {
        ConnState {
            conn,
            session: None,
            fd: Some(fd),
            admitted: false,
            above_high: false,
            dirty: false,
            timing: None,
            queued_reported: 0,
            reader: None,
        }
    }

    /// Put this connection (`key`) on the worker's dirty list unless it is there already.
    #[inline]
    pub(crate) fn mark_dirty(
        &mut self,
        key: crate::core::ConnKey,
        dirty: &mut Vec<crate::core::ConnKey>,
    ) {
        if !self.dirty {
            self.dirty = true;
            dirty.push(key);
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.conn.life.is_open()
    }

    /// The connection takes more bytes from other threads (a `ConnRef` send, a
    /// broadcast): open, not asked to close, write side not shut.
    pub(crate) fn takes_sends(&self) -> bool {
        self.is_open()
            && self.conn.close_request() == CloseRequest::None
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
