//! A connection's jobs in order (the seed's "package reordering problem"): each job gets
//! the next sequence number when spawned; results that come back early wait in a window
//! until every earlier one is in, so the handler sees them in the order spawned. The
//! window holds at most the per-connection cap of entries (one per outstanding job).

use super::cell::JobCell;
use super::CancelToken;
use std::collections::VecDeque;

/// What a connection keeps for its jobs (made on its first spawn).
pub(crate) struct ConnJobs {
    /// The sequence number of the next job spawned.
    next: u64,
    /// The sequence number of the next result to deliver (`window[0]`).
    base: u64,
    /// Results of jobs `base..next`, `None` until each comes back.
    window: VecDeque<Option<Box<dyn JobCell>>>,
    /// Set when the connection closes; every job of the connection shares it.
    pub cancel: CancelToken,
    /// Abort handles of the connection's async tasks not yet delivered, by sequence.
    #[cfg(feature = "tokio")]
    pub tasks: Vec<(u64, tokio::task::AbortHandle)>,
}

impl std::fmt::Debug for ConnJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnJobs")
            .field("next", &self.next)
            .field("base", &self.base)
            .finish()
    }
}

impl ConnJobs {
    pub(crate) fn new() -> ConnJobs {
        ConnJobs {
            next: 0,
            base: 0,
            window: VecDeque::new(),
            cancel: CancelToken::new(),
            #[cfg(feature = "tokio")]
            tasks: Vec::new(),
        }
    }

    /// Jobs spawned whose result has not been delivered.
    pub(crate) fn outstanding(&self) -> u64 {
        self.next - self.base
    }

    /// The sequence number the next spawn gets.
    pub(crate) fn peek_seq(&self) -> u64 {
        self.next
    }

    /// A job was spawned with [`ConnJobs::peek_seq`]'s number.
    pub(crate) fn spawned(&mut self) {
        self.next += 1;
        self.window.push_back(None);
    }

    /// Job `seq`'s result came back. False if no job of this connection has that number
    /// or its result came already (the caller drops it).
    pub(crate) fn arrived(&mut self, seq: u64, cell: Box<dyn JobCell>) -> bool {
        let Some(slot) = seq
            .checked_sub(self.base)
            .and_then(|i| self.window.get_mut(i as usize))
        else {
            return false;
        };
        if slot.is_some() {
            return false;
        }
        *slot = Some(cell);
        true
    }

    /// The connection closed: cancel its jobs (and abort its async tasks) and drop the
    /// results waiting for their turn; returns how many were dropped. Jobs still out
    /// come back later and are counted then.
    pub(crate) fn close(&mut self) -> u64 {
        self.cancel.cancel();
        #[cfg(feature = "tokio")]
        for (_, task) in self.tasks.drain(..) {
            task.abort();
        }
        let dropped = self.window.iter().filter(|c| c.is_some()).count() as u64;
        self.base = self.next;
        self.window = VecDeque::new();
        dropped
    }

    /// The next result in order, if it has come back.
    pub(crate) fn next_ready(&mut self) -> Option<Box<dyn JobCell>> {
        if !matches!(self.window.front(), Some(Some(_))) {
            return None;
        }
        let cell = self.window.pop_front().flatten();
        self.base += 1;
        #[cfg(feature = "tokio")]
        {
            let base = self.base;
            self.tasks.retain(|(seq, _)| *seq >= base);
        }
        cell
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::ConnId;
    use crate::engine::mailbox::Mailbox;
    use crate::jobs::cell::{Cell, JobHeader, Outcome};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    fn cell(seq: u64, value: u64) -> Box<dyn JobCell> {
        let header = JobHeader {
            conn: ConnId::new(0, 0, 1),
            seq,
            mailbox: Arc::new(Mailbox::new(4096).unwrap()),
            cancel: CancelToken::new(),
            spawned: Instant::now(),
            waited: Duration::ZERO,
            ran: Duration::ZERO,
        };
        Box::new(Cell::ended(header, Ok::<u64, Outcome>(value)))
    }

    fn value(mut c: Box<dyn JobCell>) -> u64 {
        c.output()
            .downcast_mut::<Option<u64>>()
            .unwrap()
            .take()
            .unwrap()
    }

    #[test]
    fn results_come_out_in_the_order_spawned_whatever_order_they_arrive_in() {
        let mut jobs = ConnJobs::new();
        for _ in 0..5 {
            jobs.spawned();
        }
        assert_eq!(jobs.outstanding(), 5);
        for seq in [3, 1, 4] {
            assert!(jobs.arrived(seq, cell(seq, seq * 10)));
            assert!(jobs.next_ready().is_none(), "job 0 is not back yet");
        }
        assert!(jobs.arrived(0, cell(0, 0)));
        let out: Vec<u64> = std::iter::from_fn(|| jobs.next_ready())
            .map(value)
            .collect();
        assert_eq!(out, [0, 10], "2 is still out");
        assert!(jobs.arrived(2, cell(2, 20)));
        let out: Vec<u64> = std::iter::from_fn(|| jobs.next_ready())
            .map(value)
            .collect();
        assert_eq!(out, [20, 30, 40]);
        assert_eq!(jobs.outstanding(), 0);
    }

    #[test]
    fn unknown_or_repeated_numbers_are_refused() {
        let mut jobs = ConnJobs::new();
        jobs.spawned();
        assert!(!jobs.arrived(1, cell(1, 1)), "never spawned");
        assert!(jobs.arrived(0, cell(0, 0)));
        assert!(!jobs.arrived(0, cell(0, 0)), "came already");
        assert!(jobs.next_ready().is_some());
        assert!(!jobs.arrived(0, cell(0, 0)), "delivered already");
    }
}
