//! The endpoint's handler: one request per connection, read within a deadline, answered
//! once, then a lingering close bounded in time.

use super::http::{find_blank_line, respond, route, Answer};
use super::render;
use crate::conn::Conn;
use crate::error::CloseReason;
use crate::handler::Handler;
use crate::stats::Stats;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Where the endpoint takes its snapshots from.
pub(super) type Source = Box<dyn Fn() -> Stats + Send + Sync + 'static>;

/// Timer token: the request head is due.
const REQUEST_DEADLINE: u64 = 1;
/// Timer token: the lingering close is over.
const LINGER_END: u64 = 2;

/// The per-connection bounds the handler enforces itself (the connection caps are the
/// engine's admission control).
#[derive(Debug, Clone, Copy)]
pub(super) struct SessionLimits {
    pub request_deadline: Duration,
    pub linger: Duration,
    pub max_request_head: usize,
}

/// What the endpoint did, counted as it happens (read by `MetricsServer::stats`).
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub answered: AtomicU64,
    pub request_timeouts: AtomicU64,
    pub linger_timeouts: AtomicU64,
    pub heads_too_large: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The endpoint's handler: collect the request head, answer once, close.
pub(super) struct Endpoint {
    pub source: Source,
    pub limits: SessionLimits,
    pub counters: Arc<Counters>,
}

/// One connection's request: the head read so far, until it is answered.
#[derive(Default)]
pub(super) struct Request {
    head: Vec<u8>,
    answered: bool,
}

impl Handler for Endpoint {
    type Session = Request;

    fn on_open(&self, conn: &mut Conn) -> Request {
        // From connect, however the bytes trickle: each byte resets an idle timeout,
        // never this one.
        conn.set_timer(self.limits.request_deadline, REQUEST_DEADLINE);
        Request::default()
    }

    fn on_data(&self, req: &mut Request, conn: &mut Conn, data: &[u8]) {
        if req.answered {
            return; // a body or a pipelined request: the answer is on its way, then close
        }
        let max = self.limits.max_request_head;
        // The blank line may straddle two receives: look from three bytes back.
        let scan_from = req.head.len().saturating_sub(3);
        let room = max.saturating_sub(req.head.len());
        req.head.extend_from_slice(&data[..data.len().min(room)]);
        let answer = if let Some(end) = find_blank_line(&req.head[scan_from..]) {
            route(&req.head[..scan_from + end])
        } else if req.head.len() >= max {
            bump(&self.counters.heads_too_large);
            Answer::HeadTooLarge
        } else {
            return;
        };
        req.answered = true;
        req.head = Vec::new();
        conn.send(&respond(&answer, || render(&(self.source)())));
        bump(&self.counters.answered);
        // A lingering close: send FIN after the answer and read on (discarding) until
        // the client closes. Closing outright with a request body still unread would
        // make the kernel reset the connection, which can destroy the answer in flight.
        // Bounded: a client that neither takes the answer nor closes within `linger` is
        // aborted.
        conn.shutdown_write();
        conn.set_timer(self.limits.linger, LINGER_END);
    }

    fn on_timer(&self, req: &mut Request, conn: &mut Conn, token: u64) {
        match token {
            REQUEST_DEADLINE if !req.answered => {
                bump(&self.counters.request_timeouts);
                tracing::debug!(
                    peer = %conn.peer_addr(),
                    bytes = req.head.len(),
                    "metrics: request head not complete within the deadline; closing"
                );
                // Nothing is queued: this closes at once.
                conn.close();
            }
            LINGER_END => {
                bump(&self.counters.linger_timeouts);
                tracing::debug!(
                    peer = %conn.peer_addr(),
                    unsent = conn.queued_bytes(),
                    "metrics: client still open after the linger bound; aborting"
                );
                conn.abort();
            }
            _ => {} // the deadline of a request answered in time
        }
    }

    fn on_eof(&self, _req: &mut Request, conn: &mut Conn) {
        conn.close();
    }

    fn on_close(&self, _req: Request, _conn: &Conn, _why: CloseReason) {}
}
