//! A UDP echo server on a standalone `notify::Port` with one edge-triggered, persistent
//! READABLE watch.
//!
//! Edge triggering reports readiness when it arrives, not while it lasts, so every
//! notification must drain the socket: `recv_from` until `WouldBlock`, echoing each
//! datagram to its sender with `send_to`. Stopping early would leave datagrams queued
//! with no notification to come for them until the next one arrives. (On io_uring this
//! watch is a single multishot poll; on the readiness backend, epoll with `EPOLLET`.)
//!
//! UDP is lossy, and so is this echo: a datagram the socket cannot send at once is
//! dropped and counted, never queued. Nothing is printed per datagram; a one-line
//! summary goes to stderr when the counts have changed and the server has been idle a
//! while.
//!
//! The port takes the descriptor it watches (it must stay open while a poll may name it),
//! so the server registers a duplicate of its socket, made once at start-up, and keeps
//! the `UdpSocket` itself for `recv_from`/`send_to`: both descriptors are the same socket,
//! so readiness of one is readiness of the other.
//!
//! Run: `cargo run --release -p ringport --example edge_udp -- 127.0.0.1:7011`
//! (prints `listening on ADDR` once bound; serves until killed).

use ringport::notify::{Interest, Notification, Port};
use std::io::{self, ErrorKind, Write};
use std::net::UdpSocket;
use std::os::fd::OwnedFd;
use std::time::Duration;

/// The watch's token (there is only the one).
const SOCKET: u64 = 1;
/// Room for the largest UDP payload.
const MAX_DATAGRAM: usize = 65_536;
/// How long the server is idle before it reports its counts.
const REPORT_AFTER: Duration = Duration::from_secs(5);

/// What the server has done so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    notifications: u64,
    received: u64,
    echoed: u64,
    /// Echoes the socket would not take at once (or refused): dropped.
    dropped: u64,
    /// Receive errors other than "nothing left" (an ICMP error from an earlier send).
    receive_errors: u64,
}

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let socket = UdpSocket::bind(&addr)?;
    socket.set_nonblocking(true)?;
    let local = socket.local_addr()?;

    let mut port = Port::new()?;
    let watched = OwnedFd::from(socket.try_clone()?);
    port.register(watched, Interest::READABLE.edge(), SOCKET)
        .map_err(|refused| io::Error::other(refused.error))?;
    eprintln!("edge_udp: on the {} backend", port.backend());
    println!("listening on {local}");
    io::stdout().flush()?;

    let mut counts = Counts::default();
    let mut reported = counts;
    let mut notifications = Vec::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        if port.wait(&mut notifications, Some(REPORT_AFTER))? == 0 && counts != reported {
            eprintln!("edge_udp: {counts:?}");
            reported = counts;
        }
        for notification in notifications.drain(..) {
            match notification {
                Notification::Ready { .. } => {
                    counts.notifications += 1;
                    drain(&socket, &mut buf, &mut counts);
                }
                Notification::Removed(notice) => {
                    return Err(io::Error::other(format!(
                        "the socket's watch ended: {}",
                        notice.reason
                    )));
                }
            }
        }
    }
}

/// Receive until the socket is empty, echoing each datagram back to where it came from.
fn drain(socket: &UdpSocket, buf: &mut [u8], counts: &mut Counts) {
    loop {
        let (len, sender) = match socket.recv_from(buf) {
            Ok(got) => got,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                // Reported once, then cleared (a port unreachable, say): keep draining.
                // Anything else would repeat, so stop; the next datagram brings a new
                // edge.
                counts.receive_errors += 1;
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset
                ) {
                    continue;
                }
                eprintln!("edge_udp: recv_from: {e}");
                return;
            }
        };
        counts.received += 1;
        match socket.send_to(&buf[..len], sender) {
            Ok(_) => counts.echoed += 1,
            Err(_) => counts.dropped += 1,
        }
    }
}
