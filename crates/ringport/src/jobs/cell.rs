//! A job's one allocation: its work, then its result, and the header that brings it back
//! to the connection that spawned it. The cell goes to the pool, runs there, and returns
//! whole through the worker's mailbox; [`crate::jobs::JobDone`] lends the result out of
//! it, so a job costs one allocation however it ends.

use super::CancelToken;
use crate::conn::ConnId;
use crate::engine::mailbox::Mailbox;
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a job came from and where it goes back, and its times.
pub(crate) struct JobHeader {
    /// The connection that spawned it.
    pub conn: ConnId,
    /// Its place in the connection's order (the first job of a connection is 0).
    pub seq: u64,
    /// The mailbox of the connection's worker.
    pub mailbox: Arc<Mailbox>,
    /// Set once the connection closes.
    pub cancel: CancelToken,
    /// When it was spawned.
    pub spawned: Instant,
    /// How long it waited in the queue, and ran (zero until it has).
    pub waited: Duration,
    pub ran: Duration,
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Not run yet.
    Pending,
    /// Ran and returned (its result is in the cell until taken).
    Done,
    /// Not run: its connection had closed (or an async task was dropped unfinished).
    Skipped,
    /// Its work panicked.
    Panicked,
}

/// A job as the pool and the worker see it, whatever its work and result types.
pub(crate) trait JobCell: Send {
    fn header(&self) -> &JobHeader;
    fn header_mut(&mut self) -> &mut JobHeader;
    /// Run the work (a panic is caught) unless the job is cancelled, which skips it.
    fn run(&mut self);
    fn outcome(&self) -> Outcome;
    /// The result as `&mut Option<T>`, for [`crate::jobs::JobDone`] to take.
    fn output(&mut self) -> &mut dyn Any;
}

enum State<F, T> {
    Work(F),
    /// The result, `None` once taken.
    Done(Option<T>),
    Skipped,
    Panicked,
}

/// The one implementation: work `F` producing `T`.
pub(crate) struct Cell<F, T> {
    header: JobHeader,
    state: State<F, T>,
}

impl<F, T> Cell<F, T>
where
    F: FnOnce(&CancelToken) -> T + Send + 'static,
    T: Send + 'static,
{
    pub(crate) fn new(header: JobHeader, work: F) -> Cell<F, T> {
        Cell {
            header,
            state: State::Work(work),
        }
    }
}

#[cfg(any(test, feature = "tokio"))]
impl<T: Send + 'static> Cell<fn(&CancelToken) -> T, T> {
    /// A cell that ended elsewhere (an async task): with its result, or without one.
    pub(crate) fn ended(header: JobHeader, end: Result<T, Outcome>) -> Self {
        let state = match end {
            Ok(value) => State::Done(Some(value)),
            Err(Outcome::Panicked) => State::Panicked,
            Err(_) => State::Skipped,
        };
        Cell { header, state }
    }
}

impl<F, T> JobCell for Cell<F, T>
where
    F: FnOnce(&CancelToken) -> T + Send + 'static,
    T: Send + 'static,
{
    fn header(&self) -> &JobHeader {
        &self.header
    }

    fn header_mut(&mut self) -> &mut JobHeader {
        &mut self.header
    }

    fn run(&mut self) {
        let State::Work(_) = self.state else { return };
        if self.header.cancel.is_cancelled() {
            self.state = State::Skipped;
            return;
        }
        let State::Work(work) = std::mem::replace(&mut self.state, State::Skipped) else {
            unreachable!("checked above")
        };
        let cancel = &self.header.cancel;
        self.state = match catch_unwind(AssertUnwindSafe(|| work(cancel))) {
            Ok(value) => State::Done(Some(value)),
            Err(_) => State::Panicked,
        };
    }

    fn outcome(&self) -> Outcome {
        match self.state {
            State::Work(_) => Outcome::Pending,
            State::Done(_) => Outcome::Done,
            State::Skipped => Outcome::Skipped,
            State::Panicked => Outcome::Panicked,
        }
    }

    fn output(&mut self) -> &mut dyn Any {
        match &mut self.state {
            State::Done(value) => value,
            // Nothing of type `Option<T>`: every downcast fails.
            _ => &mut self.header.waited,
        }
    }
}

impl std::fmt::Debug for dyn JobCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = self.header();
        f.debug_struct("Job")
            .field("conn", &h.conn)
            .field("seq", &h.seq)
            .field("outcome", &self.outcome())
            .finish()
    }
}
