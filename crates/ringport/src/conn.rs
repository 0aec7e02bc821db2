//! The per-callback connection context (`Conn`) and the cross-thread handle (`ConnRef`).

use crate::codec::{Codec, FrameError};
pub use crate::conn_ref::ConnRef;
pub(crate) use crate::core::lifecycle::CloseRequest;
use crate::core::Lifecycle;
use crate::engine::mailbox::Mailbox;
use crate::error::{CloseReason, SendError};
use crate::sys::outbound::Outbound;
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Identifies a connection: its worker, its slot in the worker's table, and a serial
/// number the worker gives each connection it opens (56 bits: at a million new
/// connections a second it would take two thousand years to wrap). The serial is checked
/// on every use of the id (sends and closes through a [`ConnRef`], timers, lookups), so an
/// id never reaches a later connection in the same slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    /// worker:8 | serial:56 (unique within an engine: compared first).
    word: u64,
    slot: u32,
}

/// Serial numbers are 56 bits wide (the top byte of [`ConnId::as_u64`] is the worker).
pub(crate) const SERIAL_MASK: u64 = (1 << 56) - 1;

impl ConnId {
    pub(crate) fn new(worker: u8, slot: u32, serial: u64) -> ConnId {
        ConnId {
            word: (worker as u64) << 56 | (serial & SERIAL_MASK),
            slot,
        }
    }
    /// The index of the worker serving the connection (0 to the worker count - 1).
    pub fn worker(self) -> usize {
        (self.word >> 56) as usize
    }
    pub(crate) fn slot(self) -> u32 {
        self.slot
    }
    /// The worker's serial number of the connection.
    pub(crate) fn serial(self) -> u64 {
        self.word & SERIAL_MASK
    }
    /// A 64-bit value unique among the connections of one server or client (worker and
    /// serial number), for logs and maps.
    pub fn as_u64(self) -> u64 {
        self.word
    }
}

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "w{}:s{}:#{}", self.worker(), self.slot, self.serial())
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

/// `Conn::flags`: the pending exact read reports progress.
const EXACT_PROGRESS: u8 = 1;
/// `Conn::flags`: `set_codec` replaced the context since the frame reader last looked,
/// so the reader must switch decoders before framing more.
const CODEC_CHANGED: u8 = 2;
/// `Conn::flags`: received bytes wait in the frame reader because the connection was at
/// its cap of outstanding jobs.
const JOBS_HELD: u8 = 4;
/// `Conn::flags`: the peer's EOF arrived while received bytes were held for room under
/// the job cap; `on_eof` runs once they have been delivered.
const EOF_HELD: u8 = 8;
/// `Conn::flags`: the connection's send in flight is a file step, not a byte send.
const FILE_STEP: u8 = 16;

/// Frames up to this long from an encoder are copied into the send queue (gathered with
/// their neighbours); longer ones are queued without a copy.
const SMALL_FRAME: usize = 4096;

/// What every connection of a worker shares: its mailbox (for `ConnRef`) and the
/// engine's codec (for `send_frame`).
#[derive(Debug)]
pub(crate) struct ConnContext {
    pub mailbox: Arc<Mailbox>,
    pub codec: Codec,
    /// The worker's counters (what a `Conn` refuses is counted there).
    pub stats: Arc<crate::stats::WorkerStats>,
    /// The job pool, the per-connection cap, the tokio runtime.
    pub jobs: crate::jobs::JobSettings,
    /// The send queue's high-water mark (what `ConnRef::try_send` holds sends under).
    pub high_water: usize,
}

/// A connection's handler timers.
#[derive(Debug, Default)]
pub(crate) struct UserTimers {
    /// Asked for since the worker last looked: (delay, token).
    pub asked: Vec<(Duration, u64)>,
    /// Armed on the worker's wheel and not yet fired.
    pub armed: Vec<crate::timer::TimerKey>,
}

