//! The TCP server: listeners on the engine's workers.

use crate::admission::IpNet;
use crate::config::EngineConfig;
use crate::conn::{ConnId, ConnInfo, ConnRef};
use crate::engine::{Engine, REGISTRY_WAIT};
use crate::error::Error;
use crate::handler::Handler;
use crate::stats::Stats;
use bytes::Bytes;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// What a graceful shutdown achieved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Connections that were open when the shutdown began.
    pub connections: u64,
    /// Connections still unflushed at the deadline, closed with
    /// [`crate::CloseReason::ShutdownDeadline`].
    pub forced: u64,
    /// Bytes accepted for sending that never reached the kernel, over the engine's life.
    pub undelivered_bytes: u64,
    /// The engine's counters after every worker stopped.
    pub stats: Stats,
}

/// Builds a [`Server`]: listeners first, then settings, then [`ServerBuilder::start`].
#[derive(Debug, Clone, Default)]
pub struct ServerBuilder {
    config: EngineConfig,
    addrs: Vec<SocketAddr>,
}

impl ServerBuilder {
    crate::config::engine_setters!();

    /// Add a listener (IPv4 or IPv6; port 0 picks a free port). May be called many times.
    pub fn listen<A: ToSocketAddrs + std::fmt::Debug>(mut self, addr: A) -> Result<Self, Error> {
        let first = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| Error::NoAddress(format!("{addr:?}")))?;
        self.addrs.push(first);
        Ok(self)
    }

    /// Listen backlog (default: 1024).
    pub fn backlog(mut self, n: i32) -> Self {
        self.config.backlog = n;
        self
    }

    /// At most `n` inbound connections open at once (over all workers); more are
    /// refused at accept ([`crate::admission::RefuseReason::MaxConnections`]).
    pub fn max_connections(mut self, n: u64) -> Self {
        self.config.admission.max_connections = Some(n);
        self
    }

    /// At most `n` connections open at once from one address.
    pub fn max_per_ip(mut self, n: u32) -> Self {
        self.config.admission.max_per_ip = Some(n);
        self
    }

    /// At most `rate` accepts per second over the server, in bursts of up to `burst`.
    pub fn accept_rate(mut self, rate: f64, burst: u32) -> Self {
        self.config.admission.accept_rate = Some((rate, burst));
        self
    }

    /// At most `rate` accepts per second from one address, in bursts of up to `burst`.
    pub fn accept_rate_per_ip(mut self, rate: f64, burst: u32) -> Self {
        self.config.admission.accept_rate_per_ip = Some((rate, burst));
        self
    }

    /// Allow `net` (once any range is allowed, only allowed ranges may connect).
    pub fn allow(mut self, net: IpNet) -> Self {
        self.config.admission.allow.push(net);
        self
    }

    /// Refuse connections from `net`.
    pub fn deny(mut self, net: IpNet) -> Self {
        self.config.admission.deny.push(net);
        self
    }

    /// Bind the listeners, start the workers and serve with `handler`.
    pub fn start<H: Handler>(self, handler: H) -> Result<Server<H>, Error> {
        if self.addrs.is_empty() {
            return Err(Error::Config(
                "a server needs at least one listen address".into(),
            ));
        }
        if self.addrs.len() >= usize::from(crate::conn::NO_LISTENER) {
            return Err(Error::Config("too many listen addresses".into()));
        }
        let (engine, addrs) = Engine::start(self.config, &self.addrs, handler)?;
        Ok(Server { engine, addrs })
    }
}

/// A running server. Dropping it shuts it down with no flush deadline.
pub struct Server<H> {
    engine: Engine<H>,
    addrs: Vec<SocketAddr>,
}

impl Server<()> {
    /// Start building a server.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }
}

impl<H: Handler> Server<H> {
    /// The bound listen addresses, in the order they were added (ports resolved).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Live counters.
    pub fn stats(&self) -> Stats {
        self.engine.stats()
    }

    /// Open an outbound connection on this server's workers, served by the same handler;
    /// `token` comes back in [`crate::Conn::token`] or `on_connect_failed`.
    pub fn connect(&self, addr: SocketAddr, token: u64) -> Result<(), Error> {
        self.engine.connect(addr, token, None)
    }

    /// Refuse new connections from `net` from now on, or only `for_how_long` (a temporary
    /// ban). Connections already open stay open.
    pub fn deny(&self, net: IpNet, for_how_long: Option<Duration>) {
        self.engine.deny(net, for_how_long)
    }

    /// Add `net` to the allow list while running.
    pub fn allow(&self, net: IpNet) {
        self.engine.allow(net)
    }

    /// Lift a deny entry or ban on exactly `net`; true if there was one.
    pub fn remove_deny(&self, net: IpNet) -> bool {
        self.engine.remove_deny(net)
    }

    /// A snapshot of the open connections (inbound and outbound), oldest first: id, peer,
    /// listener, open time and queued bytes.
    ///
    /// Each worker is asked through its mailbox and lists its own connections on its
    /// thread (a scan of its connection table), so this costs a round trip to every
    /// worker and nothing while connections open, close or send. A worker that does not
    /// answer within a second (stuck in a callback) is left out. Called from one of this
    /// server's callbacks, the calling worker cannot answer and its connections are left
    /// out.
    pub fn connections(&self) -> Vec<ConnInfo> {
        self.engine.connections(REGISTRY_WAIT)
    }

    /// A handle to the connection `id` (of this server) if it is open, asked of its
    /// worker. A send through it after the connection closes is counted in
    /// [`Stats::late_sends`]. Called from a callback running on that connection's worker
    /// (which cannot answer then), the handle is returned without the check.
    pub fn connection(&self, id: ConnId) -> Option<ConnRef> {
        self.engine.connection(id, REGISTRY_WAIT)
    }

    /// Queue `data` on every open connection, inbound and outbound, that has not been
    /// asked to close. Posts one message per worker; each worker queues the same bytes
    /// (shared, not copied) on each of its connections. Ordered with other sends posted
    /// from the same thread (through [`ConnRef`] or broadcasts): a connection gets them
    /// in the order they were posted.
    pub fn broadcast(&self, data: impl Into<Bytes>) -> Result<(), Error> {
        self.engine.broadcast(None, data.into())
    }

    /// As [`Server::broadcast`], to the connections accepted by listener `listener` only
    /// (an index into [`Server::local_addrs`]).
    pub fn broadcast_to(&self, listener: usize, data: impl Into<Bytes>) -> Result<(), Error> {
        if listener >= self.addrs.len() {
            return Err(Error::NoListener(listener));
        }
        self.engine.broadcast(Some(listener as u16), data.into())
    }

    /// Stop accepting, flush every queue until `deadline` has passed, close everything,
    /// stop the workers and report.
    pub fn shutdown(self, deadline: Duration) -> ShutdownReport {
        self.engine.shutdown(deadline)
    }
}
