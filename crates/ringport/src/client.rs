//! The TCP client: outbound connections on the same engine as the server.

use crate::config::EngineConfig;
use crate::conn::{ConnId, ConnInfo, ConnRef};
use crate::engine::{Engine, REGISTRY_WAIT};
use crate::error::Error;
use crate::handler::Handler;
use crate::server::ShutdownReport;
use crate::stats::Stats;
use bytes::Bytes;
use std::net::SocketAddr;
use std::time::Duration;

/// Builds a [`Client`].
#[derive(Debug, Clone, Default)]
pub struct ClientBuilder {
    config: EngineConfig,
}

impl ClientBuilder {
    /// Number of I/O workers (default: available parallelism).
    pub fn workers(mut self, n: usize) -> Self {
        self.config.workers = n;
        self
    }

    /// Provided receive buffers per worker: `count` (a power of two) of `size` bytes.
    pub fn recv_buffers(mut self, count: u16, size: u32) -> Self {
        self.config.recv_buffers = count;
        self.config.recv_buffer_size = size;
        self
    }

    /// Set TCP_NODELAY on connections (default: true).
    pub fn nodelay(mut self, on: bool) -> Self {
        self.config.nodelay = on;
        self
    }

    /// TCP keepalive: probe after `idle` without traffic, then every `idle` (see
    /// [`EngineConfig::tcp_keepalive`]; default: off).
    pub fn tcp_keepalive(mut self, idle: Duration) -> Self {
        self.config.tcp_keepalive = Some(idle);
        self
    }

    /// TCP_USER_TIMEOUT: drop a connection whose sent data stays unacknowledged this long
    /// (see [`EngineConfig::tcp_user_timeout`]; default: the system's).
    pub fn tcp_user_timeout(mut self, timeout: Duration) -> Self {
        self.config.tcp_user_timeout = Some(timeout);
        self
    }

    /// Time a connect may take before `on_connect_failed(.., ConnectTimeout)` (default 10 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.config.connect_timeout = d;
        self
    }

    /// Frame received bytes with `codec`: `on_data` then gets whole frames and
    /// [`crate::Conn::send_frame`] encodes with it (default: [`crate::Codec::Raw`]).
    pub fn codec(mut self, codec: crate::Codec) -> Self {
        self.config.codec = codec;
        self
    }

    /// The I/O backend (default [`crate::Backend::Auto`]: io_uring when available).
    pub fn backend(mut self, backend: crate::Backend) -> Self {
        self.config.backend = backend;
        self
    }

    /// Connection timeouts (first data, idle, read, write; default: none).
    pub fn timeouts(mut self, timeouts: crate::Timeouts) -> Self {
        self.config.timeouts = timeouts;
        self
    }

    /// Send-queue water marks, hard cap and engine-wide budget.
    pub fn send_queue(mut self, limits: crate::SendQueueLimits) -> Self {
        self.config.send_queue = limits;
        self
    }

    /// Replace every engine setting at once.
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    /// Start the workers; connections are then opened with [`Client::connect`].
    pub fn start<H: Handler>(self, handler: H) -> Result<Client<H>, Error> {
        let (engine, _) = Engine::start(self.config, &[], handler)?;
        Ok(Client { engine })
    }
}

/// An engine with no listeners that opens outbound connections. Dropping it shuts it down
/// with no flush deadline.
pub struct Client<H> {
    engine: Engine<H>,
}

impl Client<()> {
    /// Start building a client engine.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// Start a one-worker client engine with default settings and connect once (token 0):
    /// the shortest path to a single outbound connection. (Named apart from the method
    /// [`Client::connect`] so that `Client::connect_to(addr, handler)` needs no turbofish.)
    pub fn connect_to<H: Handler>(addr: SocketAddr, handler: H) -> Result<Client<H>, Error> {
        let client = Client::builder().workers(1).start(handler)?;
        client.connect(addr, 0)?;
        Ok(client)
    }
}

impl<H: Handler> Client<H> {
    /// Connect asynchronously to `addr` (round robin over the workers). Success runs
    /// `on_open` on the worker; failure runs `on_connect_failed(token, addr, reason)`.
    pub fn connect(&self, addr: SocketAddr, token: u64) -> Result<(), Error> {
        self.engine.connect(addr, token, None)
    }

    /// As [`Client::connect`], from the local address `bind` (e.g. `127.0.0.2:0` to spread
    /// many connections over several loopback sources; port 0 lets the kernel choose).
    pub fn connect_from(
        &self,
        addr: SocketAddr,
        bind: SocketAddr,
        token: u64,
    ) -> Result<(), Error> {
        self.engine.connect(addr, token, Some(bind))
    }

    /// Live counters.
    pub fn stats(&self) -> Stats {
        self.engine.stats()
    }

    /// A snapshot of the open connections, oldest first (as [`crate::Server::connections`]).
    pub fn connections(&self) -> Vec<ConnInfo> {
        self.engine.connections(REGISTRY_WAIT)
    }

    /// A handle to the connection `id` if it is open (as [`crate::Server::connection`]).
    pub fn connection(&self, id: ConnId) -> Option<ConnRef> {
        self.engine.connection(id, REGISTRY_WAIT)
    }

    /// Queue `data` on every open connection (as [`crate::Server::broadcast`]).
    pub fn broadcast(&self, data: impl Into<Bytes>) -> Result<(), Error> {
        self.engine.broadcast(None, data.into())
    }

    /// Flush every queue until `deadline` has passed, close everything, stop the workers.
    pub fn shutdown(self, deadline: Duration) -> ShutdownReport {
        self.engine.shutdown(deadline)
    }
}
