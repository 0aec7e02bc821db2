//! Every call into the user's handler goes through here: the panic guard, the one rule
//! for what a panic does (the connection closes with `CloseReason::HandlerPanic` unless a
//! close was already asked), and the close report (`on_close` or `on_connect_failed`,
//! exactly once per connection).

use super::conn_state::ConnState;
use crate::conn::Conn;
use crate::error::CloseReason;
use crate::handler::Handler;
use crate::stats::{add_signed, bump, WorkerStats};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

/// Run a user callback; a panic is caught and counted, and `None` returned.
pub(super) fn guard<R>(stats: &WorkerStats, f: impl FnOnce() -> R) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(_) => {
            bump(&stats.handler_panics, 1);
            tracing::warn!("a handler callback panicked; closing its connection");
            None
        }
    }
}

/// Run a callback on a connection's session (if it has one: after `on_open`, before
/// `on_close`); a panic closes the connection.
pub(super) fn with_session<S>(
    stats: &WorkerStats,
    st: &mut ConnState<S>,
    f: impl FnOnce(&mut S, &mut Conn),
) {
    if let Some(session) = st.session.as_mut() {
        let conn = &mut st.conn;
        if guard(stats, || f(session, conn)).is_none() {
            st.conn.panicked();
        }
    }
}

/// The peer's EOF to the handler (`on_eof`); a graceful close it asks for is then the
/// peer's doing.
pub(super) fn eof_to_handler<H: Handler>(
    handler: &H,
    stats: &WorkerStats,
    st: &mut ConnState<H::Session>,
) {
    with_session(stats, st, |s, conn| handler.on_eof(s, conn));
    st.conn.life.peer_closed();
}

/// Run `on_open`: the session it returns, or a close if it panicked.
pub(super) fn open_session<H: Handler>(
    handler: &H,
    stats: &WorkerStats,
    st: &mut ConnState<H::Session>,
) {
    let conn = &mut st.conn;
    match guard(stats, || handler.on_open(conn)) {
        Some(session) => st.session = Some(session),
        None => st.conn.panicked(),
    }
}

/// A connection has closed with `reason`: count it, release its admission, and run
/// `on_close` (or, for a connect that never opened, `on_connect_failed`).
pub(super) fn report_close<H: Handler>(
    handler: &H,
    stats: &WorkerStats,
    shared: &super::EngineShared,
    st: &mut ConnState<H::Session>,
    reason: CloseReason,
) {
    let undelivered = st.conn.queued_bytes() as u64;
    if undelivered > 0 {
        bump(&stats.undelivered_bytes, undelivered);
    }
    if st.conn.life.was_opened() {
        add_signed(&stats.open, -1);
        bump(&stats.closed, 1);
        bump(&stats.closed_by[reason.index()], 1);
        if let Some(l) = stats.listener(st.conn.listener) {
            add_signed(&l.open, -1);
            bump(&l.closed_by[reason.index()], 1);
        }
        if st.admitted {
            let (listener, ip) = (usize::from(st.conn.listener), st.conn.peer.ip());
            shared.release(listener, ip, Instant::now());
        }
        if let Some(session) = st.session.take() {
            let conn = &st.conn;
            guard(stats, || handler.on_close(session, conn, reason));
        }
    } else if st.conn.is_outbound() {
        let (token, addr) = (st.conn.token(), st.conn.peer_addr());
        report_connect_failed(handler, stats, token, addr, reason);
    }
}

/// A connect failed (before or after its socket was made): count it and tell the handler.
pub(super) fn report_connect_failed<H: Handler>(
    handler: &H,
    stats: &WorkerStats,
    token: u64,
    addr: std::net::SocketAddr,
    reason: CloseReason,
) {
    bump(&stats.connect_failed, 1);
    guard(stats, || handler.on_connect_failed(token, addr, reason));
}
