//! Socket creation, options and queries through socket2.

use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// The TCP options every connection of an engine gets (see `EngineConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SockOpts {
    /// TCP_NODELAY.
    pub nodelay: bool,
    /// SO_KEEPALIVE with TCP_KEEPIDLE and TCP_KEEPINTVL both set to this (whole seconds,
    /// rounded up).
    pub keepalive: Option<Duration>,
    /// TCP_USER_TIMEOUT (milliseconds, rounded up).
    pub user_timeout: Option<Duration>,
}

impl SockOpts {
    /// Set the options on `sock`. Accepted sockets inherit all of them from their
    /// listener on Linux (TCP_NODELAY, SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL,
    /// TCP_USER_TIMEOUT are copied when the kernel clones the listener's socket), so a
    /// listener is set once and accepts cost no setsockopt call.
    fn apply(&self, sock: &Socket) -> io::Result<()> {
        sock.set_nodelay(self.nodelay)?;
        if let Some(d) = self.keepalive {
            let d = Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0));
            sock.set_tcp_keepalive(&TcpKeepalive::new().with_time(d).with_interval(d))?;
        }
        if let Some(d) = self.user_timeout {
            let ms = d.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as u64;
            sock.set_tcp_user_timeout(Some(Duration::from_millis(ms)))?;
        }
        Ok(())
    }
}

/// A listening socket for one worker. Every worker binds the same address with
/// SO_REUSEPORT, so the kernel spreads new connections over the workers' accept queues.
pub(crate) fn listener(addr: SocketAddr, backlog: i32, opts: &SockOpts) -> io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    // Accepted sockets inherit these from the listener on Linux: no per-connection
    // setsockopt call.
    opts.apply(&sock)?;
    sock.bind(&addr.into())?;
    sock.listen(backlog)?;
    Ok(sock)
}

/// A datagram socket bound to `addr`, sharing it with the other workers' (SO_REUSEPORT),
/// non-blocking.
pub(crate) fn datagram(
    addr: SocketAddr,
    recv_buffer: Option<usize>,
    send_buffer: Option<usize>,
) -> io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Some(bytes) = recv_buffer {
        sock.set_recv_buffer_size(bytes)?;
    }
    if let Some(bytes) = send_buffer {
        sock.set_send_buffer_size(bytes)?;
    }
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    Ok(sock)
}

/// Does this kernel segment UDP sends for `sock` (UDP GSO, `UDP_SEGMENT`)? Asked once
/// per socket with a `getsockopt`.
pub(crate) fn udp_gso(sock: &impl std::os::fd::AsRawFd) -> bool {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: writes at most `len` bytes into `value`, a live local; `sock` is open.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            crate::sys::op::SOL_UDP,
            crate::sys::op::UDP_SEGMENT,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    rc == 0
}

/// A fresh socket for an outbound connection to `addr`, bound first to `bind` if given.
pub(crate) fn for_connect(
    addr: SocketAddr,
    bind: Option<SocketAddr>,
    opts: &SockOpts,
) -> io::Result<OwnedFd> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    opts.apply(&sock)?;
    if let Some(local) = bind {
        set_bind_address_no_port(&sock)?;
        sock.bind(&local.into())?;
    }
    Ok(sock.into())
}

/// The peer address of a connected socket.
pub(crate) fn peer_addr(fd: &OwnedFd) -> Option<SocketAddr> {
    SockRef::from(fd).peer_addr().ok()?.as_socket()
}

/// The local address of a socket the caller keeps open.
pub(crate) fn local_addr_of(fd: RawFd) -> Option<SocketAddr> {
    // SAFETY: callers pass the fd of a live connection whose close is only submitted
    // after its last callback, so the descriptor is open for this call.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    SockRef::from(&borrowed).local_addr().ok()?.as_socket()
}

/// The keepalive idle time of a socket the caller keeps open: `None` if SO_KEEPALIVE is
/// off or the OS would not say.
pub(crate) fn keepalive_of(fd: RawFd) -> Option<Duration> {
    // SAFETY: as in `local_addr_of`: the fd of a live connection, open for this call.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let sock = SockRef::from(&borrowed);
    match sock.keepalive() {
        Ok(true) => sock.keepalive_time().ok(),
        _ => None,
    }
}

/// The TCP_USER_TIMEOUT of a socket the caller keeps open: `None` if unset (the system
/// default) or the OS would not say.
pub(crate) fn user_timeout_of(fd: RawFd) -> Option<Duration> {
    // SAFETY: as in `local_addr_of`: the fd of a live connection, open for this call.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    SockRef::from(&borrowed).tcp_user_timeout().ok().flatten()
}

/// Take ownership of a descriptor an accept completion returned.
pub(crate) fn adopt_accepted(fd: i32) -> OwnedFd {
    debug_assert!(fd >= 0);
    // SAFETY: a non-negative accept result is a new descriptor the kernel just installed
    // for us; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// IP_BIND_ADDRESS_NO_PORT: bind only the address now and pick the port at connect time,
/// per 4-tuple. Without it, a bind to `ip:0` searches for a port free of every use, which
/// takes milliseconds once many ports sit in TIME_WAIT (and it would block the worker).
fn set_bind_address_no_port(sock: &Socket) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: passes a pointer to a live c_int and its exact size for an fd we own.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(sock),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
