//! The closed-loop handler: each connection keeps `pipeline` echo messages in flight,
//! checks every echoed byte, records each message's round trip and sends the next one as
//! soon as an echo is complete.

use super::echo::{send_message, EchoRx};
use super::shared::{Recorder, Shared, WorkerSlot};
use crate::pattern::Shape;
use ringport::{CloseReason, Conn, Handler};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

/// One connection's state: its worker's slot and its message stream.
pub struct Session {
    slot: Arc<WorkerSlot>,
    token: u64,
    /// Sequence number of the next message to send.
    next_send: u64,
    rx: EchoRx,
    /// Send time of every message in flight, oldest first.
    sent_at: VecDeque<Instant>,
    /// We closed it on purpose (run over, all echoes back).
    closing: bool,
    /// A mismatch was already logged for this connection.
    logged: bool,
}

impl Session {
    fn send_next(&mut self, conn: &mut Conn, shape: &Shape, now: Instant) {
        send_message(conn, self.token, self.next_send, shape);
        self.sent_at.push_back(now);
        self.next_send += 1;
    }

    fn finish(&mut self, conn: &mut Conn) {
        tracing::debug!(conn = %conn.id(), sent = self.next_send, "all echoes back; closing");
        self.closing = true;
        conn.close();
    }
}

/// The closed-loop load handler.
pub struct Load {
    pub shared: Arc<Shared>,
}

impl Handler for Load {
    type Session = Session;

    fn on_open(&self, conn: &mut Conn) -> Session {
        let sh = &self.shared;
        sh.unresolved.fetch_sub(1, Relaxed);
        sh.open.fetch_add(1, Relaxed);
        let mut s = Session {
            slot: sh.worker_slot(),
            token: conn.token(),
            next_send: 0,
            rx: EchoRx::new(conn.token()),
            sent_at: VecDeque::with_capacity(sh.pipeline),
            closing: false,
            logged: false,
        };
        if sh.stopping.load(Relaxed) {
            s.finish(conn);
        } else {
            let now = Instant::now();
            for _ in 0..sh.pipeline {
                s.send_next(conn, &sh.shape, now);
            }
        }
        s
    }

    fn on_data(&self, s: &mut Session, conn: &mut Conn, data: &[u8]) {
        let sh = &*self.shared;
        let now = Instant::now();
        let stopping = sh.stopping.load(Relaxed);
        let fed = {
            let mut rec = Recorder::new(&s.slot, sh, now);
            s.rx.feed(data, &sh.shape, &mut s.sent_at, |sent, _| rec.record(sent))
        };
        if sh.check_fed(&fed, &mut s.logged, conn, s.rx.seq) {
            // Counted as a mismatch; the close that follows is ours.
            s.closing = true;
            conn.abort();
            return;
        }
        if !stopping {
            for _ in 0..fed.completed {
                s.send_next(conn, &sh.shape, now);
            }
        } else if s.sent_at.is_empty() && !s.closing {
            s.finish(conn);
        }
    }

    fn on_close(&self, s: Session, conn: &Conn, reason: CloseReason) {
        let sh = &self.shared;
        if !s.closing {
            sh.unexpected_closes.fetch_add(1, Relaxed);
            if sh.may_warn() {
                tracing::warn!(
                    conn = %conn.id(),
                    token = s.token,
                    in_flight = s.sent_at.len(),
                    %reason,
                    "connection closed unexpectedly"
                );
            }
        }
        sh.open.fetch_sub(1, Relaxed);
        sh.remaining.fetch_sub(1, Relaxed);
    }

    fn on_connect_failed(&self, token: u64, addr: SocketAddr, reason: CloseReason) {
        let sh = &self.shared;
        sh.connect_errors.fetch_add(1, Relaxed);
        sh.unresolved.fetch_sub(1, Relaxed);
        sh.remaining.fetch_sub(1, Relaxed);
        if sh.may_warn() {
            tracing::warn!(token, %addr, %reason, "connect failed");
        }
    }
}
