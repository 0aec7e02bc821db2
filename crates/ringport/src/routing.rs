//! Per-listener handlers: two protocols on two ports of one server.
//!
//! The engine runs one `Handler` type. When some listeners carry their own handler, the
//! server runs `Routed`, which sends each connection's callbacks to the handler of the
//! listener that accepted it (or to the server's handler for the other listeners and
//! for outbound connections). The server's handler keeps its own session type, unboxed;
//! a listener's handler is reached through `ErasedHandler` and keeps its session boxed
//! (one allocation per connection of that listener). A server whose listeners carry no
//! handler runs the user's handler directly, with none of this.

use crate::conn::Conn;
use crate::error::CloseReason;
use crate::handler::{Accept, Handler, Incoming};
use crate::jobs::JobDone;
use crate::notify::{Ready, WatchRemoved};
use crate::transfer::TransferEvent;
use crate::workers::{Posted, WatchCtl};
use std::any::Any;
use std::net::SocketAddr;
use std::sync::Arc;

/// A `Handler` seen through its callbacks only, its session boxed.
pub(crate) trait ErasedHandler: Send + Sync + 'static {
    fn on_accept(&self, incoming: &Incoming) -> Accept;
    fn on_open(&self, conn: &mut Conn) -> Box<dyn Any>;
    fn on_data(&self, session: &mut dyn Any, conn: &mut Conn, data: &[u8]);
    fn on_progress(&self, session: &mut dyn Any, conn: &mut Conn, received: usize, total: usize);
    fn on_timer(&self, session: &mut dyn Any, conn: &mut Conn, token: u64);
    fn on_writable(&self, session: &mut dyn Any, conn: &mut Conn, writable: bool);
    fn on_eof(&self, session: &mut dyn Any, conn: &mut Conn);
    fn on_drained(&self, session: &mut dyn Any, conn: &mut Conn);
    fn on_close(&self, session: Box<dyn Any>, conn: &Conn, reason: CloseReason);
    fn on_posted(&self, session: &mut dyn Any, conn: &mut Conn, value: Posted);
    fn on_job_done(&self, session: &mut dyn Any, conn: &mut Conn, done: JobDone);
    fn on_transfer(&self, session: &mut dyn Any, conn: &mut Conn, event: TransferEvent);
}

/// The session `H` made in `on_open`. Routing hands a connection's callbacks to the
/// handler that opened it, so the type always matches; a mismatch would be a routing bug
/// and panics (caught like any callback panic: the connection closes with
/// `CloseReason::HandlerPanic`).
fn session_of<H: Handler>(session: &mut dyn Any) -> &mut H::Session {
    session
        .downcast_mut::<H::Session>()
        .expect("a connection's callbacks go to the handler that opened it")
}

impl<H: Handler> ErasedHandler for H {
    fn on_accept(&self, incoming: &Incoming) -> Accept {
        Handler::on_accept(self, incoming)
    }
    fn on_open(&self, conn: &mut Conn) -> Box<dyn Any> {
        Box::new(Handler::on_open(self, conn))
    }
    fn on_data(&self, session: &mut dyn Any, conn: &mut Conn, data: &[u8]) {
        Handler::on_data(self, session_of::<H>(session), conn, data)
    }
    fn on_progress(&self, session: &mut dyn Any, conn: &mut Conn, received: usize, total: usize) {
        Handler::on_progress(self, session_of::<H>(session), conn, received, total)
    }
    fn on_timer(&self, session: &mut dyn Any, conn: &mut Conn, token: u64) {
        Handler::on_timer(self, session_of::<H>(session), conn, token)
    }
    fn on_writable(&self, session: &mut dyn Any, conn: &mut Conn, writable: bool) {
        Handler::on_writable(self, session_of::<H>(session), conn, writable)
    }
    fn on_eof(&self, session: &mut dyn Any, conn: &mut Conn) {
        Handler::on_eof(self, session_of::<H>(session), conn)
    }
    fn on_drained(&self, session: &mut dyn Any, conn: &mut Conn) {
        Handler::on_drained(self, session_of::<H>(session), conn)
    }
    fn on_close(&self, session: Box<dyn Any>, conn: &Conn, reason: CloseReason) {
        match session.downcast::<H::Session>() {
            Ok(session) => Handler::on_close(self, *session, conn, reason),
            Err(_) => panic!("a connection's callbacks go to the handler that opened it"),
        }
    }
    fn on_posted(&self, session: &mut dyn Any, conn: &mut Conn, value: Posted) {
        Handler::on_posted(self, session_of::<H>(session), conn, value)
    }
    fn on_job_done(&self, session: &mut dyn Any, conn: &mut Conn, done: JobDone) {
        Handler::on_job_done(self, session_of::<H>(session), conn, done)
    }
    fn on_transfer(&self, session: &mut dyn Any, conn: &mut Conn, event: TransferEvent) {
        Handler::on_transfer(self, session_of::<H>(session), conn, event)
    }
}

/// A listener's own handler, shared by the listener's settings and the running server.
#[derive(Clone)]
pub(crate) struct ListenerHandler(pub Arc<dyn ErasedHandler>);

impl std::fmt::Debug for ListenerHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ListenerHandler")
    }
}

/// The server's handler plus the handlers some listeners carry, by listener index.
pub(crate) struct Routed<H> {
    default: H,
    by_listener: Vec<Option<ListenerHandler>>,
}

