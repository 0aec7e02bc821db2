//! The datagram socket's public face: its settings ([`Udp`]), its callbacks
//! ([`DatagramHandler`]), what a callback may do ([`UdpCtx`]) and the cross-thread handle
//! ([`UdpRef`]).

use crate::engine::mailbox::{Mailbox, Message};
use crate::error::{Error, SendError};
use bytes::Bytes;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

/// Per-socket send queue bound, by default.
pub const DEFAULT_SEND_QUEUE_BYTES: usize = 4 << 20;

/// Callbacks of one datagram socket, run on the worker that received the datagram.
pub trait DatagramHandler: Send + Sync + 'static {
    /// A datagram arrived from `from`: all of its bytes (possibly none).
    fn on_datagram(&self, socket: &mut UdpCtx<'_>, from: SocketAddr, data: &[u8]);

    /// A datagram longer than the worker's datagram buffers arrived: `data` is its
    /// beginning only. Counted (`Stats::datagrams_truncated`); default: dropped.
    fn on_truncated(&self, _socket: &mut UdpCtx<'_>, _from: SocketAddr, _data: &[u8]) {}

    /// Receiving reported an error (the socket stays open and receiving goes on).
    fn on_error(&self, _socket: &mut UdpCtx<'_>, _error: UdpError) {}
}

/// A receive or send error on a datagram socket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UdpError {
    /// The peer's host or port refused (ICMP unreachable on a connected socket).
    #[error("the peer refused (ICMP unreachable)")]
    Refused,
    /// A send failed with this errno (the datagram was not sent).
    #[error("a send of {len} bytes to {to} failed: {}", std::io::Error::from_raw_os_error(*errno))]
    SendFailed {
        /// Where it was going.
        to: SocketAddr,
        /// Its size.
        len: usize,
        /// The error number.
        errno: i32,
    },
    /// Receiving failed with this errno.
    #[error("receiving failed: {}", std::io::Error::from_raw_os_error(*errno))]
    Receive {
        /// The error number.
        errno: i32,
    },
}

/// A datagram socket to bind on every worker, with its handler.
#[derive(Clone)]
pub struct Udp {
    pub(crate) addr: SocketAddr,
    pub(crate) name: Option<String>,
    pub(crate) handler: Arc<dyn DatagramHandler>,
    pub(crate) send_queue_bytes: usize,
    pub(crate) admission: crate::admission::DatagramAdmission,
    /// Connected to this peer (a client socket).
    pub(crate) connect: Option<SocketAddr>,
    /// On this worker only (else on every worker).
    pub(crate) worker: Option<usize>,
    /// Multicast groups joined at bind: (group, interface address) and (group,
    /// interface index).
    pub(crate) groups_v4: Vec<(std::net::Ipv4Addr, std::net::Ipv4Addr)>,
    pub(crate) groups_v6: Vec<(std::net::Ipv6Addr, u32)>,
    /// SO_RCVBUF and SO_SNDBUF, if set.
    pub(crate) recv_buffer: Option<usize>,
    pub(crate) send_buffer: Option<usize>,
}

impl Udp {
    /// A socket on `addr` (IPv4 or IPv6; port 0 picks a free port, the same on every
    /// worker) served by `handler`.
    pub fn bind<A, H>(addr: A, handler: H) -> Result<Udp, Error>
    where
        A: ToSocketAddrs + fmt::Debug,
        H: DatagramHandler,
    {
        let addr = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| Error::NoAddress(format!("{addr:?}")))?;
        Ok(Udp {
            addr,
            name: None,
            handler: Arc::new(handler),
            send_queue_bytes: DEFAULT_SEND_QUEUE_BYTES,
            admission: Default::default(),
            connect: None,
            worker: None,
            groups_v4: Vec::new(),
            groups_v6: Vec::new(),
            recv_buffer: None,
            send_buffer: None,
        })
    }

    /// A client socket connected to `peer` (from an ephemeral port), served by `handler`
    /// on one worker (worker 0 unless [`Udp::on_worker`] says otherwise). Connected, it
    /// receives only from `peer`, and ICMP errors about it (port unreachable) reach
    /// [`DatagramHandler::on_error`] as [`UdpError::Refused`].
    pub fn connect<H: DatagramHandler>(peer: SocketAddr, handler: H) -> Udp {
        let any: SocketAddr = if peer.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        Udp {
            addr: any,
            name: None,
            handler: Arc::new(handler),
            send_queue_bytes: DEFAULT_SEND_QUEUE_BYTES,
            admission: Default::default(),
            connect: Some(peer),
            worker: None,
            groups_v4: Vec::new(),
            groups_v6: Vec::new(),
            recv_buffer: None,
            send_buffer: None,
        }
    }

    /// Join the IPv4 multicast group `group` on the interface with address `interface`
    /// (`0.0.0.0`: the kernel's choice) when the socket is bound. A socket that joins a
    /// group lives on one worker (worker 0 unless [`Udp::on_worker`]): the kernel hands
    /// a multicast datagram to every socket joined, so on every worker it would be
    /// handled once per worker.
    pub fn join_multicast_v4(
        mut self,
        group: std::net::Ipv4Addr,
        interface: std::net::Ipv4Addr,
    ) -> Udp {
        self.groups_v4.push((group, interface));
        self
    }

    /// Join the IPv6 multicast group `group` on interface number `interface` (0: the
    /// kernel's choice) when the socket is bound; see [`Udp::join_multicast_v4`].
    pub fn join_multicast_v6(mut self, group: std::net::Ipv6Addr, interface: u32) -> Udp {
        self.groups_v6.push((group, interface));
        self
    }

    /// The kernel's receive buffer for each worker's socket (SO_RCVBUF; the kernel
    /// doubles it and caps it at `net.core.rmem_max`). Datagrams arriving while it is
    /// full are dropped by the kernel (`RcvbufErrors` in /proc/net/snmp) before ringport
    /// sees them: raise it for bursts. Default: the system's.
    pub fn recv_buffer_size(mut self, bytes: usize) -> Udp {
        self.recv_buffer = Some(bytes);
        self
    }

    /// The kernel's send buffer for each worker's socket (SO_SNDBUF). Default: the
    /// system's.
    pub fn send_buffer_size(mut self, bytes: usize) -> Udp {
        self.send_buffer = Some(bytes);
        self
    }

    /// Bind this socket on worker `worker` only (modulo the worker count), not on every
    /// worker.
    pub fn on_worker(mut self, worker: usize) -> Udp {
        self.worker = Some(worker);
        self
    }

    /// The name its log lines carry (default: its address).
    pub fn name(mut self, name: impl Into<String>) -> Udp {
        self.name = Some(name.into());
        self
    }

    /// The most bytes of datagrams queued for sending on one worker's socket and not yet
    /// sent (default 4 MiB); a datagram beyond it is dropped and counted.
    pub fn send_queue_bytes(mut self, bytes: usize) -> Udp {
        self.send_queue_bytes = bytes;
        self
    }

    /// Only datagrams from these ranges reach the handler (once the list has entries);
    /// the others are dropped and counted (`Stats::datagrams_denied`).
    pub fn allow(mut self, net: crate::admission::IpNet) -> Udp {
        self.admission.allow.push(net);
        self
    }

    /// Datagrams from this range are dropped and counted (`Stats::datagrams_denied`).
    pub fn deny(mut self, net: crate::admission::IpNet) -> Udp {
        self.admission.deny.push(net);
        self
    }

    /// At most `rate` datagrams per second from one source (each IPv4 address, each
    /// IPv6 /64), with bursts of `burst`; the rest are dropped and counted
    /// (`Stats::datagrams_rate_limited`).
    pub fn rate_per_source(mut self, rate: f64, burst: u32) -> Udp {
        self.admission.rate_per_source = Some((rate, burst));
        self
    }

    /// The most sources whose rate is tracked at once per worker (default
    /// [`crate::admission::DEFAULT_MAX_SOURCES`]); a flood of more starts the table
    /// over, so memory stays bounded.
    pub fn max_sources(mut self, n: usize) -> Udp {
        self.admission.max_sources = Some(n);
        self
    }
}

