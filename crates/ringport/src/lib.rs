//! ringport: a completion-port networking framework on io_uring.
//!
//! A few I/O workers (one per core by default) each own one io_uring. A connection lives
//! on the worker that accepted (or connected) it for its whole life, so all of its
//! callbacks run on one thread, one at a time, in event order. Receive memory comes from
//! a per-worker provided-buffer ring: an idle connection pins no receive buffer.
//!
//! ```no_run
//! use ringport::{CloseReason, Conn, Handler, Server};
//! use std::time::Duration;
//!
//! struct Echo;
//! impl Handler for Echo {
//!     type Session = ();
//!     fn on_open(&self, _conn: &mut Conn) {}
//!     fn on_data(&self, _s: &mut (), conn: &mut Conn, data: &[u8]) {
//!         conn.send(data);
//!     }
//!     fn on_close(&self, _s: (), _conn: &Conn, _why: CloseReason) {}
//! }
//!
//! # fn main() -> Result<(), ringport::Error> {
//! let server = Server::builder().listen("127.0.0.1:7007")?.start(Echo)?;
//! println!("{:?}", server.stats());
//! let report = server.shutdown(Duration::from_secs(5));
//! assert_eq!(report.undelivered_bytes, 0);
//! # Ok(())
//! # }
//! ```
//!
//! Descriptors ringport does not own (a UDP socket, a pipe, a database driver's socket)
//! can be watched for readiness on the same workers ([`Workers::watch`], notifications in
//! [`Handler::on_ready`]), values posted to a worker or a connection ([`Workers::post`],
//! [`ConnRef::post`]), and [`notify::Port`] runs the same watches in a loop of your own;
//! see [`notify`].
//!
//! Work too heavy or too blocking for an I/O worker goes to a job pool
//! ([`Conn::spawn_job`]); its results come back to the connection's worker in the order
//! spawned ([`Handler::on_job_done`]); see [`jobs`].
//!
//! # Cargo features
//!
//! - `tokio` (off by default): the tokio bridge, [`Conn`]`::spawn_async` running
//!   futures on a tokio runtime given to the builder, their output delivered as jobs'.
//! - `test-hooks` (off by default): fault-injection hooks for ringport's own tests
//!   (`EngineConfig::inject_uring_probe_failure`, `EngineConfig::inject_generation_step`,
//!   `Server::inject_worker_panic`, `Client::inject_worker_panic`). They are for
//!   ringport's own tests and not part of the stable API: they may change or go in any
//!   release, and no program should enable the feature.
#![deny(missing_docs)]
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod admission;
#[cfg(test)]
mod api_hygiene;
mod client;
pub mod codec;
mod config;
mod conn;
mod conn_extras;
mod conn_ref;
mod core;
mod deadline;
mod engine;
mod error;
mod handler;
mod health;
pub mod jobs;
mod listener;
pub mod metrics;
pub mod notify;
mod routing;
mod send_room;
mod server;
mod stats;
mod sys;
mod timer;
pub mod transfer;
pub mod udp;
mod workers;

pub use admission::AdmissionConfig;
pub use bytes::Bytes;
pub use client::{Client, ClientBuilder};
pub use codec::{Codec, FrameError};
pub use config::{Backend, EngineConfig, Heartbeat, SendQueueLimits, Timeouts};
pub use conn::{Conn, ConnId, ConnInfo, ConnRef};
pub use error::{CloseReason, Error, SendError, Timeout};
pub use handler::{Accept, Handler, Incoming};
pub use health::Health;
pub use jobs::{CancelToken, JobDone, JobError, JobPool};
pub use listener::Listener;
pub use server::{Server, ServerBuilder, ShutdownReport};
pub use stats::{ByteSize, ListenerStats, Stats};
pub use transfer::{Direction, ReceiveFileError, TransferError, TransferEvent, TransferId};
pub use workers::{Posted, WatchCtl, Workers};
