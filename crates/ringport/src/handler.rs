//! The callbacks a user implements: one `Handler` value is shared by every worker; the
//! per-connection state is its `Session`.

use crate::conn::Conn;
use crate::error::CloseReason;
use crate::jobs::JobDone;
use crate::notify::{Ready, WatchRemoved};
use crate::transfer::TransferEvent;
use crate::workers::{Posted, WatchCtl};
use std::net::SocketAddr;

/// The verdict of [`Handler::on_accept`] on a new inbound connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// Keep the connection: `on_open` follows.
    Accept,
    /// Close it at once; no other callback runs for it.
    Reject,
}

/// A connection waiting for [`Handler::on_accept`]'s verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Incoming {
    /// The peer's address.
    pub peer: SocketAddr,
    /// The index of the listener that accepted it (see [`crate::Server::local_addrs`]).
    pub listener: usize,
}

/// Per-connection callbacks, run on the connection's worker thread, one at a time, in
/// event order; and the callbacks of watched descriptors and posted values (all with
/// defaults), run on their worker.
///
/// A panic inside any callback is caught: it closes that connection only with
/// [`CloseReason::HandlerPanic`], is counted in [`crate::Stats::handler_panics`], and the
/// worker keeps serving.
pub trait Handler: Send + Sync + 'static {
    /// Per-connection user state (the "per-handle data" of the classic IOCP servers).
    type Session: 'static;

    /// Veto a new inbound connection before any other callback, after admission control
    /// let it through. Default: accept.
    fn on_accept(&self, _incoming: &Incoming) -> Accept {
        Accept::Accept
    }

    /// The connection is open (accepted, or an outbound connect succeeded).
    fn on_open(&self, conn: &mut Conn) -> Self::Session;

    /// Bytes arrived: with the default raw codec, whatever one receive brought; with a
    /// framing codec (see [`crate::Codec`]) or after [`Conn::read_exact`], exactly one
    /// frame's payload. `data` is only valid during the call; it is lent straight from
    /// the worker's receive buffer ring unless the frame spanned several receives.
    fn on_data(&self, session: &mut Self::Session, conn: &mut Conn, data: &[u8]);

    /// Progress of an exact read asked with [`Conn::read_exact_with_progress`]:
    /// `received` of `total` bytes are in. Called once per received chunk while the read
    /// spans chunks; the whole `total` bytes then arrive in one `on_data`.
    fn on_progress(
        &self,
        _session: &mut Self::Session,
        _conn: &mut Conn,
        _received: usize,
        _total: usize,
    ) {
    }

    /// A timer set with [`Conn::set_timer`] fired (`token` is the one given).
    fn on_timer(&self, _session: &mut Self::Session, _conn: &mut Conn, _token: u64) {}

    /// The send queue crossed a water mark: `false` once it rose above the high mark,
    /// `true` once it fell back to the low mark (see [`crate::SendQueueLimits`]).
    fn on_writable(&self, _session: &mut Self::Session, _conn: &mut Conn, _writable: bool) {}

    /// The peer shut its write side (read EOF). Default: finish sending, then close.
    fn on_eof(&self, _session: &mut Self::Session, conn: &mut Conn) {
        conn.close();
    }

    /// Everything queued for sending has been handed to the kernel.
    fn on_drained(&self, _session: &mut Self::Session, _conn: &mut Conn) {}

    /// The connection is closed; `conn.queued_bytes()` tells how many queued bytes were
    /// not delivered. This is the last callback of a connection.
    fn on_close(&self, session: Self::Session, conn: &Conn, reason: CloseReason);

    /// An outbound connect (see [`crate::Client::connect`]) failed; `token` is the one
    /// given to `connect`.
    fn on_connect_failed(&self, _token: u64, _addr: SocketAddr, _reason: CloseReason) {}

    /// A watched descriptor is ready (see [`crate::Workers::watch`]): `token` is the
    /// watch's, `ready` what is ready. Runs on the watch's worker; `watch` lends the
    /// descriptor and takes a re-arm, a new interest or a removal. A panic here removes
    /// the watch ([`crate::notify::RemoveReason::HandlerPanic`]).
    fn on_ready(&self, _token: u64, _ready: Ready, _watch: &mut WatchCtl<'_>) {}

    /// A watch ended (removed, failed, shut down): its last callback, exactly once per
    /// watch; nothing of it is held any more and `removed` hands its descriptor back
    /// (dropping it closes it). Default: drop it.
    fn on_watch_removed(&self, _removed: WatchRemoved) {}

    /// A value posted to this connection with [`crate::ConnRef::post`] arrived, in order
    /// with the connection's other events. Never after `on_close`: a value posted to a
    /// connection that has closed is dropped and counted
    /// ([`crate::Stats::posts_undelivered`]).
    fn on_posted(&self, _session: &mut Self::Session, _conn: &mut Conn, _value: Posted) {}

    /// A job this connection spawned ([`Conn::spawn_job`], or an async task with
    /// `Conn::spawn_async`) finished: its result is in `done` (take it back by type with
    /// [`JobDone::downcast`]). Results come in the order the jobs were spawned, never
    /// after `on_close`. Default: drop it.
    fn on_job_done(&self, _session: &mut Self::Session, _conn: &mut Conn, _done: JobDone) {}

    /// A file transfer of this connection moved on ([`Conn::send_file`],
    /// [`Conn::receive_to_file`]): progress, its end (`Sent`, or `Received` handing the
    /// file back), or a failure. Events of one transfer come in order; a connection that
    /// closes with transfers unfinished reports each `Failed` with
    /// [`crate::TransferError::Closed`] before `on_close`. Default: drop it.
    fn on_transfer(&self, _session: &mut Self::Session, _conn: &mut Conn, _event: TransferEvent) {}

    /// A value posted to worker `worker` with [`crate::Workers::post`] arrived, on that
    /// worker, in the order posted.
    fn on_worker_posted(&self, _worker: usize, _value: Posted) {}
}
