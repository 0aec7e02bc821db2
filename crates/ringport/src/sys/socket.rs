//! Socket creation and queries through socket2 (no unsafe needed here).

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// A listening socket for one worker. Every worker binds the same address with
/// SO_REUSEPORT, so the kernel spreads new connections over the workers' accept queues.
pub(crate) fn listener(addr: SocketAddr, backlog: i32, nodelay: bool) -> io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    // Accepted sockets inherit TCP_NODELAY from the listener on Linux: no per-connection
    // setsockopt call.
    sock.set_nodelay(nodelay)?;
    sock.bind(&addr.into())?;
    sock.listen(backlog)?;
    Ok(sock)
}

/// A fresh socket for an outbound connection to `addr`, bound first to `bind` if given.
pub(crate) fn for_connect(
    addr: SocketAddr,
    bind: Option<SocketAddr>,
    nodelay: bool,
) -> io::Result<OwnedFd> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_nodelay(nodelay)?;
    if let Some(local) = bind {
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

/// Take ownership of a descriptor an accept completion returned.
pub(crate) fn adopt_accepted(fd: i32) -> OwnedFd {
    debug_assert!(fd >= 0);
    // SAFETY: a non-negative accept result is a new descriptor the kernel just installed
    // for us; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}
