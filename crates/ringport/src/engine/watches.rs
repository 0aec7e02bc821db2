//! The worker's watches and posts: descriptors watched for readiness on this worker
//! (`Workers::watch`; the table and its machine are `notify/table.rs`) and values posted
//! to the worker or to one of its connections. Every call into the handler goes through
//! the panic guard; every watch ends with exactly one `on_watch_removed`.

use super::callbacks::{guard, with_session};
use super::mailbox::WatchAsk;
use super::worker::Worker;
use crate::conn::ConnId;
use crate::core::ConnKey;
use crate::handler::Handler;
use crate::notify::table::{Event, Removal};
use crate::notify::{Interest, RemoveReason, WatchId, WatchRemoved};
use crate::stats::bump;
use crate::sys::fd_info::FileIdentity;
use crate::sys::{Completion, Driver};
use crate::workers::{Posted, WatchCtl};
use std::os::fd::OwnedFd;

impl<H: Handler, D: Driver> Worker<H, D> {
    /// A completion of a watch's poll.
    pub(super) fn on_watch_poll(&mut self, key: ConnKey, c: Completion) {
        match self.watches.complete(&mut self.io, key, &c) {
            Some(Event::Ready {
                key, token, ready, ..
            }) => {
                bump(&self.stats.watch_notifications, 1);
                self.run_on_ready(key, token, ready);
            }
            Some(Event::Removed(r)) => self.watch_removed(r),
            None => {}
        }
    }

    /// Run `on_ready`, then do what it asked (a panic removes the watch), then re-arm a
    /// persistent watch whose poll ended.
    fn run_on_ready(&mut self, key: ConnKey, token: u64, ready: crate::notify::Ready) {
        let Some(view) = self.watches.view(key) else {
            return;
        };
        let mut ctl = WatchCtl::new(view.id, token, view.fd, view.interest, &self.shared.workers);
        let handler = &*self.handler;
        let ran = guard(&self.stats, || handler.on_ready(token, ready, &mut ctl));
        let ask = ctl.ask;
        match (ran, ask) {
            (None, _) => self.remove_watch(key, RemoveReason::HandlerPanic),
            (Some(()), Some(ask)) => self.watch_asked(key, ask),
            (Some(()), None) => {}
        }
        self.watches.after_ready(&mut self.io, key);
    }

    fn watch_asked(&mut self, key: ConnKey, ask: WatchAsk) {
        match ask {
            WatchAsk::Modify(to) => {
                self.watches.modify(&mut self.io, key, to);
            }
            WatchAsk::Rearm => {
                self.watches.rearm(&mut self.io, key);
            }
            WatchAsk::Remove => self.remove_watch(key, RemoveReason::Removed),
        }
    }

    fn remove_watch(&mut self, key: ConnKey, why: RemoveReason) {
        if let Ok(Some(r)) = self.watches.remove(&mut self.io, key, why) {
            self.watch_removed(r);
        }
    }

    /// A watch posted to this worker.
    pub(super) fn start_watch(
        &mut self,
        id: WatchId,
        fd: OwnedFd,
        file: FileIdentity,
        interest: Interest,
        token: u64,
    ) {
        if self.stop.asked {
            // Shutting down: it ends before it starts, with its notice all the same.
            let notice = WatchRemoved::new(id, token, RemoveReason::Shutdown, fd);
            return self.watch_removed(Removal { notice, file });
        }
        self.watches
            .insert(&mut self.io, id, fd, file, interest, token);
    }

    /// The owner's ask from another thread; a watch already gone is not an error (its
    /// notice has come or is coming).
    pub(super) fn on_watch_ask(&mut self, id: WatchId, ask: WatchAsk) {
        if let Some(key) = self.watches.key(id) {
            self.watch_asked(key, ask);
        }
    }

    /// Shutdown: remove every watch (those with a poll in flight once it is cancelled).
    pub(super) fn remove_all_watches(&mut self) {
        let mut now = Vec::new();
        self.watches
            .remove_all(&mut self.io, RemoveReason::Shutdown, &mut now);
        for r in now {
            self.watch_removed(r);
        }
    }

    /// A lost worker's watches: noticed removed without waiting for their polls (the
    /// ring is abandoned; no poll lends memory).
    pub(super) fn abandon_watches(&mut self) {
        for r in self.watches.abandon(RemoveReason::WorkerLost) {
            self.watch_removed(r);
        }
    }

    /// A watch is gone: count it, free its file for another watch, hand the notice over.
    pub(super) fn watch_removed(&mut self, r: Removal) {
        let s = &self.stats;
        let counter = match r.notice.reason {
            RemoveReason::Removed => &s.watches_removed,
            RemoveReason::Failed { .. } => &s.watches_failed,
            RemoveReason::Shutdown => &s.watches_shut_down,
            _ => &s.watches_abandoned,
        };
        bump(counter, 1);
        self.shared.workers.forget(r.file);
        let handler = &*self.handler;
        guard(&self.stats, || handler.on_watch_removed(r.notice));
    }

    /// A value posted to connection `id`: `on_posted` if the connection is still open
    /// (in order with its other events: the mailbox is one queue), else dropped and
    /// counted.
    pub(super) fn on_post(&mut self, id: ConnId, value: Posted) {
        let key = self.find(id);
        let handler = &*self.handler;
        let stats = &*self.stats;
        match key.and_then(|k| self.conns.get_mut(k)) {
            Some(st) if st.session.is_some() && !st.conn.life.is_closed() => {
                bump(&stats.posts, 1);
                with_session(stats, st, |s, conn| handler.on_posted(s, conn, value));
                let key = key.expect("found");
                self.mark_dirty(key);
            }
            _ => bump(&stats.posts_undelivered, 1),
        }
    }

    /// A value posted to this worker.
    pub(super) fn on_worker_post(&mut self, value: Posted) {
        bump(&self.stats.posts, 1);
        let (handler, worker) = (&*self.handler, usize::from(self.index));
        guard(&self.stats, || handler.on_worker_posted(worker, value));
    }
}
