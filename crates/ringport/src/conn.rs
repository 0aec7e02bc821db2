//! The per-callback connection context (`Conn`) and the cross-thread handle (`ConnRef`).

use crate::codec::{Codec, FrameError};
use crate::engine::mailbox::{Mailbox, Message};
use crate::error::{CloseReason, SendError};
use crate::outbound::Outbound;
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Identifies a connection: its worker, slot and slot generation. Never reused while the
/// connection lives, and a later connection in the same slot gets a new generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub(crate) u64);

impl ConnId {
    pub(crate) fn new(worker: u8, slot: u32, gen: u32) -> ConnId {
        ConnId((worker as u64) << 56 | ((gen as u64) & 0xff_ffff) << 32 | slot as u64)
    }
    pub(crate) fn worker(self) -> usize {
        (self.0 >> 56) as usize
    }
    /// The raw 64-bit value (for logs and maps).
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "w{}:s{}:g{}",
            self.worker(),
            self.0 as u32,
            (self.0 >> 32) & 0xff_ffff
        )
    }
}

/// `Conn::listener` of an outbound connection.
pub(crate) const NO_LISTENER: u16 = u16::MAX;

/// One open connection as [`crate::Server::connections`] lists it: a snapshot taken on its
/// worker.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnInfo {
    /// The connection's id (look it up with [`crate::Server::connection`]).
    pub id: ConnId,
    /// The remote address.
    pub peer: SocketAddr,
    /// For an inbound connection, the index of the listener that accepted it (in the
    /// order of [`crate::ServerBuilder::listen`] calls, as in
    /// [`crate::Server::local_addrs`]); `None` for an outbound one.
    pub listener: Option<usize>,
    /// For an outbound connection, the token given to `connect`; 0 for inbound ones.
    pub token: u64,
    /// When it was accepted (or its connect began), to within 10 ms.
    pub opened: Instant,
    /// Bytes queued for sending and not yet taken by the kernel, when the snapshot was
    /// taken.
    pub queued_bytes: usize,
}

impl ConnInfo {
    /// How long the connection has been open.
    pub fn age(&self) -> Duration {
        self.opened.elapsed()
    }
}

/// What every connection of a worker shares: its mailbox (for `ConnRef`) and the
/// engine's codec (for `send_frame`).
#[derive(Debug)]
pub(crate) struct ConnContext {
    pub mailbox: Arc<Mailbox>,
    pub codec: Codec,
}

/// What the handler asked the engine to do with the connection's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseRequest {
    None,
    /// Flush the queue, then close with this reason.
    AfterFlush(CloseReason),
    /// Close now; queued bytes are undelivered.
    Now(CloseReason),
}

/// The connection context lent to every callback. It lives on the connection's worker.
#[derive(Debug)]
pub struct Conn {
    pub(crate) id: ConnId,
    pub(crate) token: u64,
    pub(crate) peer: SocketAddr,
    pub(crate) fd: std::os::fd::RawFd,
    pub(crate) outbound: bool,
    /// The index of the listener that accepted it; [`NO_LISTENER`] for outbound ones (kept
    /// in what was padding).
    pub(crate) listener: u16,
    /// The worker's mailbox and the engine's codec (one shared pointer per connection).
    pub(crate) ctx: Arc<ConnContext>,
    /// Bytes waiting to be sent (the in-flight send has moved its chunks out).
    pub(crate) out: Outbound,
    /// Bytes accepted by `send` and not yet sent: `out` plus the in-flight send.
    pub(crate) queued: usize,
    pub(crate) close: CloseRequest,
    pub(crate) shutdown_write: bool,
    /// An exact read asked for and not yet handed to the frame reader: (length, progress).
    pub(crate) exact: Option<(u32, bool)>,
    /// Timers asked for in this callback, armed by the worker after it: (delay, token).
    #[allow(clippy::box_collection)] // 8 bytes per connection instead of 24
    pub(crate) timers: Option<Box<Vec<(std::time::Duration, u64)>>>,
}

impl Conn {
    pub(crate) fn new(
        id: ConnId,
        token: u64,
        peer: SocketAddr,
        fd: std::os::fd::RawFd,
        outbound: bool,
        ctx: Arc<ConnContext>,
    ) -> Conn {
        Conn {
            id,
            token,
            peer,
            fd,
            outbound,
            listener: NO_LISTENER,
            ctx,
            out: Outbound::default(),
            queued: 0,
            close: CloseRequest::None,
            shutdown_write: false,
            exact: None,
            timers: None,
        }
    }

    /// A snapshot for the registry; `opened` is computed by the worker.
    pub(crate) fn info(&self, opened: Instant) -> ConnInfo {
        ConnInfo {
            id: self.id,
            peer: self.peer,
            listener: self.listener(),
            token: self.token,
            opened,
            queued_bytes: self.queued,
        }
    }

    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// For an outbound connection, the token given to `connect`; 0 for inbound ones.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// True for a connection this side opened with `connect`.
    pub fn is_outbound(&self) -> bool {
        self.outbound
    }

    /// The remote address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// For an inbound connection, the index of the listener that accepted it (the order
    /// of the `listen` calls, as in [`crate::Server::local_addrs`]); `None` for an outbound
    /// one.
    pub fn listener(&self) -> Option<usize> {
        (self.listener != NO_LISTENER).then_some(self.listener as usize)
    }

    /// The keepalive idle time (TCP_KEEPIDLE) if SO_KEEPALIVE is on (asked of the OS on
    /// each call; see [`crate::EngineConfig::tcp_keepalive`]).
    pub fn tcp_keepalive(&self) -> Option<Duration> {
        crate::sys::socket::keepalive_of(self.fd)
    }

