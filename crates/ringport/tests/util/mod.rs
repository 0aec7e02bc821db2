//! Helpers shared by the integration tests: an echo handler that records its events, a
//! blocking `std::net::TcpStream` peer, condition polling with deadlines, random data.
//!
//! Each test file includes this module with `mod util;` and uses only part of it.
#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use ringport::{CloseReason, Conn, Handler, Server};
use socket2::{Domain, Protocol, Socket, Type};
use std::fmt::Debug;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Read and write timeout of every blocking test socket: a peer that stops answering
/// fails the test instead of hanging it.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the tests wait for an asynchronous effect (a callback, a counter) to show.
pub const WAIT: Duration = Duration::from_secs(15);

/// Arms a watchdog for the calling test: if the returned guard is still alive after
/// `limit` (the test, or the engine shutdown run by a drop, hangs), the whole test process
/// exits with a failure instead of hanging. Keep the guard as the test's first local so it
/// is dropped last.
#[must_use = "the watchdog is disarmed when the guard is dropped"]
pub fn watchdog(test: &'static str, limit: Duration) -> Watchdog {
    let (disarm, armed) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name(format!("watchdog {test}"))
        .spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = armed.recv_timeout(limit) {
                eprintln!("test {test} is still running after {limit:?}: it hangs; exiting");
                std::process::exit(101);
            }
        })
        .expect("spawn a watchdog thread");
    Watchdog { _disarm: disarm }
}

/// Disarms its watchdog when dropped.
pub struct Watchdog {
    _disarm: std::sync::mpsc::Sender<()>,
}

/// The watchdog limit of one test: far above what any test needs on two cores.
pub const TEST_LIMIT: Duration = Duration::from_secs(90);

