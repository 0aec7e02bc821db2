//! A worker's side of the job pool: jobs coming back (in any order) go to
//! `Handler::on_job_done` in the order their connection spawned them; a closing
//! connection cancels its jobs; what comes back for a closed one is counted and dropped.

use super::callbacks::with_session;
use super::worker::Worker;
use crate::core::ConnKey;
use crate::error::CloseReason;
use crate::handler::Handler;
use crate::jobs::cell::Outcome;
use crate::jobs::{JobCell, JobDone};
use crate::stats::{add_signed, bump};
use crate::sys::Driver;

impl<H: Handler, D: Driver> Worker<H, D> {
    /// A job of one of this worker's connections ended (ran, panicked, or was skipped).
    pub(super) fn on_job_returned(&mut self, job: Box<dyn JobCell>) {
        add_signed(&self.stats.jobs_outstanding, -1);
        let (id, seq, outcome) = (job.header().conn, job.header().seq, job.outcome());
        let key = self.find(id).filter(|&k| {
            self.conns
                .get_mut(k)
                .is_some_and(|st| st.session.is_some() && st.is_open() && !st.conn.closing_now())
        });
        let Some((key, st)) = key.and_then(|k| Some((k, self.conns.get_mut(k)?))) else {
            // Its connection has closed: count how the job ended, drop it.
            let counter = match outcome {
                Outcome::Skipped | Outcome::Pending => &self.stats.jobs_skipped,
                Outcome::Panicked => &self.stats.jobs_panicked,
                Outcome::Done => &self.stats.jobs_dropped,
            };
            return bump(counter, 1);
        };
        if outcome != Outcome::Done {
            // A panic, or an async task its runtime dropped unfinished while the
            // connection was open: its result will never come, so the connection's
            // later results could not be delivered in order. The connection closes.
            let counter = match outcome {
                Outcome::Panicked => &self.stats.jobs_panicked,
                _ => &self.stats.jobs_skipped,
            };
            bump(counter, 1);
            tracing::warn!(conn = %id, seq, ?outcome, "a job failed; closing its connection");
            st.conn.fail(CloseReason::JobPanic);
        } else if st
            .conn
            .jobs_mut()
            .is_some_and(|jobs| jobs.arrived(seq, job))
        {
            self.deliver_job_results(key);
        } else {
            bump(&self.stats.jobs_dropped, 1);
        }
        self.mark_dirty(key);
    }

    /// Hand a connection's results to the handler while the next in order is in.
    fn deliver_job_results(&mut self, key: ConnKey) {
        let (handler, stats) = (&*self.handler, &*self.stats);
        let Some(st) = self.conns.get_mut(key) else {
            return;
        };
        while !st.conn.closing_now() {
            let Some(cell) = st.conn.jobs_mut().and_then(|j| j.next_ready()) else {
                break;
            };
            bump(&stats.jobs_done, 1);
            with_session(stats, st, |session, conn| {
                handler.on_job_done(session, conn, JobDone::new(cell))
            });
        }
        if st.conn.jobs().is_some_and(|j| j.outstanding() == 0) {
            // Nothing out: an idle connection keeps no job state (a later spawn makes it
            // anew, numbering from 0).
            st.conn.extras_mut().jobs = None;
            st.conn.trim_extras();
        }
    }

    /// A connection is closing: its jobs are cancelled, results waiting are dropped,
    /// threads and tasks waiting to send to it wake (to `Closing`).
    pub(super) fn cancel_jobs(&mut self, key: ConnKey) {
        if let Some(room) = self.conns.get_mut(key).and_then(|st| st.conn.room()) {
            room.close();
        }
        if let Some(jobs) = self.conns.get_mut(key).and_then(|st| st.conn.jobs_mut()) {
            let dropped = jobs.close();
            bump(&self.stats.jobs_dropped, dropped);
        }
    }
}