impl<H> Routed<H> {
    pub(crate) fn new(default: H, by_listener: Vec<Option<ListenerHandler>>) -> Routed<H> {
        Routed {
            default,
            by_listener,
        }
    }

    /// The handler of the listener that accepted `conn`, if that listener has its own.
    fn own(&self, listener: Option<usize>) -> Option<&dyn ErasedHandler> {
        let index = listener?;
        self.by_listener.get(index)?.as_ref().map(|h| &*h.0)
    }
}

/// A routed connection's session: the server handler's, or a listener handler's (boxed).
pub(crate) enum RoutedSession<S> {
    Default(S),
    Listener(Box<dyn Any>),
}

/// Run `$call` on the handler that opened the connection: the server's handler with its
/// session, or the listener's handler with the boxed one.
macro_rules! route {
    ($self:ident, $session:ident, $conn:ident, |$h:ident, $s:ident| $default:expr, $erased:expr) => {
        match $session {
            RoutedSession::Default($s) => {
                let $h = &$self.default;
                $default
            }
            RoutedSession::Listener($s) => match $self.own($conn.listener()) {
                Some($h) => $erased,
                None => unreachable!("a boxed session comes from a listener's handler"),
            },
        }
    };
}

impl<H: Handler> Handler for Routed<H> {
    type Session = RoutedSession<H::Session>;

    fn on_accept(&self, incoming: &Incoming) -> Accept {
        match self.own(Some(incoming.listener)) {
            Some(h) => h.on_accept(incoming),
            None => Handler::on_accept(&self.default, incoming),
        }
    }

    fn on_open(&self, conn: &mut Conn) -> Self::Session {
        match self.own(conn.listener()) {
            Some(h) => RoutedSession::Listener(h.on_open(conn)),
            None => RoutedSession::Default(Handler::on_open(&self.default, conn)),
        }
    }

    fn on_data(&self, session: &mut Self::Session, conn: &mut Conn, data: &[u8]) {
        route!(
            self,
            session,
            conn,
            |h, s| Handler::on_data(h, s, conn, data),
            { h.on_data(&mut **s, conn, data) }
        )
    }

    fn on_progress(
        &self,
        session: &mut Self::Session,
        conn: &mut Conn,
        received: usize,
        total: usize,
    ) {
        route!(
            self,
            session,
            conn,
            |h, s| Handler::on_progress(h, s, conn, received, total),
            h.on_progress(&mut **s, conn, received, total)
        )
    }

    fn on_timer(&self, session: &mut Self::Session, conn: &mut Conn, token: u64) {
        route!(
            self,
            session,
            conn,
            |h, s| Handler::on_timer(h, s, conn, token),
            { h.on_timer(&mut **s, conn, token) }
        )
    }

    fn on_writable(&self, session: &mut Self::Session, conn: &mut Conn, writable: bool) {
        route!(
            self,
            session,
            conn,
            |h, s| Handler::on_writable(h, s, conn, writable),
            { h.on_writable(&mut **s, conn, writable) }
        )
    }

    fn on_eof(&self, session: &mut Self::Session, conn: &mut Conn) {
        route!(self, session, conn, |h, s| Handler::on_eof(h, s, conn), {
            h.on_eof(&mut **s, conn)
        })
    }

    fn on_drained(&self, session: &mut Self::Session, conn: &mut Conn) {
        route!(
            self,
            session,
            conn,
            |h, s| Handler::on_drained(h, s, conn),
            { h.on_drained(&mut **s, conn) }
        )
    }

    fn on_close(&self, session: Self::Session, conn: &Conn, reason: CloseReason) {
        match session {
            RoutedSession::Default(s) => Handler::on_close(&self.default, s, conn, reason),
            RoutedSession::Listener(s) => match self.own(conn.listener()) {
                Some(h) => h.on_close(s, conn, reason),
                None => unreachable!("a boxed session comes from a listener's handler"),
            },
        }
    }

    fn on_posted(&self, session: &mut Self::Session, conn: &mut Conn, value: Posted) {
        route!(
            self,
            session,
            conn,
            |h, s| Handler::on_posted(h, s, conn, value),
            { h.on_posted(&mut **s, conn, value) }
        )
    }

    fn on_job_done(&self, session: &mut Self::Session, conn: &mut Conn, done: JobDone) {
        route!(
            self,
            session,
            conn,
            |h, s| Handler::on_job_done(h, s, conn, done),
            { h.on_job_done(&mut **s, conn, done) }
        )
    }

    fn on_transfer(&self, session: &mut Self::Session, conn: &mut Conn, event: TransferEvent) {
        route!(
            self,
            session,
            conn,
            |h, s| Handler::on_transfer(h, s, conn, event),
            { h.on_transfer(&mut **s, conn, event) }
        )
    }

    fn on_connect_failed(&self, token: u64, addr: SocketAddr, reason: CloseReason) {
        self.default.on_connect_failed(token, addr, reason)
    }

    // Watches and worker posts belong to no connection: the server's handler has them.
    fn on_ready(&self, token: u64, ready: Ready, watch: &mut WatchCtl<'_>) {
        self.default.on_ready(token, ready, watch)
    }

    fn on_watch_removed(&self, removed: WatchRemoved) {
        self.default.on_watch_removed(removed)
    }

    fn on_worker_posted(&self, worker: usize, value: Posted) {
        self.default.on_worker_posted(worker, value)
    }
}
