//! The attacks' plumbing: connects of plain non-blocking sockets that complete through
//! the epoll [`Poller`], and how their errors are sorted.

pub use crate::bench::poller::Poller;
use anyhow::Context;
use rustix::event::epoll::EventFlags;
use rustix::io::Errno;
use socket2::{Domain, Protocol, Socket, Type};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Interest of a connection that reads (and so notices EOF and resets).
pub const READABLE: EventFlags = EventFlags::IN.union(EventFlags::RDHUP);
/// Interest of a connect in progress: writable once it completed or failed.
pub const CONNECTING: EventFlags = EventFlags::OUT;
/// Interest of a connection that writes but never reads: room to write, or the peer gone.
pub const WRITER: EventFlags = EventFlags::OUT.union(EventFlags::RDHUP);
/// Flags saying the peer hung up or the socket has an error pending.
pub const GONE: EventFlags = EventFlags::RDHUP
    .union(EventFlags::HUP)
    .union(EventFlags::ERR);

/// Why a connect (or a connection) failed, as the report counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fail {
    /// The peer refused (ECONNREFUSED: nothing listening, or a full queue answered RST).
    Refused,
    /// Reset or aborted (also a broken pipe: the peer had reset it).
    Reset,
    /// No answer in time (the kernel's or the tool's connect timeout).
    Timeout,
    /// This side could not start the connect: no free local port or address.
    Local,
    /// Anything else (unreachable network, ...); the report keeps the first message.
    Other,
}

impl Fail {
    pub fn of(e: &io::Error) -> Fail {
        match e.kind() {
            ErrorKind::ConnectionRefused => Fail::Refused,
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
                Fail::Reset
            }
            ErrorKind::TimedOut => Fail::Timeout,
            ErrorKind::AddrNotAvailable | ErrorKind::AddrInUse => Fail::Local,
            _ => Fail::Other,
        }
    }
}

/// True for errors that mean this process ran out of something (descriptors, memory):
/// a failure of the tool, not an answer of the server.
fn out_of_resources(e: &io::Error) -> bool {
    [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM]
        .iter()
        .any(|errno| e.raw_os_error() == Some(errno.raw_os_error()))
}

/// What starting a connect gave.
pub enum Dialed {
    /// In progress: register for [`CONNECTING`] and call [`finish_connect`] on its event.
    Pending(Socket),
    /// Connected at once.
    Connected(Socket),
    /// Failed at once.
    Failed(Fail, io::Error),
}

/// Opens non-blocking connects to the target, from the source addresses in turn.
pub struct Dialer {
    addr: SocketAddr,
    sources: Vec<IpAddr>,
    next: usize,
    /// SO_RCVBUF to set before connecting (so the window announced is small from the start).
    pub recv_buffer: Option<usize>,
    /// SO_SNDBUF to set before connecting.
    pub send_buffer: Option<usize>,
    /// Close with RST (SO_LINGER 0) instead of FIN.
    pub abortive_close: bool,
}

impl Dialer {
    pub fn new(addr: SocketAddr, sources: Vec<IpAddr>) -> Dialer {
        Dialer {
            addr,
            sources,
            next: 0,
            recv_buffer: None,
            send_buffer: None,
            abortive_close: false,
        }
    }

    /// Start one connect. `Err` only for failures of this process (out of descriptors,
    /// a socket option refused): the server's answers come back as [`Dialed::Failed`].
    pub fn dial(&mut self) -> anyhow::Result<Dialed> {
        let socket = Socket::new(
            Domain::for_address(self.addr),
            Type::STREAM,
            Some(Protocol::TCP),
        )
        .map_err(|e| {
            let hint = if out_of_resources(&e) {
                " (out of file descriptors? see ulimit -n)"
            } else {
                ""
            };
            anyhow::Error::new(e).context(format!("creating a socket{hint}"))
        })?;
        socket
            .set_nonblocking(true)
            .context("making a socket non-blocking")?;
        if let Some(n) = self.recv_buffer {
            socket
                .set_recv_buffer_size(n)
                .context("setting SO_RCVBUF")?;
        }
        if let Some(n) = self.send_buffer {
            socket
                .set_send_buffer_size(n)
                .context("setting SO_SNDBUF")?;
        }
        if self.abortive_close {
            socket
                .set_linger(Some(Duration::ZERO))
                .context("setting SO_LINGER 0")?;
        }
        if !self.sources.is_empty() {
            let ip = self.sources[self.next % self.sources.len()];
            self.next = self.next.wrapping_add(1);
            if let Err(e) = socket.bind(&SocketAddr::new(ip, 0).into()) {
                return match Fail::of(&e) {
                    Fail::Local => Ok(Dialed::Failed(Fail::Local, e)),
                    _ => Err(e).with_context(|| format!("binding to source address {ip}")),
                };
            }
        }
        match socket.connect(&self.addr.into()) {
            Ok(()) => Ok(Dialed::Connected(socket)),
            Err(e) if e.raw_os_error() == Some(Errno::INPROGRESS.raw_os_error()) => {
                Ok(Dialed::Pending(socket))
            }
            Err(e) if out_of_resources(&e) => Err(e).context("connect"),
            Err(e) => Ok(Dialed::Failed(Fail::of(&e), e)),
        }
    }
}

/// After a [`CONNECTING`] event: did the connect succeed?
pub fn finish_connect(socket: &Socket) -> io::Result<()> {
    if let Some(e) = socket.take_error()? {
        return Err(e);
    }
    // Not connected without a pending error would be a spurious wakeup; say so.
    socket.peer_addr().map(|_| ())
}

/// How a connection that had been open ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The peer closed in order (FIN).
    Eof,
    /// Reset, or a write into a connection the peer had closed.
    Reset,
    /// Another error.
    Other,
}

impl Ended {
    pub fn of(e: &io::Error) -> Ended {
        match Fail::of(e) {
            Fail::Reset => Ended::Reset,
            _ => Ended::Other,
        }
    }

    /// How a connection whose peer hung up (RDHUP/HUP/ERR, without reading) ended.
    pub fn after_hangup(socket: &Socket) -> Ended {
        match socket.take_error() {
            Ok(Some(e)) | Err(e) => Ended::of(&e),
            Ok(None) => Ended::Eof,
        }
    }
}

/// Read and discard what is there (bounded, the poller is level-triggered). `None` while
/// the connection stays open; otherwise how it ended.
pub fn drain(socket: &Socket, buf: &mut [u8], received: &mut u64) -> Option<Ended> {
    let mut reader = socket;
    for _ in 0..16 {
        match reader.read(buf) {
            Ok(0) => return Some(Ended::Eof),
            Ok(n) => *received += n as u64,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Some(Ended::of(&e)),
        }
    }
    None
}

/// What one non-blocking write did.
pub enum Wrote {
    /// This many bytes went (at least 1).
    Bytes(usize),
    /// The send buffer is full.
    Blocked,
    /// The connection is gone.
    Ended(Ended),
}

pub fn write_some(socket: &Socket, data: &[u8]) -> Wrote {
    let mut writer = socket;
    loop {
        return match writer.write(data) {
            Ok(0) => Wrote::Blocked,
            Ok(n) => Wrote::Bytes(n),
            Err(e) if e.kind() == ErrorKind::WouldBlock => Wrote::Blocked,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => Wrote::Ended(Ended::of(&e)),
        };
    }
}
