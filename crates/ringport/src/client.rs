//! The TCP client: outbound connections on the same engine as the server.

use crate::config::EngineConfig;
use crate::conn::{ConnId, ConnInfo, ConnRef};
use crate::engine::{Engine, REGISTRY_WAIT};
use crate::error::Error;
use crate::handler::Handler;
use crate::server::ShutdownReport;
use crate::stats::Stats;
use bytes::Bytes;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::Duration;

/// Builds a [`Client`].
#[derive(Debug, Clone, Default)]
pub struct ClientBuilder {
    config: EngineConfig,
    udp: Vec<crate::udp::Udp>,
}

impl ClientBuilder {
    crate::config::engine_setters!();

    /// Add a datagram socket (typically a connected one, [`crate::udp::Udp::connect`])
    /// with its own handler. May be called many times.
    pub fn udp(mut self, socket: crate::udp::Udp) -> Self {
        self.udp.push(socket);
        self
    }

    /// Start the workers; connections are then opened with [`Client::connect`].
    pub fn start<H: Handler>(self, handler: H) -> Result<Client<H>, Error> {
        let (engine, _) = Engine::start(self.config, &[], &self.udp, handler)?;
        Ok(Client {
            engine,
            _handler: PhantomData,
        })
    }
}

/// An engine with no listeners that opens outbound connections. Dropping it shuts it down
/// with no flush deadline.
pub struct Client<H> {
    engine: Engine,
    _handler: PhantomData<fn() -> H>,
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

    /// The local addresses of the datagram sockets, in the order they were added.
    pub fn udp_addrs(&self) -> &[std::net::SocketAddr] {
        self.engine.udp_addrs()
    }

    /// A handle to send from datagram socket `index` on worker `worker`, from any thread
    /// (`None` if there is no such socket there).
    pub fn udp_socket(&self, index: usize, worker: usize) -> Option<crate::udp::UdpRef> {
        self.engine.udp_ref(index, worker)
    }

    /// Live counters.
    pub fn stats(&self) -> Stats {
        self.engine.stats()
    }

    /// The client's workers: watch descriptors on them (notifications reach
    /// [`Handler::on_ready`]) and post values to them. The handle is `Send`, cheap to
    /// clone, and may outlive the client (it then refuses with `Stopped`).
    pub fn workers(&self) -> crate::Workers {
        self.engine.workers().clone()
    }

    /// Whether every worker is still running ([`crate::Health::Degraded`] once one was
    /// lost; see [`Stats::workers_lost`]).
    pub fn health(&self) -> crate::Health {
        crate::Health::of(&self.engine.stats())
    }

    /// Test hook (feature `test-hooks`, not part of the stable API): make worker `worker`
    /// panic outside any handler guard, as a bug in the engine would.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn inject_worker_panic(&self, worker: usize) -> Result<(), Error> {
        self.engine.inject_worker_panic(worker)
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
