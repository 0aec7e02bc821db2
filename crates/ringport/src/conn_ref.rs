//! `ConnRef`: a connection's cross-thread handle — sends (plain, bounded by the
//! connection's send level, waiting for room), closes, posts.

use crate::conn::{ConnContext, ConnId};
use crate::engine::mailbox::Message;
use crate::error::SendError;
use crate::send_room::SendRoom;
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A handle to a connection, usable from any thread. Messages go through the owning
/// worker's mailbox and are applied in the order they were posted.
///
/// Sends come in two kinds: [`ConnRef::send`] is always taken (up to the worker's
/// mailbox bound), [`ConnRef::try_send`], [`ConnRef::send_timeout`] and
/// [`ConnRef::send_async`] hold the connection's queue under its high-water mark
/// ([`crate::SendQueueLimits::high_water`]), counting what the worker has queued and
/// what handles posted that it has not taken yet.
#[derive(Debug, Clone)]
pub struct ConnRef {
    id: ConnId,
    ctx: Arc<ConnContext>,
    /// The connection's send level (none for a handle given unchecked on the
    /// connection's own worker by `Server::connection`: its bounded sends check only the
    /// mailbox).
    room: Option<Arc<SendRoom>>,
}

impl ConnRef {
    /// A handle whose bounded sends read `room`, the connection's send level.
    pub(crate) fn with_room(id: ConnId, ctx: Arc<ConnContext>, room: Arc<SendRoom>) -> ConnRef {
        ConnRef {
            id,
            ctx,
            room: Some(room),
        }
    }

    /// A handle without the send level (see the `room` field).
    pub(crate) fn new(id: ConnId, ctx: Arc<ConnContext>) -> ConnRef {
        ConnRef {
            id,
            ctx,
            room: None,
        }
    }

    /// The connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Queue `data` for sending. If by the time the worker reads the message the
    /// connection has closed, is closing, or has shut its write side, the message is
    /// counted in `Stats::late_sends` and its bytes in `Stats::undelivered_bytes`.
    /// [`SendError::Full`] if the worker's mailbox holds its bound
    /// ([`crate::EngineConfig::mailbox_bytes`]); [`SendError::WorkerStopped`] once the
    /// worker has stopped (or was lost).
    pub fn send(&self, data: impl Into<Bytes>) -> Result<(), SendError> {
        let data = data.into();
        if let Some(room) = &self.room {
            room.count_posted(data.len());
        }
        self.post_send(data)
    }

    /// Post bytes counted in the send level already (if there is one).
    fn post_send(&self, data: Bytes) -> Result<(), SendError> {
        let len = data.len();
        let counted = self.room.is_some();
        let posted = self.ctx.mailbox.post(Message::Send(self.id, data, counted));
        if let (Err(_), Some(room)) = (&posted, &self.room) {
            room.posted_gone(len);
        }
        posted
    }

    /// Queue `data` only if the connection's queue stays at or under its high-water mark
    /// with it (or is empty): else [`SendError::Full`], and nothing is queued. Also
    /// `Full` if the worker's mailbox is at its bound; [`SendError::Closing`] once the
    /// connection is closing. The way for a producer thread to apply backpressure
    /// instead of growing a slow peer's queue.
    pub fn try_send(&self, data: impl Into<Bytes>) -> Result<(), SendError> {
        let data = data.into();
        if let Some(room) = &self.room {
            room.reserve(data.len())?;
        }
        self.post_send(data)
    }

    /// As [`ConnRef::try_send`], waiting up to `timeout` for room (blocking the calling
    /// thread; not for a worker's callbacks). `Full` if there is still none then.
    pub fn send_timeout(&self, data: impl Into<Bytes>, timeout: Duration) -> Result<(), SendError> {
        let data = data.into();
        let Some(room) = &self.room else {
            return self.post_send(data);
        };
        let now = Instant::now();
        let deadline = crate::deadline::after(now, timeout);
        let deadline = deadline.unwrap_or(now + crate::deadline::NEVER);
        loop {
            match room.reserve(data.len()) {
                Ok(()) => return self.post_send(data),
                Err(SendError::Full) if room.wait_for(data.len(), deadline) => {}
                Err(SendError::Full) if Instant::now() < deadline => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// As [`ConnRef::try_send`], waiting (asynchronously, on any executor) until the
    /// connection's queue has room. A full worker mailbox is reported as `Full` at once
    /// rather than waited for.
    pub async fn send_async(&self, data: impl Into<Bytes>) -> Result<(), SendError> {
        let data = data.into();
        let Some(room) = &self.room else {
            return self.post_send(data);
        };
        let len = data.len();
        crate::send_room::RoomFor {
            room,
            len,
            post: || self.post_send(data.clone()),
            parked: false,
        }
        .await
    }

    /// Queue `payload` framed by the connection's codec, as [`crate::Conn::send_frame`] (the
    /// frame is encoded on the calling thread).
    pub fn send_frame(&self, payload: &[u8]) -> Result<(), SendError> {
        let mut frame = Vec::new();
        self.ctx.codec.encode(payload, &mut frame)?;
        self.send(frame)
    }

    /// Close gracefully (flush, then close), as [`crate::Conn::close`].
    pub fn close(&self) -> Result<(), SendError> {
        self.ctx.mailbox.post(Message::Close(self.id))
    }

    /// Post `value` to the connection: [`crate::Handler::on_posted`] runs with it on the
    /// connection's worker, in order with the connection's other events (and after
    /// what this handle sent before), never after `on_close`. Bounded like sends (the
    /// worker's mailbox: `SendError::Full`).
    pub fn post(&self, value: impl std::any::Any + Send) -> Result<(), SendError> {
        let value = crate::workers::Posted::new(value);
        self.ctx.mailbox.post(Message::Post(self.id, value))
    }
}
