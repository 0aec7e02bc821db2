//! The tokio bridge (feature `tokio`): `Conn::spawn_async` runs a future on the runtime
//! given to the builder and delivers its output exactly as a job's: in the connection's
//! order, through `Handler::on_job_done`, aborted when the connection closes.

use super::cell::{Cell, JobHeader, Outcome};
use super::pool::give_back;
use super::JobError;
use crate::conn::Conn;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

impl Conn {
    /// Run `future` on the engine's tokio runtime ([`crate::ServerBuilder::tokio_runtime`]);
    /// its output reaches [`crate::Handler::on_job_done`] on this connection's worker, in
    /// order with the connection's jobs, as a job's result does. The task is aborted if
    /// the connection closes first. This is how a handler awaits a database or an RPC
    /// without blocking its worker. Counts against the same per-connection cap as jobs.
    pub fn spawn_async<T, F>(&mut self, future: F) -> Result<u64, JobError>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let Some(runtime) = self.ctx.jobs.runtime.clone() else {
            return Err(JobError::NoRuntime);
        };
        let header = self.job_header()?;
        let seq = header.seq;
        let mut back = GiveBack(Some(header));
        let task = runtime.spawn(async move {
            let end = match (CatchUnwind(Box::pin(future))).await {
                Ok(value) => Ok(value),
                Err(()) => Err(Outcome::Panicked),
            };
            back.finish(end);
        });
        self.job_spawned();
        if let Some(jobs) = self.jobs_mut() {
            jobs.tasks.push((seq, task.abort_handle()));
        }
        Ok(seq)
    }
}

/// Sends the task's end back to the worker exactly once: its output when it finishes,
/// "skipped" when the runtime drops it unfinished (aborted, or shut down).
struct GiveBack(Option<JobHeader>);

impl GiveBack {
    fn finish<T: Send + 'static>(&mut self, end: Result<T, Outcome>) {
        if let Some(header) = self.0.take() {
            give_back(Box::new(Cell::ended(header, end)));
        }
    }
}

impl Drop for GiveBack {
    fn drop(&mut self) {
        self.finish::<()>(Err(Outcome::Skipped));
    }
}

/// A future whose panic is caught and reported as `Err(())`.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, ()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.get_mut().0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(_) => Poll::Ready(Err(())),
        }
    }
}