    /// The TCP_USER_TIMEOUT if one is set (asked of the OS on each call; see
    /// [`crate::EngineConfig::tcp_user_timeout`]).
    pub fn tcp_user_timeout(&self) -> Option<Duration> {
        crate::sys::socket::user_timeout_of(self.fd)
    }

    /// The local address (asked of the OS on each call; None if it would not say).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        crate::sys::socket::local_addr_of(self.fd)
    }

    /// Queue a copy of `data` for sending; consecutive copies are gathered into one
    /// buffer. Order is kept across `send` and `send_bytes`. Ignored after
    /// [`Conn::abort`].
    pub fn send(&mut self, data: &[u8]) {
        if data.is_empty() || self.aborted() {
            return;
        }
        self.out.push_copy(data);
        self.queued += data.len();
    }

    /// Queue `data` for sending without copying it.
    pub fn send_bytes(&mut self, data: Bytes) {
        if data.is_empty() || self.aborted() {
            return;
        }
        self.queued += data.len();
        self.out.push_shared(data);
    }

    /// Queue `payload` framed by the connection's codec (a length header, a delimiter,
    /// ...; with the raw codec, the payload as is). A payload the codec cannot frame (too
    /// long for its header, containing its delimiter) is refused whole.
    pub fn send_frame(&mut self, payload: &[u8]) -> Result<(), FrameError> {
        if self.aborted() {
            return Ok(());
        }
        let parts = self.ctx.codec.parts(payload)?;
        for piece in [parts.header(), payload, parts.trailer()] {
            if !piece.is_empty() {
                self.out.push_copy(piece);
                self.queued += piece.len();
            }
        }
        Ok(())
    }

    /// Make the next `on_data` exactly `len` bytes, whatever the codec would cut (the
    /// classic "receive N bytes" call); the codec frames again after it. `len` must be 1
    /// to [`Codec::max_exact_read`]; bytes already received
    /// and not yet delivered count towards it.
    pub fn read_exact(&mut self, len: usize) -> Result<(), FrameError> {
        self.ask_exact(len, false)
    }

    /// As [`Conn::read_exact`], with [`crate::Handler::on_progress`] called as the bytes
    /// arrive.
    pub fn read_exact_with_progress(&mut self, len: usize) -> Result<(), FrameError> {
        self.ask_exact(len, true)
    }

    fn ask_exact(&mut self, len: usize, progress: bool) -> Result<(), FrameError> {
        let max = self.ctx.codec.max_exact_read();
        if len == 0 {
            return Err(FrameError::WrongSize { len: 0, size: 1 });
        }
        if len > max {
            return Err(FrameError::TooLong {
                len: len as u64,
                max: max as u64,
            });
        }
        // Exact reads are at most u32::MAX bytes (the reader's limit is lower anyway).
        self.exact = Some((len.min(u32::MAX as usize) as u32, progress));
        Ok(())
    }

    /// Call [`crate::Handler::on_timer`] with `token` after `delay` (once), unless the
    /// connection has closed by then.
    pub fn set_timer(&mut self, delay: std::time::Duration, token: u64) {
        self.timers
            .get_or_insert_with(Default::default)
            .push((delay, token));
    }

    /// Bytes queued and not yet handed to the kernel.
    pub fn queued_bytes(&self) -> usize {
        self.queued
    }

    /// Close gracefully: stop reading, send what is queued, then close
    /// ([`CloseReason::Local`]).
    pub fn close(&mut self) {
        if self.close == CloseRequest::None {
            self.close = CloseRequest::AfterFlush(CloseReason::Local);
        }
    }

    /// Close at once; queued bytes are dropped and counted as undelivered
    /// ([`CloseReason::Aborted`]).
    pub fn abort(&mut self) {
        if !self.aborted() {
            self.close = CloseRequest::Now(CloseReason::Aborted);
        }
    }

    /// Shut the write side (send FIN) once the queue is flushed; reading goes on.
    pub fn shutdown_write(&mut self) {
        self.shutdown_write = true;
    }

    /// A handle to this connection that any thread may use to send or close.
    pub fn handle(&self) -> ConnRef {
        ConnRef {
            id: self.id,
            ctx: self.ctx.clone(),
        }
    }

    fn aborted(&self) -> bool {
        matches!(self.close, CloseRequest::Now(_))
    }

    pub(crate) fn has_unsent(&self) -> bool {
        self.queued > 0
    }
}

/// A handle to a connection, usable from any thread. Messages go through the owning
/// worker's mailbox and are applied in the order they were posted.
#[derive(Debug, Clone)]
pub struct ConnRef {
    id: ConnId,
    ctx: Arc<ConnContext>,
}

impl ConnRef {
    pub(crate) fn new(id: ConnId, ctx: Arc<ConnContext>) -> ConnRef {
        ConnRef { id, ctx }
    }

    /// The connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Queue `data` for sending. If the connection has closed by the time the worker
    /// reads the message, the bytes are counted in `Stats::late_sends`.
    pub fn send(&self, data: impl Into<Bytes>) -> Result<(), SendError> {
        self.ctx.mailbox.post(Message::Send(self.id, data.into()))
    }

    /// Queue `payload` framed by the connection's codec, as [`Conn::send_frame`] (the
    /// frame is encoded on the calling thread).
    pub fn send_frame(&self, payload: &[u8]) -> Result<(), SendError> {
        let mut frame = Vec::new();
        self.ctx.codec.encode(payload, &mut frame)?;
        self.send(frame)
    }

    /// Close gracefully (flush, then close), as [`Conn::close`].
    pub fn close(&self) -> Result<(), SendError> {
        self.ctx.mailbox.post(Message::Close(self.id))
    }
}
