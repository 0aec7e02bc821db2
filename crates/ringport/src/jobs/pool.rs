//! The job pool: N threads taking jobs from one bounded queue. A job's cell runs on
//! whichever thread takes it and goes back, whole, to the mailbox of the worker whose
//! connection spawned it (always taken there: what comes back is bounded by what was
//! queued). The pool lives while a handle does; with the last one gone, its threads
//! finish the job in hand and exit, and jobs still queued are dropped unrun.

use super::cell::JobCell;
use super::histogram::{Histogram, Percentiles};
use crate::engine::mailbox::Message;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

/// Default bound of the pool's queue (jobs spawned and not yet taken by a thread).
pub const DEFAULT_QUEUE_BOUND: usize = 65_536;

/// Why the pool did not take a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Its queue holds its bound.
    Full,
    /// Its last handle is gone.
    Closed,
}

struct Queue {
    jobs: VecDeque<Box<dyn JobCell>>,
    /// Threads waiting for a job.
    idle: usize,
    /// Of those, threads woken that have not run yet (not to be woken again).
    signalled: usize,
    closed: bool,
}

/// What one pool thread records.
#[derive(Default)]
struct ThreadStats {
    waited: Histogram,
    ran: Histogram,
}

/// What the threads and the handles share.
struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    bound: usize,
    /// Jobs were queued since the last `wake_owed` (their wakes are owed).
    owed: AtomicBool,
    running: AtomicU64,
    threads: Box<[ThreadStats]>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Closes the queue when the last [`JobPool`] handle goes.
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        let dropped = {
            let mut q = self.0.lock();
            q.closed = true;
            std::mem::take(&mut q.jobs)
        };
        self.0.wake.notify_all();
        drop(dropped); // unrun; their connections' engines are gone or going
    }
}

/// A pool of threads for work too heavy or too blocking for an I/O worker: password
/// hashes, compression, a blocking database call. A connection spawns jobs with
/// [`crate::Conn::spawn_job`]; their results come back to the connection's worker, in
/// the order spawned ([`crate::Handler::on_job_done`]).
///
/// Cheap to clone; one pool may serve a server and a client
/// ([`crate::ServerBuilder::job_pool`]). Its threads exit once the last handle (the
/// engines' included) is dropped.
#[derive(Clone)]
pub struct JobPool {
    owner: Arc<Owner>,
}

/// Builds a [`JobPool`].
#[derive(Debug, Clone)]
pub struct JobPoolBuilder {
    threads: usize,
    queue_bound: usize,
    name: String,
}

impl JobPoolBuilder {
    /// Threads in the pool (at least 1). Default: 4.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    /// The most jobs the queue holds (spawned, not yet taken by a thread); beyond it,
    /// spawns are refused with [`crate::jobs::JobError::PoolFull`]. At least 1.
    /// Default: [`DEFAULT_QUEUE_BOUND`].
    pub fn queue_bound(mut self, n: usize) -> Self {
        self.queue_bound = n;
        self
    }

    /// The threads' name prefix (default "ringport-job").
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Start the threads.
    pub fn build(self) -> Result<JobPool, crate::Error> {
        if self.threads == 0 || self.queue_bound == 0 {
            return Err(crate::Error::Config(format!(
                "a job pool needs at least one thread and a queue of at least one \
                 (threads {}, queue bound {})",
                self.threads, self.queue_bound
            )));
        }
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                idle: 0,
                signalled: 0,
                closed: false,
            }),
            wake: Condvar::new(),
            bound: self.queue_bound,
            owed: AtomicBool::new(false),
            running: AtomicU64::new(0),
            threads: (0..self.threads).map(|_| ThreadStats::default()).collect(),
        });
        for i in 0..self.threads {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("{}-{i}", self.name))
                .spawn(move || serve(&shared, i))?;
        }
        Ok(JobPool {
            owner: Arc::new(Owner(shared)),
        })
    }
}

/// One pool thread: take a job, run it, send it back; until the pool closes.
fn serve(shared: &Shared, index: usize) {
    let mine = &shared.threads[index];
    loop {
        let mut job = {
            let mut q = shared.lock();
            loop {
                if let Some(job) = q.jobs.pop_front() {
                    break job;
                }
                if q.closed {
                    return;
                }
                q.idle += 1;
                q = shared.wake.wait(q).unwrap_or_else(|e| e.into_inner());
                q.idle -= 1;
                q.signalled = q.signalled.saturating_sub(1);
            }
        };
        let start = Instant::now();
        let waited = start.saturating_duration_since(job.header().spawned);
        mine.waited.record(waited);
        shared.running.fetch_add(1, Relaxed);
        job.run();
        shared.running.fetch_sub(1, Relaxed);
        let ran = start.elapsed();
        if job.outcome() != super::cell::Outcome::Skipped {
            mine.ran.record(ran);
        }
        let header = job.header_mut();
        header.waited = waited;
        header.ran = ran;
        give_back(job);
    }
}

