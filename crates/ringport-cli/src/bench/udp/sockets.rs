//! The UDP load's client sockets: non-blocking, connected to the server (the kernel then
//! passes on only its datagrams, and reports an ICMP port unreachable as an error),
//! registered with the poller under their index.

use super::client::Tally;
use super::datagram::{Datagrams, Header, MAX_SIZE};
use super::{Poller, UdpOptions};
use anyhow::Context;
use rustix::event::epoll::EventFlags;
use socket2::{Domain, Protocol, Socket, Type};
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};

/// Socket buffer size asked for (the kernel caps it at net.core.rmem_max / wmem_max):
/// room for a pipeline of large datagrams.
const SOCKET_BUFFER: usize = 1 << 20;
/// Socket errors logged per run before further ones are only counted.
const MAX_WARNINGS: u64 = 5;

/// What one send did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Yes,
    /// The socket's send buffer is full: try again later.
    Blocked,
    /// An error (counted); the datagram did not go.
    Failed,
}

pub struct Sockets {
    sockets: Vec<UdpSocket>,
    /// Receive buffer: one byte more than the largest datagram, so no echo is cut short.
    recv_buf: Vec<u8>,
    send_buf: Vec<u8>,
}

impl Sockets {
    /// Open `opts.connections` sockets to `opts.addr`, register them with `poller`.
    pub fn open(opts: &UdpOptions, poller: &Poller) -> anyhow::Result<Sockets> {
        let mut sockets = Vec::with_capacity(opts.connections);
        for i in 0..opts.connections {
            let source = opts.sources.get(i % opts.sources.len().max(1)).copied();
            let socket = open_one(opts.addr, source).with_context(|| {
                format!(
                    "opening UDP socket {} of {} (ulimit -n?)",
                    i + 1,
                    opts.connections
                )
            })?;
            poller.add(&socket, i as u64, EventFlags::IN)?;
            sockets.push(socket);
        }
        Ok(Sockets {
            sockets,
            recv_buf: vec![0; MAX_SIZE + 1],
            send_buf: Vec::with_capacity(MAX_SIZE),
        })
    }

    /// Send the datagram of `header` on socket `i`.
    pub fn send(&mut self, i: usize, header: Header, d: &Datagrams, tally: &mut Tally) -> Sent {
        d.build(header, &mut self.send_buf);
        loop {
            return match self.sockets[i].send(&self.send_buf) {
                Ok(_) => Sent::Yes,
                Err(e) if e.kind() == ErrorKind::WouldBlock => Sent::Blocked,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    socket_error(tally, i, "send", &e);
                    Sent::Failed
                }
            };
        }
    }

    /// The next datagram waiting on socket `i`, if any (errors are counted and skipped).
    pub fn recv(&mut self, i: usize, tally: &mut Tally) -> Option<&[u8]> {
        loop {
            match self.sockets[i].recv(&mut self.recv_buf) {
                Ok(n) => return Some(&self.recv_buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // A queued ICMP error is reported once; the datagrams behind it remain.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    socket_error(tally, i, "receive", &e);
                }
                Err(e) => {
                    socket_error(tally, i, "receive", &e);
                    return None;
                }
            }
        }
    }
}

fn open_one(addr: SocketAddr, source: Option<std::net::IpAddr>) -> anyhow::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .context("creating a socket")?;
    socket.set_nonblocking(true).context("O_NONBLOCK")?;
    // Best effort: the kernel's caps decide, and defaults work for small pipelines.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    if let Some(ip) = source {
        socket
            .bind(&SocketAddr::new(ip, 0).into())
            .with_context(|| format!("binding to source address {ip}"))?;
    }
    socket
        .connect(&addr.into())
        .with_context(|| format!("connecting to {addr}"))?;
    Ok(socket.into())
}

fn socket_error(tally: &mut Tally, i: usize, what: &str, e: &std::io::Error) {
    tally.socket_errors += 1;
    if tally.socket_errors <= MAX_WARNINGS {
        tracing::warn!(socket = i, error = %e, "{what} failed");
    }
}
