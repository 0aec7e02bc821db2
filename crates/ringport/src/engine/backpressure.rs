//! Backpressure, counted in bytes: per-connection high and low water marks with the
//! `on_writable` callback, optional pause of reading above the high mark, a hard cap
//! that closes a connection whose peer does not read (`CloseReason::SlowReader`), and a
//! budget for the queued send memory of the whole engine.

use super::worker::Worker;
use crate::core::ConnKey;
use crate::error::CloseReason;
use crate::handler::Handler;
use crate::stats::add_signed;
use crate::sys::Driver;
use std::sync::atomic::{AtomicI64, Ordering};

/// What the worker does about one connection's send queue after its callbacks.
pub(super) enum QueueVerdict {
    /// Nothing to change.
    Keep,
    /// The queue crossed a water mark: tell the handler (`true`: writable again).
    Writable(bool),
    /// Over the cap (or the budget): close as a slow reader.
    Close,
}

/// The engine-wide budget of queued send bytes.
#[derive(Debug, Default)]
pub(crate) struct SendBudget {
    pub limit: Option<i64>,
    pub queued: AtomicI64,
}

impl SendBudget {
    /// Account a connection's queue going from `before` to `now` bytes; true if the
    /// engine is now over its budget.
    fn account(&self, before: usize, now: usize) -> bool {
        let Some(limit) = self.limit else {
            return false;
        };
        let delta = now as i64 - before as i64;
        let total = self.queued.fetch_add(delta, Ordering::Relaxed) + delta;
        total > limit
    }
}

impl<H: Handler, D: Driver> Worker<H, D> {
    /// After a connection's callbacks or a send completion: act on its queue size.
    /// Returns false if the connection is now closing.
    pub(super) fn check_send_queue(&mut self, key: ConnKey) -> bool {
        let Some(st) = self.conns.get_mut(key) else {
            return false;
        };
        // Inline rather than a method: `st` borrows the slab while this reads the config.
        let verdict = {
            let q = st.conn.queued;
            let limits = &self.config.send_queue;
            let over_budget = self.shared.budget.account(st.queued_reported, q);
            let delta = q as i64 - st.queued_reported as i64;
            add_signed(&self.stats.queued_bytes, delta);
            if let Some(l) = self.stats.listener(st.conn.listener) {
                add_signed(&l.queued_bytes, delta);
            }
            st.queued_reported = q;
            if let Some(room) = st.conn.room() {
                room.set_queued(q);
            }
            if limits.max.is_some_and(|max| q > max) || (over_budget && q > limits.low_water) {
                QueueVerdict::Close
            } else if !st.above_high && q > limits.high_water {
                st.above_high = true;
                QueueVerdict::Writable(false)
            } else if st.above_high && q <= limits.low_water {
                st.above_high = false;
                QueueVerdict::Writable(true)
            } else {
                QueueVerdict::Keep
            }
        };
        match verdict {
            QueueVerdict::Keep => true,
            QueueVerdict::Close => {
                crate::stats::bump(&self.stats.slow_readers, 1);
                st.conn.fail(CloseReason::SlowReader);
                false
            }
            QueueVerdict::Writable(writable) => {
                if let Some(session) = st.session.as_mut() {
                    let (handler, conn) = (&self.handler, &mut st.conn);
                    let ok = super::callbacks::guard(&self.stats, || {
                        handler.on_writable(session, conn, writable)
                    });
                    if ok.is_none() {
                        st.conn.panicked();
                        return !st.conn.closing_now();
                    }
                }
                true
            }
        }
    }

    /// A closing connection's queue no longer counts against the budget.
    pub(super) fn release_budget(&mut self, key: ConnKey) {
        if let Some(st) = self.conns.get_mut(key) {
            self.shared.budget.account(st.queued_reported, 0);
            let delta = -(st.queued_reported as i64);
            add_signed(&self.stats.queued_bytes, delta);
            if let Some(l) = self.stats.listener(st.conn.listener) {
                add_signed(&l.queued_bytes, delta);
            }
            st.queued_reported = 0;
        }
    }
}
