//! [`MetricsServer`]: the HTTP endpoint answering scrapes, on a one-worker ringport
//! server of its own, with the limits that keep hostile clients from locking it.

use super::session::{Counters, Endpoint, SessionLimits, Source};
use crate::admission::{DEFAULT_IPV4_PREFIX, DEFAULT_IPV6_PREFIX};
use crate::config::EngineConfig;
use crate::error::Error;
use crate::server::Server;
use crate::stats::Stats;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Default longest request head (request line and headers, with the blank line) the
/// endpoint reads; a longer one gets `431 Request Header Fields Too Large`. Set with
/// [`MetricsServerBuilder::max_request_head`].
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// Default time from connect within which the whole request head must have arrived,
/// however its bytes trickle in; the connection is closed otherwise. Set with
/// [`MetricsServerBuilder::request_deadline`].
pub const DEFAULT_REQUEST_DEADLINE: Duration = Duration::from_secs(5);

/// Default time, from the answer being queued, within which the client must take it and
/// close; the connection is aborted (RST, the rest of the answer dropped) otherwise. Set
/// with [`MetricsServerBuilder::linger`].
pub const DEFAULT_LINGER: Duration = Duration::from_secs(5);

/// Default most connections open at once; more are refused at accept. Set with
/// [`MetricsServerBuilder::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: u64 = 512;

/// Default most connections open at once from one address group (an IPv4 address, an
/// IPv6 `/64`); more are refused at accept. Set with [`MetricsServerBuilder::max_per_ip`].
pub const DEFAULT_MAX_PER_IP: u32 = 16;

/// An HTTP endpoint serving [`render`](super::render) of a stats source at `/metrics`
/// (and `/`).
///
/// It runs on a ringport server of its own with one worker. Each connection gets one
/// answer (`Connection: close`): `200` with the metrics for `GET` or `HEAD` of
/// `/metrics` or `/`, `404` for another path, `405` for another method, `400` for a
/// request line that is not HTTP, `431` for a request head over the head limit. The
/// endpoint then ends its side (FIN) and closes once the client has closed its own.
///
/// Every connection is bounded, so that clients trickling bytes or never reading cannot
/// lock scrapes out (each bound is a [`MetricsServerBuilder`] setting; defaults here):
/// the request head must be complete within 5 s of connect and within 8 KiB; after the
/// answer, the client must take it and close within the linger bound (5 s), else it is
/// aborted; at most 512 connections are open at once, at most 16 from one address (IPv4)
/// or `/64` (IPv6). A connection therefore holds its place for at most deadline + linger
/// (10 s), and the endpoint's memory stays under connections × head limit (4 MiB) plus
/// the answers in flight. Refusals at accept are counted by reason in
/// [`MetricsServer::stats`].
pub struct MetricsServer {
    server: Server<Endpoint>,
    counters: Arc<Counters>,
}

/// What a [`MetricsServer`] has done (see [`MetricsServer::stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointStats {
    /// Requests answered (any status).
    pub answered: u64,
    /// Connections closed because their request head was not complete within the
    /// request deadline.
    pub request_timeouts: u64,
    /// Connections aborted because they were still open when the linger bound passed
    /// after their answer.
    pub linger_timeouts: u64,
    /// Requests whose head passed the head limit (answered `431`).
    pub heads_too_large: u64,
    /// The endpoint's own server: connections open, accepted, refused at accept by reason
    /// (`max_connections`, `max_per_ip`), closed by reason.
    pub server: Stats,
}

impl MetricsServer {
    /// Listen on `addr` (port 0 picks a free port) with the default limits and answer
    /// every scrape with `render(&source())`. `source` runs on the endpoint's worker
    /// thread, once per request.
    pub fn start(
        addr: SocketAddr,
        source: impl Fn() -> Stats + Send + Sync + 'static,
    ) -> Result<MetricsServer, Error> {
        MetricsServer::builder().start(addr, source)
    }

    /// A builder to set the endpoint's limits before starting it.
    pub fn builder() -> MetricsServerBuilder {
        MetricsServerBuilder::default()
    }

    /// The bound address (with the port resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addrs()[0]
    }

    /// What the endpoint has done so far, and its own server's counters.
    pub fn stats(&self) -> EndpointStats {
        let c = &*self.counters;
        EndpointStats {
            answered: c.answered.load(Ordering::Relaxed),
            request_timeouts: c.request_timeouts.load(Ordering::Relaxed),
            linger_timeouts: c.linger_timeouts.load(Ordering::Relaxed),
            heads_too_large: c.heads_too_large.load(Ordering::Relaxed),
            server: self.server.stats(),
        }
    }

    /// Stop accepting, give answers in flight a second to leave, and stop the worker.
    pub fn shutdown(self) {
        self.server.shutdown(Duration::from_secs(1));
    }
}

