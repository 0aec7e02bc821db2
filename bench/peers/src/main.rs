//! `peer-echo`: reference echo servers that ringport is benchmarked against.
//!
//! Every subcommand implements the same behaviour: listen on `--listen ADDR`,
//! set TCP_NODELAY on accepted sockets, read up to 4 KiB, write all of it
//! back, and serve from ONE thread (except `threads`, which is the classic
//! thread-per-client model and so has one OS thread per connection).
//!
//! Once bound, each prints `listening on ADDR` (the resolved address, so
//! port 0 works) to stdout and flushes it.
//!
//! Shutdown: there is no signal handler. SIGTERM/SIGINT take their default
//! action and kill the process, which is all a benchmark peer needs: there is
//! no state to flush, and the kernel closes every socket. Both are reset to
//! the default action at startup, because a shell without job control starts
//! background commands (`peer-echo ... &`) with SIGINT ignored, and that
//! would otherwise be inherited.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};

mod monoio_echo;
mod threads_echo;
mod tokio_echo;
mod uring_echo;

/// Bytes read (and so echoed) per read call, for every server.
pub const BUF_SIZE: usize = 4096;

/// Listen backlog, identical for every server so none is favoured.
const BACKLOG: i32 = 1024;

const USAGE: &str = "usage: peer-echo <tokio|monoio|threads|uring> --listen ADDR";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (server, addr) = match args.as_slice() {
        [server, flag, addr] if flag == "--listen" => (server.as_str(), addr.as_str()),
        _ => fail(USAGE),
    };
    let run: fn(TcpListener) -> std::io::Result<()> = match server {
        "tokio" => tokio_echo::run,
        "monoio" => monoio_echo::run,
        "threads" => threads_echo::run,
        "uring" => uring_echo::run,
        _ => fail(USAGE),
    };
    let addr: SocketAddr = addr
        .parse()
        .unwrap_or_else(|e| fail(&format!("bad address {addr:?}: {e}")));
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: installs the default action (no handler code runs), before
        // any other thread exists.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    let listener = bind(addr).unwrap_or_else(|e| fail(&format!("bind {addr}: {e}")));
    if let Err(e) = run(listener) {
        fail(&format!("{server}: {e}"));
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
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on {}", listener.local_addr()?)?;
    out.flush()?;
    Ok(listener)
}

fn fail(msg: &str) -> ! {
    eprintln!("peer-echo: {msg}");
    std::process::exit(2)
}
