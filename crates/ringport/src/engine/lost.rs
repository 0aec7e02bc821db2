//! A lost worker: one that panicked outside every handler guard (a bug in ringport, or
//! in a `Drop` of the user's), or whose backend kept failing.
//!
//! Its state may be half-updated, so it runs nothing more of the event loop. What it still
//! owes is settled here, once: the loss is logged at error level and counted
//! (`Stats::workers_lost`, which makes the server degraded); its mailbox is closed, so
//! handles to its connections get `SendError::WorkerStopped` and registry questions are
//! not waited for; what was waiting in the mailbox is counted undelivered; and each of its
//! connections is reported closed with `CloseReason::WorkerLost` (`on_close` runs, so a
//! session is never dropped unseen) before the worker's memory, descriptors and ring are
//! released by dropping it. Its listening sockets close with it, so the kernel hands new
//! connections to the other workers' listeners.

use super::callbacks::report_close;
use super::mailbox::Message;
use super::worker::Worker;
use crate::error::CloseReason;
use crate::handler::Handler;
use crate::stats::bump;
use crate::sys::Driver;
use std::any::Any;
use std::sync::atomic::Ordering::Relaxed;

/// The text of a panic's payload, if it has one.
pub(super) fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

impl<H: Handler, D: Driver> Worker<H, D> {
    /// Settle what the lost worker owes (see the module's notes).
    pub(super) fn lose(&mut self, why: &str) {
        tracing::error!(
            worker = self.index,
            connections = self.conns.len(),
            "ringport worker lost ({why}); its connections are closed and the server \
             goes on with the other workers, degraded"
        );
        self.stats.workers_lost.store(1, Relaxed);
        let mut unread = std::mem::take(&mut self.inbox);
        unread.extend(self.mailbox.close());
        for m in unread {
            self.refuse_posted(m);
        }
        for key in self.conns.keys() {
            self.release_budget(key);
            self.cancel_jobs(key);
            // Removed whatever their ledgers hold: the ring is abandoned, and memory the
            // kernel may still touch is leaked with it (see `UringDriver`'s drop).
            if let Some(mut st) = self.conns.remove(key) {
                if st.conn.life.is_closed() {
                    continue; // reported already; only the fd's close was pending
                }
                report_close(
                    &*self.handler,
                    &self.stats,
                    &self.shared,
                    &mut st,
                    CloseReason::WorkerLost,
                );
            }
        }
        self.abandon_watches();
        self.inflight_ops = 0;
        self.frame_held = 0;
        self.publish_gauges();
    }

    /// A message the lost worker will never act on: count what it carried.
    fn refuse_posted(&mut self, m: Message) {
        match m {
            Message::Send(_, data, _) => {
                bump(&self.stats.late_sends, 1);
                bump(&self.stats.undelivered_bytes, data.len() as u64);
            }
            Message::Connect { addr, token, .. } => {
                self.connect_failed(token, addr, CloseReason::WorkerLost)
            }
            Message::Watch {
                id,
                fd,
                file,
                token,
                ..
            } => {
                let reason = crate::notify::RemoveReason::WorkerLost;
                let notice = crate::notify::WatchRemoved::new(id, token, reason, fd);
                self.watch_removed(crate::notify::table::Removal { notice, file });
            }
            Message::Post(..) | Message::PostWorker(_) => bump(&self.stats.posts_undelivered, 1),
            Message::SendTo(..) => bump(&self.stats.datagrams_dropped, 1),
            Message::JobDone(_) => {
                bump(&self.stats.jobs_dropped, 1);
                crate::stats::add_signed(&self.stats.jobs_outstanding, -1);
            }
            // A question's waiter sees its channel closed; the rest needs nothing.
            _ => {}
        }
    }
}
