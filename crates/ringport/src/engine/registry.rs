//! The connection registry and broadcasts.
//!
//! Nothing is kept for the registry per connection beyond what its worker already has:
//! the listener index sits in `Conn`'s former padding and the open time (a 10 ms tick of
//! the worker's clock) in the slab entry's, so opening and closing a connection costs
//! nothing more (one `u32` store at insertion), and no message pays anything either. A
//! snapshot or a lookup is a question posted to the workers' mailboxes, answered from
//! their slabs on their own threads (a scan of the slab for a snapshot, one slot for a
//! lookup) and waited for with a deadline. A broadcast is one message per worker that
//! queues the same `Bytes` (a reference count, no copy) on each of its open connections.

use super::conn_state::ConnState;
use super::mailbox::{Mailbox, Message};
use super::worker::Worker;
use super::Engine;
use crate::conn::{ConnContext, ConnId, ConnInfo, ConnRef};
use crate::error::Error;
use crate::handler::Handler;
use crate::sys::Driver;
use bytes::Bytes;
use std::cell::RefCell;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Resolution of the open times kept per connection. Ages are right to this, up to
/// `u32::MAX` ticks (497 days).
const TICK: Duration = Duration::from_millis(10);

/// How long a snapshot or lookup waits for the workers' answers. A worker answers at its
/// next wake-up (microseconds when it is healthy); one that does not within this is busy
/// in a callback that does not return, and its part is left out.
pub(crate) const REGISTRY_WAIT: Duration = Duration::from_secs(1);

/// A question about a worker's connections, answered on the worker.
#[derive(Debug)]
pub(crate) enum Query {
    /// Every open connection.
    List(mpsc::Sender<Vec<ConnInfo>>),
    /// A handle to one connection if it is open.
    Find(ConnId, mpsc::Sender<Option<ConnRef>>),
}

thread_local! {
    /// On a worker thread, that worker's connection context: a question to its own
    /// mailbox from one of its callbacks could not be answered until the callback
    /// returns, so it is not asked.
    static CURRENT: RefCell<Option<Arc<ConnContext>>> = const { RefCell::new(None) };
}

/// Mark the calling thread as the worker with connection context `ctx`.
pub(super) fn enter_worker(ctx: Arc<ConnContext>) {
    CURRENT.with_borrow_mut(|c| *c = Some(ctx));
}

/// The calling thread's connection context if it is the worker of `mailbox`.
fn on_worker_of(mailbox: &Arc<Mailbox>) -> Option<Arc<ConnContext>> {
    CURRENT.with_borrow(|c| {
        c.as_ref()
            .filter(|ctx| Arc::ptr_eq(&ctx.mailbox, mailbox))
            .cloned()
    })
}

/// `since` in ticks, wrapping (only differences of ticks are used).
pub(super) fn ticks(since: Duration) -> u32 {
    let t = since
        .as_secs()
        .wrapping_mul(1000 / TICK.as_millis() as u64)
        .wrapping_add(u64::from(since.subsec_millis()) / TICK.as_millis() as u64);
    t as u32
}

impl<H: Handler, D: Driver> Worker<H, D> {
    pub(super) fn on_query(&mut self, query: Query) {
        match query {
            Query::List(reply) => {
                let now = Instant::now();
                let now_ticks = ticks(now.saturating_duration_since(self.epoch));
                let list = self
                    .conns
                    .iter_mut()
                    .filter(|(_, _, st)| st.is_open())
                    .map(|(_, stamp, st)| {
                        let age = TICK * now_ticks.wrapping_sub(stamp);
                        st.conn.info(now.checked_sub(age).unwrap_or(now))
                    })
                    .collect();
                let _ = reply.send(list);
            }
            Query::Find(id, reply) => {
                let found = self
                    .find(id)
                    .and_then(|key| self.conns.get_mut(key))
                    .filter(|st| st.is_open())
                    .map(|st| st.conn.handle());
                let _ = reply.send(found);
            }
        }
    }

    /// Queue `data` on every open connection (of listener `listener` if given) that has
    /// not been asked to close.
    pub(super) fn on_broadcast(&mut self, listener: Option<u16>, data: Bytes) {
        let dirty = &mut self.dirty;
        for (key, _, st) in self.conns.iter_mut() {
            if !takes_broadcast(st, listener) {
                continue;
            }
            st.conn.send_bytes(data.clone());
            st.mark_dirty(key, dirty);
        }
    }
}

fn takes_broadcast<S>(st: &ConnState<S>, listener: Option<u16>) -> bool {
    st.takes_sends() && listener.map_or(true, |l| st.conn.listener == l)
}

impl Engine {
    /// Every open connection of every worker that answers within `wait`.
    pub(crate) fn connections(&self, wait: Duration) -> Vec<ConnInfo> {
        let (tx, rx) = mpsc::channel();
        let mut asked = 0;
        for w in &self.workers {
            if on_worker_of(&w.mailbox).is_some() {
                tracing::debug!("connections() called on a worker: its own are left out");
                continue;
            }
            if w.mailbox
                .post(Message::Query(Query::List(tx.clone())))
                .is_ok()
            {
                asked += 1;
            }
        }
        drop(tx);
        let deadline = Instant::now() + wait;
        let mut all = Vec::new();
        for _ in 0..asked {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(list) => all.extend(list),
                Err(RecvTimeoutError::Timeout) => {
                    tracing::warn!(?wait, "a worker did not list its connections in time");
                    break;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        all.sort_by_key(|c: &ConnInfo| (c.opened, c.id));
        all
    }

    /// A handle to connection `id` if it is open (asked of its worker, waiting up to
    /// `wait`). On its own worker's thread the worker cannot be asked: the handle is
    /// given unchecked.
    pub(crate) fn connection(&self, id: ConnId, wait: Duration) -> Option<ConnRef> {
        let w = self.workers.get(id.worker())?;
        if let Some(ctx) = on_worker_of(&w.mailbox) {
            return Some(ConnRef::new(id, ctx));
        }
        let (tx, rx) = mpsc::channel();
        w.mailbox.post(Message::Query(Query::Find(id, tx))).ok()?;
        rx.recv_timeout(wait).ok().flatten()
    }

    /// Post `data` to every worker, for its open connections (of `listener` if given).
    pub(crate) fn broadcast(&self, listener: Option<u16>, data: Bytes) -> Result<(), Error> {
        if data.is_empty() {
            return Ok(());
        }
        // Every running worker gets it; a lost one is skipped (its connections are
        // gone). It fails only if no worker took it, or one was full (the others have
        // queued it: the error says the broadcast did not reach everyone).
        let (mut taken, mut full) = (0, false);
        for w in &self.workers {
            let msg = Message::Broadcast {
                listener,
                data: data.clone(),
            };
            match w.mailbox.post(msg) {
                Ok(()) => taken += 1,
                Err(crate::error::SendError::Full) => full = true,
                Err(_) => {}
            }
        }
        match (full, taken) {
            (true, _) => Err(Error::Busy),
            (false, 0) => Err(Error::Stopped),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_count_tens_of_milliseconds_and_wrap() {
        assert_eq!(ticks(Duration::from_millis(9)), 0);
        assert_eq!(ticks(Duration::from_millis(1234)), 123);
        let long = Duration::from_secs(u32::MAX as u64 / 100 + 1);
        let a = ticks(long);
        let b = ticks(long + Duration::from_secs(3));
        assert_eq!(b.wrapping_sub(a), 300, "differences survive the wrap");
    }
}
