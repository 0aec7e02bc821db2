//! The UDP echo server: every datagram is sent back to its sender unchanged.

use crate::live_stats::Ticker;
use anyhow::Context;
use ringport::udp::{DatagramHandler, Udp, UdpCtx, UdpError};
use ringport::{CloseReason, Conn, Handler, Server};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long the shutdown waits for queued echoes to go out.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// Echoes each datagram to where it came from. Truncated datagrams (longer than
/// `--datagram-max`) are not echoed: they would come back changed. The library counts
/// them, and the sends it had to drop.
pub struct DatagramEcho;

impl DatagramHandler for DatagramEcho {
    fn on_datagram(&self, socket: &mut UdpCtx<'_>, from: SocketAddr, data: &[u8]) {
        socket.send_to(from, data);
    }

    fn on_truncated(&self, socket: &mut UdpCtx<'_>, from: SocketAddr, data: &[u8]) {
        tracing::debug!(local = %socket.local_addr(), %from, kept = data.len(), "truncated datagram not echoed");
    }

    fn on_error(&self, socket: &mut UdpCtx<'_>, error: UdpError) {
        tracing::debug!(local = %socket.local_addr(), %error, "datagram socket error");
    }
}

/// The TCP side of a server that has none: `start` wants a [`Handler`], and no
/// connection ever reaches it.
pub struct NoTcp;

impl Handler for NoTcp {
    type Session = ();
    fn on_open(&self, _conn: &mut Conn) {}
    fn on_data(&self, _session: &mut (), _conn: &mut Conn, _data: &[u8]) {}
    fn on_close(&self, _session: (), _conn: &Conn, _reason: CloseReason) {}
}

#[derive(Debug, Clone)]
pub struct UdpEchoOptions {
    pub listen: Vec<String>,
    pub workers: usize,
    pub backend: ringport::Backend,
    /// The largest datagram echoed (longer ones arrive truncated and are dropped).
    pub datagram_max: Option<u32>,
    /// SO_RCVBUF of each socket (the kernel drops datagrams arriving while it is full).
    pub socket_buffer: Option<usize>,
    /// Print a stats line every second.
    pub stats: bool,
}

/// Bind and start the server (not waiting for anything).
pub fn start(opts: &UdpEchoOptions) -> anyhow::Result<Server<NoTcp>> {
    let mut builder = Server::builder()
        .workers(opts.workers)
        .backend(opts.backend);
    if let Some(max) = opts.datagram_max {
        // 0 buffers: the library sizes the count by `max` (4 MiB's worth per worker).
        builder = builder.datagram_buffers(0, max);
    }
    for addr in &opts.listen {
        let mut socket = Udp::bind(addr.as_str(), DatagramEcho)
            .with_context(|| format!("bad listen address {addr:?}"))?;
        if let Some(bytes) = opts.socket_buffer {
            socket = socket.recv_buffer_size(bytes).send_buffer_size(bytes);
        }
        builder = builder.udp(socket);
    }
    builder.start(NoTcp).context("starting the UDP echo server")
}

/// The `udp-echo` command: serve until SIGINT/SIGTERM, then shut down and print the
/// final stats.
pub fn run(opts: UdpEchoOptions) -> anyhow::Result<()> {
    let termination = crate::signal::Termination::install()?;
    let server = Arc::new(start(&opts)?);
    for addr in server.udp_addrs() {
        println!("listening on {addr}");
    }
    println!("backend {}", server.stats().backend);
    let ticker = if opts.stats {
        let source = Arc::clone(&server);
        Some(Ticker::start(
            move || source.stats(),
            crate::live_stats::datagram_line,
        )?)
    } else {
        None
    };
    let waited = termination.wait();
    if let Some(ticker) = ticker {
        ticker.stop();
    }
    waited?;
    println!("shutting down");
    let server = Arc::try_unwrap(server)
        .map_err(|_| anyhow::anyhow!("the server is still shared after stopping its users"))?;
    let report = server.shutdown(SHUTDOWN_DEADLINE);
    println!("final stats:");
    print!("{}", crate::live_stats::indented(&report.stats));
    Ok(())
}