/// Poll `cond` every few milliseconds until it holds; panic naming `what` if it still
/// does not after `timeout`.
#[track_caller]
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    loop {
        if cond() {
            return;
        }
        if start.elapsed() >= timeout {
            panic!("timed out after {timeout:?} waiting until {what}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Poll `get` until it returns `expected`; on timeout panic with the last value seen.
#[track_caller]
pub fn wait_for_value<T: PartialEq + Debug>(
    timeout: Duration,
    what: &str,
    mut get: impl FnMut() -> T,
    expected: T,
) {
    let start = Instant::now();
    loop {
        let value = get();
        if value == expected {
            return;
        }
        if start.elapsed() >= timeout {
            panic!("timed out after {timeout:?} waiting for {what} to be {expected:?}; last value {value:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A random generator whose seed is printed (shown when a test fails) and can be fixed
/// with `RINGPORT_TEST_SEED` to replay a failure.
pub fn rng() -> StdRng {
    let seed = std::env::var("RINGPORT_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("random seed: RINGPORT_TEST_SEED={seed}");
    StdRng::seed_from_u64(seed)
}

/// `n` random bytes.
pub fn random_bytes(rng: &mut impl RngCore, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rng.fill_bytes(&mut v);
    v
}

/// What a [`Recorder`]-based handler saw, shared with the test.
#[derive(Debug, Default)]
pub struct Events {
    /// `on_open` calls.
    pub opened: AtomicUsize,
    /// `on_eof` calls.
    pub eofs: AtomicUsize,
    /// `on_drained` calls.
    pub drained: AtomicUsize,
    /// Every `on_close` reason, in call order.
    pub closes: Mutex<Vec<CloseReason>>,
    /// Every `on_connect_failed` call.
    pub connect_failures: Mutex<Vec<(u64, SocketAddr, CloseReason)>>,
}

impl Events {
    pub fn new() -> Arc<Events> {
        Arc::new(Events::default())
    }

    pub fn opened(&self) -> usize {
        self.opened.load(Ordering::SeqCst)
    }

    pub fn record_close(&self, reason: CloseReason) {
        self.closes.lock().unwrap().push(reason);
    }

    /// A copy of the close reasons recorded so far.
    pub fn reasons(&self) -> Vec<CloseReason> {
        self.closes.lock().unwrap().clone()
    }

    pub fn close_count(&self) -> usize {
        self.closes.lock().unwrap().len()
    }

    /// Wait until `n` closes were recorded and return their reasons.
    #[track_caller]
    pub fn wait_closes(&self, n: usize) -> Vec<CloseReason> {
        wait_for_value(
            WAIT,
            "the number of on_close calls",
            || self.close_count(),
            n,
        );
        self.reasons()
    }

    pub fn record_connect_failed(&self, token: u64, addr: SocketAddr, reason: CloseReason) {
        self.connect_failures
            .lock()
            .unwrap()
            .push((token, addr, reason));
    }

    pub fn connect_failures(&self) -> Vec<(u64, SocketAddr, CloseReason)> {
        self.connect_failures.lock().unwrap().clone()
    }
}

/// An echo handler: every byte received is sent back. It records its callbacks in
/// [`Events`]; on EOF it closes after flushing (the default behaviour).
#[derive(Debug, Clone)]
pub struct Echo {
    pub events: Arc<Events>,
}

impl Echo {
    pub fn new() -> (Echo, Arc<Events>) {
        let events = Events::new();
        (
            Echo {
                events: events.clone(),
            },
            events,
        )
    }
}

impl Handler for Echo {
    type Session = ();

    fn on_open(&self, _conn: &mut Conn) {
        self.events.opened.fetch_add(1, Ordering::SeqCst);
    }

    fn on_data(&self, _session: &mut (), conn: &mut Conn, data: &[u8]) {
        conn.send(data);
    }

    fn on_eof(&self, _session: &mut (), conn: &mut Conn) {
        self.events.eofs.fetch_add(1, Ordering::SeqCst);
        conn.close();
    }

    fn on_drained(&self, _session: &mut (), _conn: &mut Conn) {
        self.events.drained.fetch_add(1, Ordering::SeqCst);
    }

    fn on_close(&self, _session: (), _conn: &Conn, reason: CloseReason) {
        self.events.record_close(reason);
    }

    fn on_connect_failed(&self, token: u64, addr: SocketAddr, reason: CloseReason) {
        self.events.record_connect_failed(token, addr, reason);
    }
}

/// The backend the suite runs on: `RINGPORT_BACKEND` (CI runs the suite once per
/// backend), io_uring when unset.
pub fn backend_under_test() -> &'static str {
    match std::env::var("RINGPORT_BACKEND").as_deref() {
        Ok("poll") => "poll",
        _ => "uring",
    }
}

/// Start a two-worker server on 127.0.0.1:0 with `handler`; returns it and its address.
pub fn start_server<H: Handler>(handler: H) -> (Server<H>, SocketAddr) {
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .expect("resolve 127.0.0.1:0")
        .workers(2)
        .backlog(4096)
        .start(handler)
        .expect("start the server");
    let addr = server.local_addrs()[0];
    (server, addr)
}

/// Start a two-worker echo server on 127.0.0.1:0.
pub fn echo_server() -> (Server<Echo>, SocketAddr, Arc<Events>) {
    let (echo, events) = Echo::new();
    let (server, addr) = start_server(echo);
    (server, addr, events)
}

/// A blocking client connection with I/O timeouts and TCP_NODELAY.
#[track_caller]
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    setup_stream(&stream);
    stream
}

fn setup_stream(stream: &TcpStream) {
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
}

/// A blocking client connection that keeps the server from pushing much ahead of the
/// reader: a small receive buffer and an Ethernet-sized MSS (on loopback the MSS is
/// ~64 KiB, and the kernel would then accept megabytes per connection into its buffers).
/// Without reads, the kernel takes well under 100 KiB of a connection's data.
#[track_caller]
pub fn connect_slow_reader(addr: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .expect("create a socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket.set_mss(1400).expect("TCP_MAXSEG");
    socket
        .connect(&addr.into())
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let stream: TcpStream = socket.into();
    setup_stream(&stream);
    stream
}

/// Read exactly `n` bytes (panics on EOF, error or timeout).
#[track_caller]
pub fn read_n(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    stream
        .read_exact(&mut buf)
        .unwrap_or_else(|e| panic!("reading {n} bytes: {e}"));
    buf
}

/// Read until EOF (panics on error or timeout) and return everything read.
#[track_caller]
pub fn read_to_eof(stream: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    stream
        .read_to_end(&mut buf)
        .unwrap_or_else(|e| panic!("reading to EOF (got {} bytes): {e}", buf.len()));
    buf
}

/// Write all of `data` (panics on error or timeout).
#[track_caller]
pub fn write_all(stream: &mut TcpStream, data: &[u8]) {
    stream
        .write_all(data)
        .unwrap_or_else(|e| panic!("writing {} bytes: {e}", data.len()));
}

/// Send `data`, read the same number of bytes back and check they are identical.
#[track_caller]
pub fn echo_roundtrip(stream: &mut TcpStream, data: &[u8]) {
    write_all(stream, data);
    let back = read_n(stream, data.len());
    assert!(back == data, "the echo differs from what was sent");
}

/// How the peer ended a connection, as a blocking reader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Read returned 0.
    Eof,
    /// ECONNRESET (or another error that means the connection is gone).
    Reset,
}

/// Read until the connection ends; returns how it ended and the bytes read before.
/// Panics if it has not ended within [`IO_TIMEOUT`].
#[track_caller]
pub fn wait_ended(stream: &mut TcpStream) -> (Ending, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (Ending::Eof, got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                panic!(
                    "the connection was not closed within {IO_TIMEOUT:?} (read {} bytes)",
                    got.len()
                )
            }
            Err(_) => return (Ending::Reset, got),
        }
    }
}

/// Shut the write side of a blocking connection (send FIN).
pub fn shutdown_write(stream: &TcpStream) {
    stream.shutdown(Shutdown::Write).expect("shutdown(Write)");
}

/// A handler state shared between the engine and the test: implement `Handler` for
/// `Shared<YourState>` (the orphan rule forbids it for `Arc<YourState>`) and keep a clone.
#[derive(Debug, Default)]
pub struct Shared<T>(pub Arc<T>);

impl<T> Shared<T> {
    pub fn new(value: T) -> Shared<T> {
        Shared(Arc::new(value))
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<T> std::ops::Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// A blocking connection from `source` (a loopback address such as 127.0.0.2) to `addr`.
#[track_caller]
pub fn connect_from(source: &str, addr: SocketAddr) -> TcpStream {
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let local: SocketAddr = format!("{source}:0").parse().unwrap();
    sock.bind(&local.into()).unwrap();
    sock.connect(&addr.into()).unwrap();
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// Has the server closed this connection (EOF or reset) already? Does not block.
pub fn closed_by_server(s: &mut TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    let closed = match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
        ),
    };
    s.set_nonblocking(false).unwrap();
    closed
}

/// Write `wire` in random pieces of 1 to `max_piece` bytes from another thread while
/// reading the echo, which must be `wire` itself, byte for byte, until EOF.
pub fn expect_echo(addr: SocketAddr, wire: Vec<u8>, seed: u64, max_piece: usize) {
    let wire = Arc::new(wire);
    let mut stream = connect(addr);
    let mut writer_stream = stream.try_clone().unwrap();
    let to_write = wire.clone();
    let writer = std::thread::spawn(move || {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut off = 0;
        while off < to_write.len() {
            let n = rng.gen_range(1..=max_piece).min(to_write.len() - off);
            write_all(&mut writer_stream, &to_write[off..off + n]);
            off += n;
        }
        shutdown_write(&writer_stream);
    });
    let mut got = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf).expect("read the echo");
        if n == 0 {
            break;
        }
        assert!(
            got + n <= wire.len() && buf[..n] == wire[got..got + n],
            "echo differs within {got}..{}",
            got + n
        );
        got += n;
    }
    assert_eq!(got, wire.len(), "EOF before the whole echo");
    writer.join().unwrap();
}