/// The connection context lent to every callback. It lives on the connection's worker.
#[derive(Debug)]
pub struct Conn {
    /// `ConnId`'s worker and serial number, and below its slot: kept apart so the slot
    /// shares the fd's eight bytes instead of padding an id of its own.
    id_word: u64,
    pub(crate) token: u64,
    pub(crate) peer: SocketAddr,
    pub(crate) fd: std::os::fd::RawFd,
    slot: u32,
    /// The index of the listener that accepted it; [`NO_LISTENER`] for outbound ones.
    pub(crate) listener: u16,
    /// The worker's mailbox and the engine's codec (one shared pointer per connection).
    pub(crate) ctx: Arc<ConnContext>,
    /// Bytes waiting to be sent (the in-flight send has moved its chunks out).
    pub(crate) out: Outbound,
    /// Bytes accepted by `send` and not yet sent: `out` plus the in-flight send.
    pub(crate) queued: usize,
    /// Where the connection is in its life (the machine its worker steps), with what the
    /// handler asked about its end.
    pub(crate) life: Lifecycle,
    pub(crate) shutdown_write: bool,
    /// An exact read asked for and not yet handed to the frame reader: its length (0:
    /// none); whether progress is reported is in `flags` (not an `Option` of a pair, so
    /// they share the padding of the fields above).
    pub(crate) exact_len: u32,
    /// [`EXACT_PROGRESS`] and [`CODEC_CHANGED`] (one byte for both keeps `Conn` within
    /// its padding).
    flags: u8,
    /// The handler's timers (asked for in callbacks and armed by the worker after them,
    /// and those armed, cancelled when the connection closes), its jobs in flight and
    /// results waiting for their turn, the send level its handles read: boxed together,
    /// 8 bytes for a connection that uses none (see `conn_extras.rs`).
    pub(crate) extras: std::cell::OnceCell<Box<crate::conn_extras::ConnExtras>>,
}

impl Conn {
    pub(crate) fn new(
        id: ConnId,
        token: u64,
        peer: SocketAddr,
        fd: std::os::fd::RawFd,
        ctx: Arc<ConnContext>,
        life: Lifecycle,
    ) -> Conn {
        Conn {
            id_word: id.word,
            token,
            peer,
            fd,
            slot: id.slot,
            listener: NO_LISTENER,
            ctx,
            out: Outbound::default(),
            queued: 0,
            life,
            shutdown_write: false,
            exact_len: 0,
            flags: 0,
            extras: std::cell::OnceCell::new(),
        }
    }

    /// A snapshot for the registry; `opened` is computed by the worker.
    pub(crate) fn info(&self, opened: Instant) -> ConnInfo {
        ConnInfo {
            id: self.id(),
            peer: self.peer,
            listener: self.listener(),
            token: self.token,
            opened,
            queued_bytes: self.queued,
        }
    }

    /// This connection's id.
    pub fn id(&self) -> ConnId {
        ConnId {
            word: self.id_word,
            slot: self.slot,
        }
    }