/// Send a job that ended back to its connection's worker (nowhere, if that worker has
/// stopped: then its result is dropped with it).
pub(crate) fn give_back(job: Box<dyn JobCell>) {
    let mailbox = job.header().mailbox.clone();
    let _ = mailbox.post(Message::JobDone(job));
}

impl JobPool {
    /// A builder: 4 threads, a queue of [`DEFAULT_QUEUE_BOUND`] jobs.
    pub fn builder() -> JobPoolBuilder {
        JobPoolBuilder {
            threads: 4,
            queue_bound: DEFAULT_QUEUE_BOUND,
            name: "ringport-job".into(),
        }
    }

    /// A pool of `threads` threads with the default queue bound.
    pub fn new(threads: usize) -> Result<JobPool, crate::Error> {
        JobPool::builder().threads(threads).build()
    }

    fn shared(&self) -> &Shared {
        &self.owner.0
    }

    /// Queue a job (worker side, from `Conn::spawn_job`). A pool with no thread awake
    /// has one woken at once, so a lone job starts without waiting for the worker's pass
    /// to end. Otherwise no thread is woken yet: the worker calls [`JobPool::wake_owed`]
    /// once per loop, before it waits, so a batch of jobs spawned in one pass wakes each
    /// idle thread once, after the pass, instead of a wake (and a switch to a pool
    /// thread mid-batch) per job. Threads awake meanwhile take what is queued before
    /// they sleep.
    pub(crate) fn submit(&self, job: Box<dyn JobCell>) -> Result<(), (Refused, Box<dyn JobCell>)> {
        let shared = self.shared();
        let mut q = shared.lock();
        if q.closed {
            return Err((Refused::Closed, job));
        }
        if q.jobs.len() >= shared.bound {
            return Err((Refused::Full, job));
        }
        q.jobs.push_back(job);
        let asleep = q.signalled == 0 && shared.running.load(Relaxed) == 0;
        let now = asleep && q.idle > 0;
        if now {
            q.signalled += 1;
        }
        drop(q);
        if now {
            shared.wake.notify_one();
        } else {
            shared.owed.store(true, Relaxed);
        }
        Ok(())
    }

    /// Wake idle threads for the jobs queued since the last call: one per job, at most
    /// one per idle thread not woken already. Cheap when nothing was queued.
    pub(crate) fn wake_owed(&self) {
        let shared = self.shared();
        if !shared.owed.swap(false, Relaxed) {
            return;
        }
        let n = {
            let mut q = shared.lock();
            let n = q.jobs.len().min(q.idle.saturating_sub(q.signalled));
            q.signalled += n;
            n
        };
        for _ in 0..n {
            shared.wake.notify_one();
        }
    }

    /// Threads in the pool.
    pub fn threads(&self) -> usize {
        self.shared().threads.len()
    }

    /// The pool's figures now: queued and running jobs, queue wait and run time
    /// percentiles since it started.
    pub fn stats(&self) -> JobPoolStats {
        let shared = self.shared();
        JobPoolStats {
            threads: shared.threads.len() as u64,
            queued: shared.lock().jobs.len() as u64,
            running: shared.running.load(Relaxed),
            queue_wait: Percentiles::of(shared.threads.iter().map(|t| &t.waited)),
            run_time: Percentiles::of(shared.threads.iter().map(|t| &t.ran)),
        }
    }
}

impl fmt::Debug for JobPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobPool")
            .field("threads", &self.threads())
            .field("queue_bound", &self.shared().bound)
            .finish()
    }
}

