//! `peer-echo`: reference echo servers that ringport is benchmarked against.
//!
//! Every TCP subcommand implements the same behaviour: listen on
//! `--listen ADDR`, set TCP_NODELAY on accepted sockets, read up to 4 KiB,
//! write all of it back, and serve from ONE thread (except `threads`, which
//! is the classic thread-per-client model and so has one OS thread per
//! connection).
//!
//! The UDP subcommands (`tokio-udp`, `mmsg-udp`) bind one UDP socket on
//! `--listen ADDR`, receive each datagram into a 64 KiB buffer (so every
//! datagram, 0..=65,507 bytes over IPv4, arrives whole) and send the same
//! bytes back to its source, from ONE thread. The socket keeps the kernel's
//! default buffer sizes, like ringport's, unless `--socket-buffer BYTES` is
//! given: then SO_RCVBUF and SO_SNDBUF are both set to BYTES, as ringport
//! `udp-echo --socket-buffer BYTES` does (the kernel doubles the value and
//! caps the request at net.core.rmem_max / wmem_max).
//!
//! Once bound, each prints `listening on ADDR` (the resolved address, so
//! port 0 works) to stdout and flushes it.
//!
//! Files: `sendfile-server --listen ADDR --root DIR` serves the files of
//! DIR, one OS thread per connection, each download a `sendfile(2)` loop
//! (`src/sendfile_server.rs`); `get ADDR NAME -o PATH [--offset N]` downloads
//! one with a plain read loop (`src/get_client.rs`). Both speak the request
//! line of ringport's file server without a digest (`src/file_proto.rs`).
//!
//! Shutdown: there is no signal handler. SIGTERM/SIGINT take their default
//! action and kill the process, which is all a benchmark peer needs: there is
//! no state to flush, and the kernel closes every socket. Both are reset to
//! the default action at startup, because a shell without job control starts
//! background commands (`peer-echo ... &`) with SIGINT ignored, and that
//! would otherwise be inherited.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, UdpSocket};

mod file_proto;
mod get_client;
mod mmsg_udp_echo;
mod monoio_echo;
mod sendfile_server;
mod threads_echo;
mod tokio_echo;
mod tokio_udp_echo;
mod uring_echo;

/// Bytes read (and so echoed) per read call, for every server.
pub const BUF_SIZE: usize = 4096;

/// Bytes a UDP server receives a datagram into: more than the largest UDP
/// payload (65,507 over IPv4, 65,527 over IPv6 without jumbograms).
pub const DATAGRAM_BUF_SIZE: usize = 65536;

/// Listen backlog, identical for every server so none is favoured.
const BACKLOG: i32 = 1024;

const USAGE: &str = "usage: peer-echo <tokio|monoio|threads|uring> --listen ADDR\n       \
     peer-echo <tokio-udp|mmsg-udp> --listen ADDR [--socket-buffer BYTES]\n       \
     peer-echo sendfile-server --listen ADDR --root DIR\n       \
     peer-echo get ADDR NAME -o PATH [--offset N]";

/// A server's entry point: the bound TCP listener or UDP socket it serves.
enum Server {
    Tcp(fn(TcpListener) -> std::io::Result<()>),
    Udp(fn(UdpSocket) -> std::io::Result<()>),
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("sendfile-server") => sendfile_main(&args[1..]),
        Some("get") => get_main(&args[1..]),
        _ => {}
    }
    let (server, addr, socket_buffer) = match args.as_slice() {
        [server, flag, addr] if flag == "--listen" => (server.as_str(), addr.as_str(), None),
        [server, flag, addr, buf_flag, bytes]
            if flag == "--listen" && buf_flag == "--socket-buffer" =>
        {
            let bytes: usize = bytes
                .parse()
                .ok()
                .filter(|&b| b > 0)
                .unwrap_or_else(|| fail(&format!("bad --socket-buffer {bytes:?}")));
            (server.as_str(), addr.as_str(), Some(bytes))
        }
        _ => fail(USAGE),
    };
    let run = match server {
        "tokio" => Server::Tcp(tokio_echo::run),
        "monoio" => Server::Tcp(monoio_echo::run),
        "threads" => Server::Tcp(threads_echo::run),
        "uring" => Server::Tcp(uring_echo::run),
        "tokio-udp" => Server::Udp(tokio_udp_echo::run),
        "mmsg-udp" => Server::Udp(mmsg_udp_echo::run),
        _ => fail(USAGE),
    };
    if socket_buffer.is_some() && matches!(run, Server::Tcp(_)) {
        fail("--socket-buffer is for the UDP servers only");
    }
    let addr = parse_addr(addr);
    default_signals();
    let result = match run {
        Server::Tcp(run) => run(bind(addr).unwrap_or_else(|e| fail(&format!("bind {addr}: {e}")))),
        Server::Udp(run) => {
            let socket = bind_udp(addr, socket_buffer)
                .unwrap_or_else(|e| fail(&format!("bind {addr}: {e}")));
            run(socket)
        }
    };
    if let Err(e) = result {
        fail(&format!("{server}: {e}"));
    }
}

