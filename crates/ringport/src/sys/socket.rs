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