/// A job pool's figures (see [`JobPool::stats`]; a server's or client's
/// [`crate::Stats::job_pool`]). A pool shared by several engines shows the same figures
/// in each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobPoolStats {
    /// Threads in the pool.
    pub threads: u64,
    /// Jobs queued now, not yet taken by a thread.
    pub queued: u64,
    /// Jobs running now.
    pub running: u64,
    /// How long jobs waited in the queue before a thread took them.
    pub queue_wait: Percentiles,
    /// How long jobs ran (those skipped unrun not counted).
    pub run_time: Percentiles,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::ConnId;
    use crate::engine::mailbox::Mailbox;
    use crate::jobs::cell::{Cell, JobHeader, Outcome};
    use crate::jobs::CancelToken;
    use std::collections::VecDeque;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    fn header(mailbox: &Arc<Mailbox>, seq: u64, cancel: &CancelToken) -> JobHeader {
        JobHeader {
            conn: ConnId::new(0, 0, 1),
            seq,
            mailbox: mailbox.clone(),
            cancel: cancel.clone(),
            spawned: Instant::now(),
            waited: Duration::ZERO,
            ran: Duration::ZERO,
        }
    }

    /// Wait (up to 10 s) until `mailbox` has held `n` jobs in all; returns their outcomes.
    fn returned(mailbox: &Mailbox, n: usize) -> Vec<(u64, Outcome)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = VecDeque::new();
        let mut out = Vec::new();
        while out.len() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} came back",
                out.len()
            );
            mailbox.drain(&mut got);
            for m in got.drain(..) {
                if let Message::JobDone(job) = m {
                    out.push((job.header().seq, job.outcome()));
                }
            }
            std::thread::yield_now();
        }
        out
    }

    fn threads_named(prefix: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|comm| comm.starts_with(prefix))
            .count()
    }

    #[test]
    fn a_full_queue_refuses_and_a_cancelled_job_is_skipped_unrun() {
        let pool = JobPool::builder()
            .threads(1)
            .queue_bound(1)
            .build()
            .unwrap();
        let mailbox = Arc::new(Mailbox::new(4096).unwrap());
        let cancel = CancelToken::new();
        let (open, gate) = mpsc::channel::<()>();
        let (ran_tx, ran) = mpsc::channel::<u64>();
        // Job 0 holds the only thread until the gate opens.
        let blocker = Cell::new(header(&mailbox, 0, &cancel), move |_: &CancelToken| {
            gate.recv().ok();
        });
        pool.submit(Box::new(blocker)).map_err(|e| e.0).unwrap();
        pool.wake_owed();
        let deadline = Instant::now() + Duration::from_secs(10);
        while pool.stats().running == 0 {
            assert!(Instant::now() < deadline, "the blocker never started");
            std::thread::yield_now();
        }
        let tx = ran_tx.clone();
        let queued = Cell::new(header(&mailbox, 1, &cancel), move |_: &CancelToken| {
            tx.send(1).ok();
        });
        pool.submit(Box::new(queued)).map_err(|e| e.0).unwrap();
        let extra = Cell::new(header(&mailbox, 2, &cancel), move |_: &CancelToken| {
            ran_tx.send(2).ok();
        });
        let refused = pool.submit(Box::new(extra)).map(|_| ()).unwrap_err();
        assert_eq!(refused.0, Refused::Full, "the queue holds one");
        assert_eq!(pool.stats().queued, 1);
        cancel.cancel(); // the connection closed: job 1 is not to run
        open.send(()).unwrap();
        let mut out = returned(&mailbox, 2);
        out.sort_by_key(|(seq, _)| *seq);
        assert_eq!(out, [(0, Outcome::Done), (1, Outcome::Skipped)]);
        assert!(ran.try_recv().is_err(), "a skipped job never runs");
        let stats = pool.stats();
        assert_eq!(stats.queue_wait.count, 2);
        assert_eq!(stats.run_time.count, 1, "a skipped job has no run time");
    }

    #[test]
    fn a_panicking_job_is_reported_and_its_thread_serves_on() {
        let pool = JobPool::builder().threads(1).build().unwrap();
        let mailbox = Arc::new(Mailbox::new(4096).unwrap());
        let cancel = CancelToken::new();
        let boom = Cell::new(header(&mailbox, 0, &cancel), |_: &CancelToken| -> u8 {
            panic!("a job's own bug")
        });
        pool.submit(Box::new(boom)).map_err(|e| e.0).unwrap();
        let fine = Cell::new(header(&mailbox, 1, &cancel), |_: &CancelToken| 7u8);
        pool.submit(Box::new(fine)).map_err(|e| e.0).unwrap();
        pool.wake_owed();
        let out = returned(&mailbox, 2);
        assert_eq!(out, [(0, Outcome::Panicked), (1, Outcome::Done)]);
    }

    #[test]
    fn the_threads_exit_when_the_last_handle_goes() {
        let pool = JobPool::builder()
            .threads(3)
            .name("exit-test")
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while threads_named("exit-test") < 3 {
            assert!(Instant::now() < deadline, "the threads never started");
            std::thread::yield_now();
        }
        let other = pool.clone();
        drop(pool);
        assert_eq!(threads_named("exit-test"), 3, "a handle is left");
        drop(other);
        while threads_named("exit-test") > 0 {
            assert!(Instant::now() < deadline, "the pool's threads did not exit");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(JobPool::new(0).is_err(), "a pool needs a thread");
        assert!(JobPool::builder().queue_bound(0).build().is_err());
    }
}
