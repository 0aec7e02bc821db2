//! `Conn::spawn_job` and what the worker asks of a connection's jobs.

use super::cell::{Cell, JobHeader};
use super::order::ConnJobs;
use super::pool::Refused;
use super::{CancelToken, JobError};
use crate::conn::Conn;
use crate::stats::{add_signed, bump};
use std::time::{Duration, Instant};

impl Conn {
    /// Run `work` on the engine's job pool; its result reaches
    /// [`crate::Handler::on_job_done`] on this connection's worker, after the results of
    /// the jobs this connection spawned before it (see [`crate::jobs`]). Returns the
    /// job's number on the connection ([`crate::JobDone::seq`]).
    pub fn spawn_job<T, F>(&mut self, work: F) -> Result<u64, JobError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.spawn_job_cancellable(move |_: &CancelToken| work())
    }

    /// As [`Conn::spawn_job`], the work given the connection's [`CancelToken`] to look
    /// at (a long job may stop early once the connection has closed).
    pub fn spawn_job_cancellable<T, F>(&mut self, work: F) -> Result<u64, JobError>
    where
        F: FnOnce(&CancelToken) -> T + Send + 'static,
        T: Send + 'static,
    {
        let header = self.job_header()?;
        let pool = self.ctx.jobs.pool.as_ref().ok_or(JobError::NoPool)?;
        let seq = header.seq;
        match pool.submit(Box::new(Cell::new(header, work))) {
            Ok(()) => {
                self.job_spawned();
                Ok(seq)
            }
            Err((why, _work)) => Err(self.job_refused(match why {
                Refused::Full => JobError::PoolFull,
                Refused::Closed => JobError::Closing,
            })),
        }
    }

    /// Jobs (and async tasks) this connection spawned whose result has not been
    /// delivered yet.
    pub fn jobs_outstanding(&self) -> u64 {
        self.jobs().map_or(0, |j| j.outstanding())
    }

    /// The header of the next job, or why none may be spawned now.
    pub(crate) fn job_header(&mut self) -> Result<JobHeader, JobError> {
        if self.closing_now() || !self.life.is_open() {
            return Err(self.job_refused(JobError::Closing));
        }
        let cap = self.ctx.jobs.per_connection;
        let (conn, mailbox) = (self.id(), self.ctx.mailbox.clone());
        let jobs = self.extras_mut().jobs.get_or_insert_with(ConnJobs::new);
        if jobs.outstanding() >= cap as u64 {
            return Err(self.job_refused(JobError::ConnectionFull { cap }));
        }
        Ok(JobHeader {
            conn,
            seq: jobs.peek_seq(),
            mailbox,
            cancel: jobs.cancel.clone(),
            spawned: Instant::now(),
            waited: Duration::ZERO,
            ran: Duration::ZERO,
        })
    }

    /// The job made with the last header was taken (by the pool or a runtime).
    pub(crate) fn job_spawned(&mut self) {
        if let Some(jobs) = self.jobs_mut() {
            jobs.spawned();
        }
        bump(&self.ctx.stats.jobs_spawned, 1);
        add_signed(&self.ctx.stats.jobs_outstanding, 1);
    }

    fn job_refused(&self, why: JobError) -> JobError {
        bump(&self.ctx.stats.jobs_refused, 1);
        why
    }

    /// At its cap of outstanding jobs: hand it no data, read nothing more from it.
    pub(crate) fn jobs_full(&self) -> bool {
        self.jobs()
            .is_some_and(|j| j.outstanding() >= self.ctx.jobs.per_connection as u64)
    }
}
