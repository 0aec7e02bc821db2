//! A single-threaded TCP echo server on a standalone `notify::Port`, in the shape of a
//! classic `poll(2)` loop: no engine, no handler, just "register descriptors, wait for a
//! batch of notifications, act on each".
//!
//! Every watch is level-triggered and persistent: the listener waits for READABLE, each
//! connection for READABLE|HANGUP. A connection whose echo could not be written at once
//! is switched with `Port::modify` to WRITABLE (and stops being read: that is the
//! back-pressure) until its pending bytes are out, then back to READABLE|HANGUP. On end
//! of file, a hang-up or an error the watch is removed; the socket closes when its
//! removal notice, which hands the descriptor back, is dropped.
//!
//! The port owns every descriptor; the loop borrows them with `Port::fd` and does its
//! reads and writes through `socket2::SockRef`, which never takes ownership.
//!
//! Run: `cargo run --release -p ringport --example poll_replacement -- 127.0.0.1:7010`
//! (prints `listening on ADDR` once bound; serves until killed).

use ringport::notify::{Interest, Notification, Port, Ready, WatchId};
use socket2::{SockRef, Socket};
use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpListener;
use std::os::fd::OwnedFd;

/// The listener's token; connections count up from 1.
const LISTENER: u64 = 0;
/// The most read from a connection per notification.
const CHUNK: usize = 64 * 1024;

/// What a connection waits for while it has nothing left to write back.
fn reading() -> Interest {
    Interest::READABLE | Interest::HANGUP
}

/// One client connection.
struct Connection {
    watch: WatchId,
    /// Bytes read but not yet echoed. While there are any, the watch waits for WRITABLE
    /// and nothing more is read.
    unsent: Vec<u8>,
    /// The watch is being removed: its removal notice is on the way.
    removing: bool,
}

/// What a notification left a connection to do next.
enum Next {
    Read,
    Write,
    Close,
}

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = TcpListener::bind(&addr)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;

    let mut port = Port::new()?;
    let listener_watch = port
        .register(OwnedFd::from(listener), Interest::READABLE, LISTENER)
        .map_err(|refused| io::Error::other(refused.error))?;
    eprintln!("poll_replacement: on the {} backend", port.backend());
    println!("listening on {local}");
    io::stdout().flush()?;

    let mut connections: HashMap<u64, Connection> = HashMap::new();
    let mut next_token = LISTENER + 1;
    let mut notifications = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        port.wait(&mut notifications, None)?;
        for notification in notifications.drain(..) {
            match notification {
                Notification::Ready {
                    token: LISTENER, ..
                } => accept_all(&mut port, listener_watch, &mut connections, &mut next_token),
                Notification::Ready { token, ready, .. } => {
                    if let Some(conn) = connections.get_mut(&token) {
                        serve(&mut port, conn, ready, &mut buf);
                    }
                }
                Notification::Removed(notice) if notice.token == LISTENER => {
                    return Err(io::Error::other(format!(
                        "the listener's watch ended: {}",
                        notice.reason
                    )));
                }
                Notification::Removed(notice) => {
                    connections.remove(&notice.token);
                    drop(notice); // closes the socket
                }
            }
        }
    }
}

/// Accept every connection waiting, each registered with a token of its own.
fn accept_all(
    port: &mut Port,
    listener: WatchId,
    connections: &mut HashMap<u64, Connection>,
    next_token: &mut u64,
) {
    loop {
        let Some(fd) = port.fd(listener) else { return };
        let socket = match SockRef::from(&fd).accept() {
            Ok((socket, _peer)) => socket,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if is_transient(&e) => continue,
            Err(e) => {
                // Out of descriptors, say: the level watch reports the backlog again.
                eprintln!("poll_replacement: accept: {e}");
                return;
            }
        };
        if let Err(e) = configure(&socket) {
            eprintln!("poll_replacement: setting up a connection: {e}");
            continue; // dropping it closes it
        }
        let token = *next_token;
        *next_token += 1;
        match port.register(OwnedFd::from(socket), reading(), token) {
            Ok(watch) => {
                let conn = Connection {
                    watch,
                    unsent: Vec::new(),
                    removing: false,
                };
                connections.insert(token, conn);
            }
            Err(refused) => eprintln!("poll_replacement: watch refused: {}", refused.error),
        }
    }
}

fn configure(socket: &Socket) -> io::Result<()> {
    socket.set_nonblocking(true)?;
    socket.set_nodelay(true)
}

/// An accept failure that concerns one connection only (it went away while queued).
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Interrupted | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}

/// Act on a connection's readiness, then point its watch at what it needs next.
fn serve(port: &mut Port, conn: &mut Connection, ready: Ready, buf: &mut [u8]) {
    if conn.removing {
        return; // a notification of the same batch as the removal
    }
    let was_writing = !conn.unsent.is_empty();
    let next = match port.fd(conn.watch) {
        None => Next::Close,
        Some(fd) => {
            let socket = SockRef::from(&fd);
            if ready.is_error() {
                Next::Close
            } else if was_writing {
                flush(&socket, conn, ready)
            } else {
                read_and_echo(&socket, conn, buf)
            }
        }
    };
    let outcome = match next {
        Next::Close => {
            conn.removing = true;
            port.remove(conn.watch)
        }
        Next::Write if !was_writing => port.modify(conn.watch, Interest::WRITABLE),
        Next::Read if was_writing => port.modify(conn.watch, reading()),
        Next::Read | Next::Write => Ok(()),
    };
    if let Err(e) = outcome {
        eprintln!("poll_replacement: {e}");
    }
}

/// Read one chunk and write it straight back; what the socket does not take waits.
fn read_and_echo(socket: &Socket, conn: &mut Connection, buf: &mut [u8]) -> Next {
    let mut reader = socket;
    let n = match reader.read(buf) {
        Ok(0) => return Next::Close, // end of file, nothing owed: done
        Ok(n) => n,
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
            return Next::Read;
        }
        Err(_) => return Next::Close,
    };
    match write_some(socket, &buf[..n]) {
        Ok(written) if written == n => Next::Read,
        Ok(written) => {
            conn.unsent.extend_from_slice(&buf[written..n]);
            Next::Write
        }
        Err(_) => Next::Close,
    }
}

/// Write what is pending; once it is all out, read again. (End of file is only ever
/// read with nothing pending, so it closes at once in `read_and_echo`.)
fn flush(socket: &Socket, conn: &mut Connection, ready: Ready) -> Next {
    if ready.is_hangup() && !ready.is_writable() {
        return Next::Close; // hung up both ways: nobody will read the rest
    }
    match write_some(socket, &conn.unsent) {
        Ok(written) => {
            conn.unsent.drain(..written);
        }
        Err(_) => return Next::Close,
    }
    if conn.unsent.is_empty() {
        Next::Read
    } else {
        Next::Write
    }
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