    /// For an outbound connection, the token given to `connect`; 0 for inbound ones.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// True for a connection this side opened with `connect`.
    pub fn is_outbound(&self) -> bool {
        self.listener == NO_LISTENER
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
    /// buffer. Order is kept across `send` and `send_bytes`. Refused after
    /// [`Conn::abort`] or [`Conn::shutdown_write`]: then the bytes are counted in
    /// [`crate::Stats::refused_send_bytes`] ([`Conn::try_send`] says so).
    pub fn send(&mut self, data: &[u8]) {
        let _ = self.try_send(data);
    }

    /// As [`Conn::send`], saying whether the bytes were taken:
    /// [`SendError::WriteShut`] after [`Conn::shutdown_write`], [`SendError::Closing`]
    /// after [`Conn::abort`] (or once the engine is closing the connection).
    pub fn try_send(&mut self, data: &[u8]) -> Result<(), SendError> {
        self.sendable(data.len())?;
        if !data.is_empty() {
            self.out.push_copy(data);
            self.queued += data.len();
        }
        Ok(())
    }

    /// Queue `data` for sending without copying it (refused as [`Conn::send`] is).
    pub fn send_bytes(&mut self, data: Bytes) {
        let _ = self.try_send_bytes(data);
    }

    /// As [`Conn::send_bytes`], saying whether the bytes were taken (see
    /// [`Conn::try_send`]).
    pub fn try_send_bytes(&mut self, data: Bytes) -> Result<(), SendError> {
        self.sendable(data.len())?;
        if !data.is_empty() {
            self.queued += data.len();
            self.out.push_shared(data);
        }
        Ok(())
    }

    /// Queue `payload` framed by the connection's codec (a length header, a delimiter,
    /// ...; with the raw codec, the payload as is). A payload the codec cannot frame (too
    /// long for its header, containing its delimiter) is refused whole
    /// ([`SendError::Unframeable`]); so is any payload once the connection no longer
    /// sends (see [`Conn::try_send`]).
    pub fn send_frame(&mut self, payload: &[u8]) -> Result<(), SendError> {
        let parts = match self.ctx.codec.parts(payload) {
            Err(FrameError::NoParts) => return self.send_encoded(payload),
            parts => parts?,
        };
        let len = parts.header().len() + payload.len() + parts.trailer().len();
        self.sendable(len)?;
        for piece in [parts.header(), payload, parts.trailer()] {
            if !piece.is_empty() {
                self.out.push_copy(piece);
                self.queued += piece.len();
            }
        }
        Ok(())
    }

    /// `send_frame` for a codec that encodes the whole frame (a custom one).
    fn send_encoded(&mut self, payload: &[u8]) -> Result<(), SendError> {
        let mut frame = Vec::new();
        self.ctx.codec.encode(payload, &mut frame)?;
        self.sendable(frame.len())?;
        self.queued += frame.len();
        if frame.len() <= SMALL_FRAME {
            self.out.push_copy(&frame); // gathered with the bytes queued before it
        } else if !frame.is_empty() {
            self.out.push_shared(Bytes::from(frame));
        }
        Ok(())
    }

    /// The codec framing this connection now: the listener's (or server's), or the one
    /// last given to [`Conn::set_codec`].
    pub fn codec(&self) -> &Codec {
        &self.ctx.codec
    }

    /// Frame this connection with `codec` from now on (a handshake in lines, then
    /// length-prefixed frames): it cuts the bytes after the current delivery, those
    /// already received and not yet delivered included, and [`Conn::send_frame`] encodes
    /// with it. Also valid outside `on_data` (in `on_open`, a timer): bytes held then are
    /// framed anew right after the callback. A [`ConnRef`] taken before the switch still
    /// frames its `send_frame` with the codec of when it was taken; take a new one.
    pub fn set_codec(&mut self, codec: Codec) {
        // A context of its own (same mailbox and counters): the `Conn` stays the size it
        // was, and handles taken from now on frame with the new codec.
        self.ctx = Arc::new(ConnContext {
            mailbox: self.ctx.mailbox.clone(),
            codec,
            stats: self.ctx.stats.clone(),
            jobs: self.ctx.jobs.clone(),
            high_water: self.ctx.high_water,
        });
        self.set_flag(CODEC_CHANGED, true);
    }

    fn set_flag(&mut self, flag: u8, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }

    /// Received bytes wait for room under the job cap (see `engine/delivery.rs`).
    pub(crate) fn jobs_held(&self) -> bool {
        self.flags & JOBS_HELD != 0
    }

    pub(crate) fn set_jobs_held(&mut self, on: bool) {
        self.set_flag(JOBS_HELD, on);
    }

    /// The send in flight is a file step (see [`FILE_STEP`]).
    pub(crate) fn file_step(&self) -> bool {
        self.flags & FILE_STEP != 0
    }

    pub(crate) fn set_file_step(&mut self, on: bool) {
        self.set_flag(FILE_STEP, on);
    }

    /// The peer's EOF waits behind bytes held under the job cap (see [`EOF_HELD`]).
    pub(crate) fn eof_held(&self) -> bool {
        self.flags & EOF_HELD != 0
    }

    pub(crate) fn set_eof_held(&mut self, on: bool) {
        self.set_flag(EOF_HELD, on);
    }

    /// `set_codec` was called since the frame reader last switched decoders.
    pub(crate) fn codec_changed(&self) -> bool {
        self.flags & CODEC_CHANGED != 0
    }

    /// As [`Conn::codec_changed`], and clear it (the reader now decodes with the codec).
    pub(crate) fn take_codec_changed(&mut self) -> bool {
        let changed = self.codec_changed();
        self.set_flag(CODEC_CHANGED, false);
        changed
    }

    /// Whether `len` more bytes may be queued; if not, they are counted as refused.
    pub(crate) fn sendable(&self, len: usize) -> Result<(), SendError> {
        let refused = if self.closing_now() {
            SendError::Closing
        } else if self.shutdown_write {
            SendError::WriteShut
        } else {
            return Ok(());
        };
        crate::stats::bump(&self.ctx.stats.refused_send_bytes, len as u64);
        Err(refused)
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
        self.exact_len = len.min(u32::MAX as usize) as u32;
        self.set_flag(EXACT_PROGRESS, progress);
        Ok(())
    }

    /// The exact read asked for since the last look, if any: (length, progress).
    pub(crate) fn take_exact(&mut self) -> Option<(u32, bool)> {
        let len = std::mem::take(&mut self.exact_len);
        (len > 0).then_some((len, self.flags & EXACT_PROGRESS != 0))
    }

    /// An exact read has been asked for and not yet handed to the frame reader.
    pub(crate) fn exact_pending(&self) -> bool {
        self.exact_len > 0
    }

    /// Call [`crate::Handler::on_timer`] with `token` after `delay` (once), unless the
    /// connection has closed by then (its timers are cancelled when it closes). A delay
    /// of a hundred years or more (`Duration::MAX`) never fires.
    pub fn set_timer(&mut self, delay: std::time::Duration, token: u64) {
        self.extras_mut().timers.asked.push((delay, token));
    }

    /// Timers have been asked for since the worker last armed them.
    pub(crate) fn timers_asked(&self) -> bool {
        self.timers().is_some_and(|t| !t.asked.is_empty())
    }

    /// Bytes queued and not yet handed to the kernel.
    pub fn queued_bytes(&self) -> usize {
        self.queued
    }

    /// Close gracefully: stop reading, send what is queued, then close
    /// ([`CloseReason::Local`]).
    pub fn close(&mut self) {
        self.life.ask(CloseRequest::AfterFlush(CloseReason::Local));
    }

    /// Close at once; queued bytes are dropped and counted as undelivered
    /// ([`CloseReason::Aborted`]).
    pub fn abort(&mut self) {
        self.life.ask(CloseRequest::Now(CloseReason::Aborted));
    }

    /// Shut the write side (send FIN) once the queue is flushed; reading goes on. Bytes
    /// queued before this call are sent first; later sends are refused
    /// ([`SendError::WriteShut`]).
    pub fn shutdown_write(&mut self) {
        self.shutdown_write = true;
    }

    /// A handle to this connection that any thread may use to send or close.
    pub fn handle(&self) -> ConnRef {
        ConnRef::with_room(self.id(), self.ctx.clone(), self.room_or_make())
    }

    /// A close-now has been asked (its reason is set).
    pub(crate) fn closing_now(&self) -> bool {
        matches!(self.life.request(), CloseRequest::Now(_))
    }

    /// What was asked about the connection's end (see `Lifecycle::request`).
    pub(crate) fn close_request(&self) -> CloseRequest {
        self.life.request()
    }

    /// Close now with `reason`, unless a close-now reason is already set: the first one
    /// is the one reported.
    pub(crate) fn fail(&mut self, reason: CloseReason) {
        self.life.ask(CloseRequest::Now(reason));
    }

    /// A callback panicked (the guard counted it): close now with
    /// [`CloseReason::HandlerPanic`], unless a close was already asked, whose reason
    /// stays.
    pub(crate) fn panicked(&mut self) {
        if self.life.request() == CloseRequest::None {
            self.life.ask(CloseRequest::Now(CloseReason::HandlerPanic));
        }
    }

    /// Bytes or files accepted for sending and not yet all handed to the kernel.
    pub(crate) fn has_unsent(&self) -> bool {
        self.queued > 0 || self.files_sending()
    }
}
