//! Datagram (UDP) sockets on the engine's workers.
//!
//! A [`Udp`] socket is bound once per worker with `SO_REUSEPORT`, like a TCP listener:
//! the kernel spreads datagrams over the workers by a hash of their source and
//! destination, so one peer's datagrams always reach the same worker, in the order the
//! kernel got them, and no lock or hand-off is needed between workers. Each datagram
//! reaches [`DatagramHandler::on_datagram`] with its source address and its bytes (lent
//! from the worker's datagram buffers: no receive memory per socket).
//!
//! Sends ([`UdpCtx::send_to`], [`UdpRef::send_to`] from any thread) are queued on the
//! socket and submitted in batches, one operation per datagram, several per submit. The
//! queue is bounded in bytes per socket ([`Udp::send_queue_bytes`]); a datagram that does
//! not fit is dropped and counted (`Stats::datagrams_dropped`) — drop-newest, as UDP
//! itself would under load, and never a block or an error the callback must handle.
//!
//! Bad input and faults never close the socket: a datagram longer than the buffers is
//! reported truncated ([`DatagramHandler::on_truncated`], counted) and never delivered as
//! if whole; zero-length datagrams are delivered; a receive error (an ICMP error on a
//! connected socket, say) reaches [`DatagramHandler::on_error`] and receiving goes on.

mod spec;

pub use spec::{DatagramHandler, Udp, UdpCtx, UdpError, UdpRef};
pub(crate) use spec::{Outgoing, SendQueue};
