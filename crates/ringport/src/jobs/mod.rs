//! The job pool: heavy or blocking work off the I/O workers, its results back on the
//! connection's worker in the order spawned.
//!
//! ```no_run
//! use ringport::{CloseReason, Codec, Conn, Handler, JobDone, Server};
//!
//! struct Login;
//! impl Handler for Login {
//!     type Session = ();
//!     fn on_open(&self, _conn: &mut Conn) {}
//!     fn on_data(&self, _s: &mut (), conn: &mut Conn, line: &[u8]) {
//!         let password = line.to_vec();
//!         // On a pool thread; the worker goes on serving its other connections.
//!         let _ = conn.spawn_job(move || slow_hash(&password));
//!     }
//!     fn on_job_done(&self, _s: &mut (), conn: &mut Conn, done: JobDone) {
//!         if let Ok(digest) = done.downcast::<u64>() {
//!             let _ = conn.send_frame(digest.to_string().as_bytes());
//!         }
//!     }
//!     fn on_close(&self, _s: (), _conn: &Conn, _why: CloseReason) {}
//! }
//! # fn slow_hash(p: &[u8]) -> u64 { p.len() as u64 }
//! # fn main() -> Result<(), ringport::Error> {
//! let server = Server::builder()
//!     .listen("127.0.0.1:0")?
//!     .codec(Codec::Delimited(ringport::codec::DelimitedCodec::lines()))
//!     .jobs(4)
//!     .start(Login)?;
//! # drop(server);
//! # Ok(())
//! # }
//! ```
//!
//! What holds (each has a test):
//! - **Order.** A connection's results reach [`crate::Handler::on_job_done`] in the order
//!   its jobs were spawned, whatever order they finish in, interleaved with its other
//!   callbacks on its worker; never after `on_close`.
//! - **Bounds.** A connection has at most [`crate::EngineConfig::jobs_per_connection`]
//!   jobs outstanding: at the cap the engine stops handing it data (what arrived waits,
//!   counted in the frame budget) and stops reading from it, until a result is
//!   delivered. The pool's queue is bounded too ([`JobPoolBuilder::queue_bound`]): a
//!   spawn beyond it is refused ([`JobError::PoolFull`]), never queued without limit.
//! - **Closing.** A connection that closes cancels its jobs ([`CancelToken`]): those not
//!   started are skipped, results that finish later are dropped; both are counted. A
//!   graceful close ([`crate::Conn::close`], a graceful shutdown) waits for the jobs
//!   outstanding and sends what their results queue, as it waits for queued bytes.
//! - **Panics.** A job that panics closes its connection with
//!   [`crate::CloseReason::JobPanic`]; the pool thread goes on.

pub(crate) mod cell;
mod histogram;
pub(crate) mod order;
mod pool;
mod spawn;
#[cfg(feature = "tokio")]
mod tokio_bridge;

pub(crate) use cell::JobCell;
pub use histogram::Percentiles;
pub use pool::{JobPool, JobPoolBuilder, JobPoolStats, DEFAULT_QUEUE_BOUND};

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The default of [`crate::EngineConfig::jobs_per_connection`].
pub const DEFAULT_JOBS_PER_CONNECTION: usize = 32;

/// Set once a job's connection closes: a long job may look and stop early (its result
/// would be dropped anyway). One token per connection, shared by its jobs.
#[derive(Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub(crate) fn new() -> CancelToken {
        CancelToken::default()
    }

    /// The connection has closed: nothing this job returns will be delivered.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    pub(crate) fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// Why a job was not spawned. The work is dropped unrun; nothing was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The engine has no job pool ([`crate::ServerBuilder::jobs`],
    /// [`crate::ServerBuilder::job_pool`]).
    #[error("the engine has no job pool")]
    NoPool,
    /// The connection has as many jobs outstanding as it may
    /// ([`crate::EngineConfig::jobs_per_connection`]). The engine hands a connection
    /// no data while it is at its cap, so a handler that spawns one job per message
    /// does not meet this; one that spawns several per callback may.
    #[error("the connection has {cap} jobs outstanding, its cap")]
    ConnectionFull {
        /// The cap.
        cap: usize,
    },
    /// The pool's queue holds its bound ([`JobPoolBuilder::queue_bound`]).
    #[error("the job pool's queue is full")]
    PoolFull,
    /// The connection is closing (or the pool has stopped).
    #[error("the connection is closing")]
    Closing,
    /// [`crate::Conn::spawn_async`] on an engine given no tokio runtime
    /// ([`crate::ServerBuilder::tokio_runtime`]).
    #[cfg(feature = "tokio")]
    #[error("the engine has no tokio runtime")]
    NoRuntime,
}

/// A finished job's result, handed to [`crate::Handler::on_job_done`]: take it back by
/// type.
pub struct JobDone {
    cell: Box<dyn JobCell>,
}

impl JobDone {
    pub(crate) fn new(cell: Box<dyn JobCell>) -> JobDone {
        JobDone { cell }
    }

    /// The job's number on its connection (what `spawn_job` returned): unique among the
    /// connection's outstanding jobs, counting 0, 1, 2, ... from the first, and from 0
    /// again whenever none is outstanding (the connection then keeps no job state).
    pub fn seq(&self) -> u64 {
        self.cell.header().seq
    }

    /// How long the job waited in the pool's queue (zero for an async task).
    pub fn queue_wait(&self) -> Duration {
        self.cell.header().waited
    }

    /// How long it ran (zero for an async task).
    pub fn run_time(&self) -> Duration {
        self.cell.header().ran
    }

    /// The result, if the job returned a `T`; else the `JobDone` back.
    pub fn downcast<T: Any>(mut self) -> Result<T, JobDone> {
        match self.take::<T>() {
            Some(value) => Ok(value),
            None => Err(self),
        }
    }

    /// The result, if the job returned a `T` and it was not taken already.
    pub fn take<T: Any>(&mut self) -> Option<T> {
        self.cell.output().downcast_mut::<Option<T>>()?.take()
    }
}

impl fmt::Debug for JobDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobDone").field("seq", &self.seq()).finish()
    }
}

/// What a worker's connections need to spawn jobs: the pool, the cap, the runtime.
#[derive(Debug, Clone)]
pub(crate) struct JobSettings {
    pub pool: Option<JobPool>,
    pub per_connection: usize,
    #[cfg(feature = "tokio")]
    pub runtime: Option<tokio::runtime::Handle>,
}
