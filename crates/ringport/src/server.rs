//! The TCP server: listeners on the engine's workers.

use crate::admission::IpNet;
use crate::config::EngineConfig;
use crate::conn::{ConnId, ConnInfo, ConnRef};
use crate::engine::{Engine, REGISTRY_WAIT};
use crate::error::Error;
use crate::handler::Handler;
use crate::listener::Listener;
use crate::routing::Routed;
use crate::stats::Stats;
use bytes::Bytes;
use std::marker::PhantomData;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// What a graceful shutdown achieved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Connections that were open when the shutdown began.
    pub connections: u64,
    /// Connections still unflushed at the deadline, closed with
    /// [`crate::CloseReason::ShutdownDeadline`].
    pub forced: u64,
    /// Bytes accepted for sending that never reached the kernel, over the engine's life.
    pub undelivered_bytes: u64,
    /// Datagrams queued for sending that were not sent, over the engine's life: dropped
    /// (send queue full, or the engine stopping) or failed
    /// (`Stats::datagrams_dropped + Stats::datagram_send_errors`).
    pub undelivered_datagrams: u64,
    /// The engine's counters after every worker stopped.
    pub stats: Stats,
}

/// Builds a [`Server`]: listeners first, then settings, then [`ServerBuilder::start`].
#[derive(Debug, Clone, Default)]
pub struct ServerBuilder {
    config: EngineConfig,
    listeners: Vec<Listener>,
    udp: Vec<crate::udp::Udp>,
}

impl ServerBuilder {
    crate::config::engine_setters!();

    /// Add a listener with the server's settings (IPv4 or IPv6; port 0 picks a free
    /// port). May be called many times.
    pub fn listen<A: ToSocketAddrs + std::fmt::Debug>(self, addr: A) -> Result<Self, Error> {
        Ok(self.listener(Listener::bind(addr)?))
    }

    /// Add a listener with its own settings: handler, codec, admission limits, name.
    pub fn listener(mut self, listener: Listener) -> Self {
        self.listeners.push(listener);
        self
    }

    /// Add a datagram socket with its own handler (bound on every worker; see
    /// [`crate::udp`]). May be called many times.
    pub fn udp(mut self, socket: crate::udp::Udp) -> Self {
        self.udp.push(socket);
        self
    }

    /// Listen backlog (default: 1024).
    pub fn backlog(mut self, n: i32) -> Self {
        self.config.backlog = n;
        self
    }

    crate::admission::admission_setters!(config.admission);

    /// Bind the listeners, start the workers and serve with `handler` (on every listener
    /// that has no handler of its own, and on outbound connections).
    pub fn start<H: Handler>(self, handler: H) -> Result<Server<H>, Error> {
        if self.listeners.is_empty() && self.udp.is_empty() {
            return Err(Error::Config(
                "a server needs at least one listen address or datagram socket".into(),
            ));
        }
        if self.udp.len() > usize::from(u16::MAX) {
            return Err(Error::Config("too many datagram sockets".into()));
        }
        if self.listeners.len() >= usize::from(crate::conn::NO_LISTENER) {
            return Err(Error::Config("too many listen addresses".into()));
        }
        let (specs, handlers): (Vec<_>, Vec<_>) =
            self.listeners.into_iter().map(Listener::into_parts).unzip();
        let (engine, addrs) = if handlers.iter().any(Option::is_some) {
            Engine::start(
                self.config,
                &specs,
                &self.udp,
                Routed::new(handler, handlers),
            )?
        } else {
            Engine::start(self.config, &specs, &self.udp, handler)?
        };
        Ok(Server {
            engine,
            addrs,
            _handler: PhantomData,
        })
    }
}

/// A running server. Dropping it shuts it down with no flush deadline.
pub struct Server<H> {
    engine: Engine,
    addrs: Vec<SocketAddr>,
    _handler: PhantomData<fn() -> H>,
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

    /// The bound addresses of the datagram sockets, in the order they were added.
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        self.engine.udp_addrs()
    }

    /// A handle to send from datagram socket `index` on worker `worker`, from any thread
    /// (`None` if there is no such socket or worker).
    pub fn udp_socket(&self, index: usize, worker: usize) -> Option<crate::udp::UdpRef> {
        self.engine.udp_ref(index, worker)
    }

    /// Live counters.
    pub fn stats(&self) -> Stats {
        self.engine.stats()
    }

    /// The server's workers: watch descriptors on them (notifications reach
    /// [`Handler::on_ready`]) and post values to them. The handle is `Send`, cheap to
    /// clone, and may outlive the server (it then refuses with `Stopped`).
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

    /// Open an outbound connection on this server's workers, served by the same handler;
    /// `token` comes back in [`crate::Conn::token`] or `on_connect_failed`.
    pub fn connect(&self, addr: SocketAddr, token: u64) -> Result<(), Error> {
        self.engine.connect(addr, token, None)
    }

    /// Refuse new connections from `net` from now on, or only `for_how_long` (a temporary
    /// ban; one too long to represent, such as `Duration::MAX`, lasts). Connections
    /// already open stay open.
    pub fn deny(&self, net: IpNet, for_how_long: Option<Duration>) {
        self.engine.deny(net, for_how_long)
    }

    /// Add `net` to the allow list while running.
    pub fn allow(&self, net: IpNet) {
        self.engine.allow(net)
    }

    /// As [`Server::deny`], on listener `listener` only (an index into
    /// [`Server::local_addrs`]).
    pub fn deny_on(
        &self,
        listener: usize,
        net: IpNet,
        for_how_long: Option<Duration>,
    ) -> Result<(), Error> {
        self.engine
            .listener_gate(listener)?
            .deny(net, crate::engine::ban_until(for_how_long));
        Ok(())
    }

    /// As [`Server::allow`], on listener `listener` only.
    pub fn allow_on(&self, listener: usize, net: IpNet) -> Result<(), Error> {
        self.engine.listener_gate(listener)?.allow(net);
        Ok(())
    }

    /// Lift a deny entry or ban on exactly `net`; true if there was one.
    pub fn remove_deny(&self, net: IpNet) -> bool {
        self.engine.remove_deny(net)
    }

    /// As [`Server::remove_deny`], on listener `listener` only.
    pub fn remove_deny_on(&self, listener: usize, net: IpNet) -> Result<bool, Error> {
        Ok(self.engine.listener_gate(listener)?.remove_deny(net))
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
    /// (which cannot answer then), the handle is returned without the check, and its
    /// `send_frame` frames with the server's codec: there, use [`crate::Conn::handle`]
    /// for a connection of a listener with a codec of its own, or one switched with
    /// [`crate::Conn::set_codec`]. Asked from any other thread, the handle frames with the
    /// connection's codec as it is when the worker answers.
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