impl fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsServer")
            .field("local_addr", &self.local_addr())
            .finish()
    }
}

/// The limits of a [`MetricsServer`], set before [`start`](Self::start); every setting
/// has the default named in its setter.
#[derive(Debug, Clone)]
pub struct MetricsServerBuilder {
    limits: SessionLimits,
    max_connections: u64,
    max_per_ip: u32,
    prefixes: (u8, u8),
}

impl Default for MetricsServerBuilder {
    fn default() -> Self {
        MetricsServerBuilder {
            limits: SessionLimits {
                request_deadline: DEFAULT_REQUEST_DEADLINE,
                linger: DEFAULT_LINGER,
                max_request_head: MAX_REQUEST_HEAD,
            },
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_per_ip: DEFAULT_MAX_PER_IP,
            prefixes: (DEFAULT_IPV4_PREFIX, DEFAULT_IPV6_PREFIX),
        }
    }
}

impl MetricsServerBuilder {
    /// The whole request head must arrive within `d` of connect (default
    /// [`DEFAULT_REQUEST_DEADLINE`], 5 s); a connection still short of it is closed.
    pub fn request_deadline(mut self, d: Duration) -> Self {
        self.limits.request_deadline = d;
        self
    }

    /// After its answer is queued, a connection has `d` to take it and close (default
    /// [`DEFAULT_LINGER`], 5 s); then it is aborted.
    pub fn linger(mut self, d: Duration) -> Self {
        self.limits.linger = d;
        self
    }

    /// Longest request head read, in bytes (default [`MAX_REQUEST_HEAD`], 8 KiB; at
    /// least 64); a longer one is answered `431`.
    pub fn max_request_head(mut self, bytes: usize) -> Self {
        self.limits.max_request_head = bytes;
        self
    }

    /// Most connections open at once (default [`DEFAULT_MAX_CONNECTIONS`], 512); more are
    /// refused at accept.
    pub fn max_connections(mut self, n: u64) -> Self {
        self.max_connections = n;
        self
    }

    /// Most connections open at once from one address group (default
    /// [`DEFAULT_MAX_PER_IP`], 16); more are refused at accept.
    pub fn max_per_ip(mut self, n: u32) -> Self {
        self.max_per_ip = n;
        self
    }

    /// How peers are grouped for [`max_per_ip`](Self::max_per_ip): IPv4 by the first
    /// `ipv4` bits, IPv6 by the first `ipv6` (default 32 and 64; see
    /// [`crate::AdmissionConfig::ipv6_prefix`]).
    pub fn per_ip_prefixes(mut self, ipv4: u8, ipv6: u8) -> Self {
        self.prefixes = (ipv4, ipv6);
        self
    }

    /// Listen on `addr` (port 0 picks a free port) and answer every scrape with
    /// `render(&source())`. `source` runs on the endpoint's worker thread, once per
    /// request. Fails for a zero deadline or linger, a head limit under 64 bytes, or a
    /// prefix longer than its address.
    pub fn start(
        self,
        addr: SocketAddr,
        source: impl Fn() -> Stats + Send + Sync + 'static,
    ) -> Result<MetricsServer, Error> {
        let bad = |m: &str| Err(Error::Config(format!("metrics endpoint: {m}")));
        if self.limits.request_deadline.is_zero() || self.limits.linger.is_zero() {
            return bad("the request deadline and the linger bound must be above zero");
        }
        if self.limits.max_request_head < 64 {
            return bad("the request head limit must be at least 64 bytes");
        }
        let config = EngineConfig {
            workers: 1,
            ring_entries: 128,
            cq_entries: 1024,
            recv_buffers: 64,
            recv_buffer_size: 4096,
            ..EngineConfig::default()
        };
        let counters = Arc::new(Counters::default());
        let source: Source = Box::new(source);
        let server = Server::builder()
            .config(config)
            .listen(addr)?
            .max_connections(self.max_connections)
            .max_per_ip(self.max_per_ip)
            .per_ip_prefixes(self.prefixes.0, self.prefixes.1)
            .start(Endpoint {
                source,
                limits: self.limits,
                counters: Arc::clone(&counters),
            })?;
        Ok(MetricsServer { server, counters })
    }
}