impl fmt::Debug for Udp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Udp")
            .field("addr", &self.addr)
            .field("name", &self.name)
            .field("send_queue_bytes", &self.send_queue_bytes)
            .field("connect", &self.connect)
            .field("worker", &self.worker)
            .field("groups_v4", &self.groups_v4)
            .field("groups_v6", &self.groups_v6)
            .finish()
    }
}

/// A datagram queued for sending.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub to: SocketAddr,
    pub data: Bytes,
}

/// A socket's datagrams queued in this batch, bounded at enqueue: `room` is what the
/// socket's bound leaves beside the bytes in flight (set by the worker), and a datagram
/// that would take the queue past it is refused and counted in `dropped`.
#[derive(Debug, Default)]
pub(crate) struct SendQueue {
    pub items: Vec<Outgoing>,
    /// Bytes in `items`.
    pub bytes: usize,
    pub room: usize,
    /// Datagrams refused since the worker last counted them.
    pub dropped: u64,
}

impl SendQueue {
    /// Queue `out`, or refuse it (drop-newest) if it does not fit.
    pub(crate) fn push(&mut self, out: Outgoing) {
        let len = out.data.len();
        if self.bytes.saturating_add(len) > self.room {
            self.dropped += 1;
        } else {
            self.bytes += len;
            self.items.push(out);
        }
    }
}

