//! tokio, current_thread runtime, one `UdpSocket`: the idiomatic tokio UDP
//! echo. `recv_from` into one 64 KiB buffer, then `send_to` the same bytes
//! back to the sender, one datagram at a time (no batching).
//!
//! A send that fails (say EPERM from a firewall rule) drops that datagram,
//! as UDP may; a full send buffer is not a failure (`send_to` waits for the
//! socket to be writable). A receive error ends the server: an unconnected
//! UDP socket without IP_RECVERR is not handed ICMP errors, so one would be
//! a real fault.

use tokio::net::UdpSocket;

pub fn run(socket: std::net::UdpSocket) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async {
        socket.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(socket)?;
        let mut buf = vec![0u8; crate::DATAGRAM_BUF_SIZE];
        loop {
            let (n, src) = socket.recv_from(&mut buf).await?;
            // Dropped on error, like any datagram a network loses.
            let _ = socket.send_to(&buf[..n], src).await;
        }
    })
}