/// `sendfile-server --listen ADDR --root DIR` (flags in either order); never
/// returns.
fn sendfile_main(args: &[String]) -> ! {
    let (mut addr, mut root) = (None, None);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| fail(USAGE));
        match flag.as_str() {
            "--listen" => addr = Some(parse_addr(value)),
            "--root" => root = Some(std::path::PathBuf::from(value)),
            _ => fail(USAGE),
        }
    }
    let (Some(addr), Some(root)) = (addr, root) else {
        fail(USAGE)
    };
    if !root.is_dir() {
        fail(&format!("--root {}: not a directory", root.display()));
    }
    default_signals();
    let listener = bind(addr).unwrap_or_else(|e| fail(&format!("bind {addr}: {e}")));
    if let Err(e) = sendfile_server::run(listener, root) {
        fail(&format!("sendfile-server: {e}"));
    }
    std::process::exit(0)
}

/// `get ADDR NAME -o PATH [--offset N]`; never returns.
fn get_main(args: &[String]) -> ! {
    let [addr, name, rest @ ..] = args else {
        fail(USAGE)
    };
    let (mut out, mut offset) = (None, 0u64);
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| fail(USAGE));
        match flag.as_str() {
            "-o" | "--output" => out = Some(value.clone()),
            "--offset" => {
                offset = value
                    .parse()
                    .unwrap_or_else(|_| fail(&format!("bad --offset {value:?}")))
            }
            _ => fail(USAGE),
        }
    }
    let Some(out) = out else { fail(USAGE) };
    let args = get_client::Args {
        addr: addr.clone(),
        name: name.clone(),
        out,
        offset,
    };
    if let Err(e) = get_client::run(args) {
        fail(&format!("get {addr} {name}: {e}"));
    }
    std::process::exit(0)
}

fn parse_addr(addr: &str) -> SocketAddr {
    addr.parse()
        .unwrap_or_else(|e| fail(&format!("bad address {addr:?}: {e}")))
}

/// SIGINT and SIGTERM back to their default action (see the module doc).
fn default_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: installs the default action (no handler code runs), before
        // any other thread exists.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

/// Binds a blocking listener with SO_REUSEADDR and a fixed backlog, and
/// announces it. Each server converts it to its own listener type.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    let listener: TcpListener = socket.into();
    announce(listener.local_addr()?)?;
    Ok(listener)
}

/// Binds a blocking UDP socket and announces it; each server makes it
/// non-blocking. No SO_REUSEADDR: on Linux it lets any other UDP socket that
/// also sets it bind the same address and take datagrams meant for this one.
/// Buffer sizes are the kernel's defaults, or both `socket_buffer` bytes
/// (SO_RCVBUF and SO_SNDBUF, set before the bind like ringport does).
fn bind_udp(addr: SocketAddr, socket_buffer: Option<usize>) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Some(bytes) = socket_buffer {
        socket.set_recv_buffer_size(bytes)?;
        socket.set_send_buffer_size(bytes)?;
    }
    socket.bind(&addr.into())?;
    let socket: UdpSocket = socket.into();
    announce(socket.local_addr()?)?;
    Ok(socket)
}

fn announce(addr: SocketAddr) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on {addr}")?;
    out.flush()
}

fn fail(msg: &str) -> ! {
    eprintln!("peer-echo: {msg}");
    std::process::exit(2)
}