/// What a datagram callback may do: send datagrams from this socket, and get a handle
/// for other threads.
pub struct UdpCtx<'a> {
    pub(crate) local: SocketAddr,
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) index: u16,
    pub(crate) mailbox: &'a Arc<Mailbox>,
    pub(crate) out: &'a mut SendQueue,
}

impl UdpCtx<'_> {
    /// Send `data` to `to` (copied; queued, and sent with the rest of the worker's batch
    /// once its callbacks have run). Beyond the socket's send queue bound the datagram is
    /// dropped and counted (`Stats::datagrams_dropped`).
    pub fn send_to(&mut self, to: SocketAddr, data: &[u8]) {
        self.send_bytes_to(to, Bytes::copy_from_slice(data));
    }

    /// Send `data` to `to` without copying it.
    pub fn send_bytes_to(&mut self, to: SocketAddr, data: Bytes) {
        self.out.push(Outgoing { to, data });
    }

    /// The socket's local address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The peer of a connected socket ([`Udp::connect`]).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// A handle to send from this worker's socket from any thread.
    pub fn handle(&self) -> UdpRef {
        UdpRef {
            index: self.index,
            mailbox: self.mailbox.clone(),
        }
    }
}

impl fmt::Debug for UdpCtx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpCtx")
            .field("local", &self.local)
            .finish()
    }
}

/// Sends from one worker's datagram socket, from any thread (`Send`, cheap to clone).
#[derive(Clone)]
pub struct UdpRef {
    index: u16,
    mailbox: Arc<Mailbox>,
}

impl UdpRef {
    pub(crate) fn new(index: u16, mailbox: Arc<Mailbox>) -> UdpRef {
        UdpRef { index, mailbox }
    }

    /// Send `data` to `to` from this socket. `Full` if the worker's mailbox is full,
    /// `WorkerStopped` once it has stopped; a datagram the socket's send queue has no
    /// room for is dropped and counted there.
    pub fn send_to(&self, to: SocketAddr, data: impl Into<Bytes>) -> Result<(), SendError> {
        let out = Outgoing {
            to,
            data: data.into(),
        };
        self.mailbox.post(Message::SendTo(self.index, out))
    }
}

impl fmt::Debug for UdpRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpRef")
            .field("socket", &self.index)
            .finish()
    }
}
