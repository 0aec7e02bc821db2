//! A multithreaded TCP echo server built from one-shot watches on an engine's workers,
//! the way a classic `EPOLLONESHOT` server spreads sockets over a thread pool.
//!
//! The engine is a `Client` that never connects: an engine with workers and no
//! listeners of its own. The server binds its own non-blocking `TcpListener` and watches
//! it on worker 0 (level-triggered, persistent); `on_ready` accepts until `WouldBlock`
//! and hands each new socket to the workers, round robin, with
//! `Interest::READABLE.oneshot()`. A one-shot watch reports once and is then disarmed, so
//! a socket is handled on one thread at a time: each notification reads one chunk,
//! echoes it, and re-arms the watch (`WatchCtl::rearm`), so every message is handled
//! exactly once and in order.
//!
//! A write the socket takes only in part keeps the rest in a map shared by the workers
//! (touched only then) and waits for `WRITABLE` (`WatchCtl::modify`), reading nothing
//! more until that is out. End of file or an error removes the watch (`WatchCtl::remove`);
//! the socket closes when `on_watch_removed` drops the notice that hands it back.
//!
//! Run: `cargo run --release -p ringport --example oneshot_workers -- 127.0.0.1:7012`
//! (optionally `--workers N`, default 2; prints `listening on ADDR` once bound; serves
//! until killed).

use ringport::notify::{Interest, Ready, WatchRemoved};
use ringport::{Client, CloseReason, Conn, Handler, WatchCtl};
use socket2::{SockRef, Socket};
use std::cell::RefCell;
use std::collections::HashMap;
use std::error::Error;
use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// The listener's token; connections count up from 1.
const LISTENER: u64 = 0;
/// The most read from a connection per notification: one "message".
const CHUNK: usize = 64 * 1024;

thread_local! {
    /// Each worker's read buffer.
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; CHUNK]);
}

/// The handler every worker shares.
struct OneShotEcho {
    next_token: AtomicU64,
    /// Echo bytes a socket did not take yet, by token.
    unsent: Mutex<HashMap<u64, Vec<u8>>>,
}

impl OneShotEcho {
    fn unsent(&self) -> MutexGuard<'_, HashMap<u64, Vec<u8>>> {
        self.unsent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The listener is readable: accept everything waiting and spread it over the
    /// workers. The listener's watch is persistent; it needs no re-arm.
    fn accept_all(&self, ctl: &mut WatchCtl<'_>) {
        let listener = ctl.fd();
        loop {
            let socket = match SockRef::from(&listener).accept() {
                Ok((socket, _peer)) => socket,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if is_transient(&e) => continue,
                Err(e) => {
                    // Out of descriptors, say: the level watch reports the backlog again.
                    eprintln!("oneshot_workers: accept: {e}");
                    return;
                }
            };
            if let Err(e) = socket.set_nonblocking(true).and(socket.set_nodelay(true)) {
                eprintln!("oneshot_workers: setting up a connection: {e}");
                continue; // dropping it closes it
            }
            let token = self.next_token.fetch_add(1, Ordering::Relaxed);
            let interest = Interest::READABLE.oneshot();
            if let Err(refused) = ctl.workers().watch(OwnedFd::from(socket), interest, token) {
                // Dropping `refused` closes the socket.
                eprintln!("oneshot_workers: watch refused: {}", refused.error);
            }
        }
    }

    /// A connection is readable: read one chunk and echo it. All of it out: re-arm for
    /// the next. Some of it left: keep it and wait for writable.
    fn echo(&self, token: u64, socket: &Socket, ctl: &mut WatchCtl<'_>) {
        READ_BUF.with_borrow_mut(|buf| {
            let mut reader = socket;
            let n = match reader.read(buf) {
                Ok(0) => return ctl.remove(), // end of file, nothing owed: done
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                    return ctl.rearm();
                }
                Err(_) => return ctl.remove(),
            };
            match write_some(socket, &buf[..n]) {
                Ok(written) if written == n => ctl.rearm(),
                Ok(written) => {
                    self.unsent().insert(token, buf[written..n].to_vec());
                    ctl.modify(Interest::WRITABLE.oneshot());
                }
                Err(_) => ctl.remove(),
            }
        });
    }

    /// A connection with pending output is writable: write more of it; once it is all
    /// out, wait for readable again.
    fn flush(&self, token: u64, socket: &Socket, ctl: &mut WatchCtl<'_>) {
        // Taken out while writing: no other worker touches this token meanwhile (the
        // watch is one-shot and disarmed), and the lock is not held across the write.
        let mut pending = self.unsent().remove(&token).unwrap_or_default();
        match write_some(socket, &pending) {
            Ok(written) => {
                pending.drain(..written);
            }
            Err(_) => return ctl.remove(),
        }
        if pending.is_empty() {
            ctl.modify(Interest::READABLE.oneshot());
        } else {
            self.unsent().insert(token, pending);
            ctl.rearm();
        }
    }
}

impl Handler for OneShotEcho {
    type Session = ();

    // This engine opens no connections: the connection callbacks never run.
    fn on_open(&self, _conn: &mut Conn) {}
    fn on_data(&self, _session: &mut (), _conn: &mut Conn, _data: &[u8]) {}
    fn on_close(&self, _session: (), _conn: &Conn, _reason: CloseReason) {}

    fn on_ready(&self, token: u64, ready: Ready, ctl: &mut WatchCtl<'_>) {
        if token == LISTENER {
            return self.accept_all(ctl);
        }
        if ready.is_error() {
            return ctl.remove();
        }
        let fd = ctl.fd();
        let socket = SockRef::from(&fd);
        if ctl.interest().is_writable() {
            self.flush(token, &socket, ctl);
        } else {
            self.echo(token, &socket, ctl);
        }
    }

    fn on_watch_removed(&self, removed: WatchRemoved) {
        if removed.token == LISTENER {
            eprintln!(
                "oneshot_workers: the listener's watch ended: {}",
                removed.reason
            );
            std::process::exit(1);
        }
        self.unsent().remove(&removed.token);
        // Dropping `removed` closes the socket.
    }
}

/// An accept failure that concerns one connection only (it went away while queued).
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Interrupted | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}

/// Write as much of `data` as the socket takes now (`send` never raises SIGPIPE).
fn write_some(socket: &Socket, data: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while written < data.len() {
        match socket.send(&data[written..]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

/// `ADDR [--workers N]`.
fn parse_args() -> Result<(String, usize), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".into());
    let workers = match (args.next().as_deref(), args.next()) {
        (None, _) => 2,
        (Some("--workers"), Some(n)) => n.parse()?,
        _ => return Err("usage: oneshot_workers [ADDR [--workers N]]".into()),
    };
    Ok((addr, workers))
}

fn main() -> Result<(), Box<dyn Error>> {
    let (addr, workers) = parse_args()?;
    let handler = OneShotEcho {
        next_token: AtomicU64::new(LISTENER + 1),
        unsent: Mutex::new(HashMap::new()),
    };
    let engine = Client::builder().workers(workers).start(handler)?;

    let listener = TcpListener::bind(&addr)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let listener_watch = Interest::READABLE; // level, persistent
    engine
        .workers()
        .watch_on(0, OwnedFd::from(listener), listener_watch, LISTENER)
        .map_err(|refused| refused.error)?;
    let backend = engine.stats().backend;
    eprintln!("oneshot_workers: {workers} workers on the {backend} backend");
    println!("listening on {local}");
    io::stdout().flush()?;

    // The workers serve; this thread only keeps the engine alive.
    loop {
        std::thread::park();
    }
}
