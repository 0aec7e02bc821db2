//! The three socket-notification examples, run as their real binaries on the backend
//! under test (`RINGPORT_BACKEND`, which they inherit) and driven over real sockets:
//! - `poll_replacement` and `oneshot_workers`: 20 concurrent TCP clients, each sending
//!   200 messages of random sizes (1 B to 16 KiB) and reading each back byte for byte,
//!   plus one client sending 16 MiB without reading until the server has stopped reading
//!   (so the server's writes come out partial), then reading it all back; every client
//!   then half-closes and must see the server close, and the server must end with as
//!   many descriptors open as it started with.
//! - `edge_udp`: 8 UDP clients, each sending 500 numbered datagrams of 0 to 1200 bytes in
//!   lock-step (one at a time, resent after a timeout at most 3 times), each echo intact.
//!
//! `cargo test --test notify_examples` does not build examples, so the first test to
//! need them builds them (a no-op when they are up to date) with the profile and
//! features this test was built with.

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use socket2::{Domain, Socket, Type};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

/// Read and write timeout of every client socket: a server that stops answering fails
/// the test instead of hanging it.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a UDP client waits for an echo before sending its datagram again.
const UDP_WAIT: Duration = Duration::from_secs(1);
const UDP_RESENDS: usize = 3;
/// What the bulk client sends: more than loopback's socket buffers hold between client
/// and server (about 5 MiB with Linux's default `tcp_wmem` maximum of 4 MiB), so the
/// server's echo cannot all be written while the client is not reading.
const BULK: usize = 16 << 20;

#[path = "util/examples.rs"]
mod examples;
use examples::Example;

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to the example");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Half-close and expect the server to close its side with nothing more sent.
fn expect_server_close(mut s: TcpStream, who: &str) {
    s.shutdown(Shutdown::Write).expect("half-close");
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)
        .unwrap_or_else(|e| panic!("{who}: waiting for the server to close: {e}"));
    assert!(
        rest.is_empty(),
        "{who}: {} bytes after the echo",
        rest.len()
    );
}

/// Send `messages` random messages one at a time, each read back before the next.
fn message_client(addr: SocketAddr, seed: u64, messages: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut s = connect(addr);
    let mut back = Vec::new();
    for m in 0..messages {
        let mut msg = vec![0u8; rng.gen_range(1..=16 * 1024)];
        rng.fill_bytes(&mut msg);
        s.write_all(&msg)
            .unwrap_or_else(|e| panic!("client {seed}, message {m}: write: {e}"));
        back.resize(msg.len(), 0);
        s.read_exact(&mut back)
            .unwrap_or_else(|e| panic!("client {seed}, message {m}: read: {e}"));
        assert!(back == msg, "client {seed}, message {m}: the echo differs");
    }
    expect_server_close(s, &format!("client {seed}"));
}

/// Send `len` bytes and read them back, with the server's writes made to go partial:
/// small client buffers, and nothing read until the server has stopped reading too
/// (non-blocking writes have made no progress for `STALL`). The client not reading,
/// the server cannot write its echo out, so it keeps the rest and waits for writable,
/// reading nothing meanwhile. Then the rest is written by a thread while this one reads
/// everything back. (Should the stall not come, the check is the same, only weaker.)
fn bulk_client(addr: SocketAddr, seed: u64, len: usize) {
    const STALL: Duration = Duration::from_millis(100);
    let mut data = vec![0u8; len];
    StdRng::seed_from_u64(seed).fill_bytes(&mut data);
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
    socket.set_recv_buffer_size(64 << 10).unwrap();
    socket.set_send_buffer_size(64 << 10).unwrap();
    socket
        .connect(&addr.into())
        .expect("connect to the example");
    let mut s = TcpStream::from(socket);
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();

    s.set_nonblocking(true).unwrap();
    let mut sent = 0;
    let mut progress = Instant::now();
    while sent < len && progress.elapsed() < STALL {
        match s.write(&data[sent..]) {
            Ok(n) => {
                sent += n;
                progress = Instant::now();
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(STALL / 20),
            Err(e) => panic!("bulk client: write: {e}"),
        }
    }
    s.set_nonblocking(false).unwrap();
    eprintln!("bulk client: {sent} bytes in before the server stopped reading");

    let mut writer = s.try_clone().expect("clone the stream");
    let rest = data[sent..].to_vec();
    let write = thread::spawn(move || writer.write_all(&rest));
    let mut back = vec![0u8; len];
    let got = s.read_exact(&mut back);
    let wrote = write.join().expect("the writer thread");
    wrote.unwrap_or_else(|e| panic!("bulk client: write: {e}"));
    got.unwrap_or_else(|e| panic!("bulk client: read: {e}"));
    if let Some(at) = back.iter().zip(&data).position(|(a, b)| a != b) {
        panic!("bulk client: the echo differs from byte {at} on");
    }
    expect_server_close(s, "bulk client");
}

/// The TCP scenario against a running echo example.
fn echo_over_tcp(example: &Example) {
    let started = Instant::now();
    let fds_before = example.open_fds();
    let addr = example.addr;
    let mut clients: Vec<_> = (0..20u64)
        .map(|i| thread::spawn(move || message_client(addr, 0x5eed_0000 + i, 200)))
        .collect();
    clients.push(thread::spawn(move || bulk_client(addr, 0xb16, BULK)));
    for client in clients {
        if let Err(panic) = client.join() {
            std::panic::resume_unwind(panic);
        }
    }
    // Every client saw its connection closed: the server dropped every socket.
    let until = Instant::now() + Duration::from_secs(5);
    while example.open_fds() != fds_before && Instant::now() < until {
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        example.open_fds(),
        fds_before,
        "{}: descriptors",
        example.name
    );
    eprintln!("{}: TCP echo in {:?}", example.name, started.elapsed());
}

#[test]
fn poll_replacement_echoes_every_byte() {
    let example = Example::start("poll_replacement");
    echo_over_tcp(&example);
}

#[test]
fn oneshot_workers_echo_every_byte() {
    let example = Example::start("oneshot_workers");
    echo_over_tcp(&example);
}

/// Send `count` datagrams one at a time, each echoed intact before the next goes;
/// returns how many were sent again after a timeout.
fn datagram_client(server: SocketAddr, client: u64, count: u32) -> usize {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind a client socket");
    s.connect(server).expect("connect the client socket");
    s.set_read_timeout(Some(UDP_WAIT)).unwrap();
    let mut rng = StdRng::seed_from_u64(client);
    let mut buf = [0u8; 2048];
    // Payloads sent more than once: their late duplicates may still come in.
    let mut resent: Vec<Vec<u8>> = Vec::new();
    let mut resends = 0;
    for seq in 0..count {
        let mut msg = vec![0u8; rng.gen_range(0..=1200)];
        rng.fill_bytes(&mut msg);
        // Numbered where there is room for it: client, then sequence number.
        let number = [client.to_be_bytes(), u64::from(seq).to_be_bytes()].concat();
        let room = msg.len().min(number.len());
        msg[..room].copy_from_slice(&number[..room]);
        let mut tries = 0;
        'send: loop {
            s.send(&msg).expect("send a datagram");
            loop {
                match s.recv(&mut buf) {
                    Ok(n) if buf[..n] == msg[..] => break 'send,
                    Ok(n) if resent.iter().any(|r| r[..] == buf[..n]) => continue,
                    Ok(n) => panic!("client {client}, datagram {seq}: a {n}-byte echo differs"),
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        break;
                    }
                    Err(e) => panic!("client {client}, datagram {seq}: {e}"),
                }
            }
            tries += 1;
            resends += 1;
            assert!(
                tries <= UDP_RESENDS,
                "client {client}, datagram {seq}: no echo after {tries} sends"
            );
            if tries == 1 {
                resent.push(msg.clone());
            }
        }
    }
    resends
}

#[test]
fn edge_udp_echoes_every_datagram() {
    let example = Example::start("edge_udp");
    let started = Instant::now();
    let server = example.addr;
    let clients: Vec<_> = (1..=8u64)
        .map(|c| thread::spawn(move || datagram_client(server, c, 500)))
        .collect();
    let mut resends = 0;
    for client in clients {
        match client.join() {
            Ok(n) => resends += n,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
    eprintln!(
        "edge_udp: 8 x 500 datagrams in {:?}, {resends} sent again",
        started.elapsed()
    );
}
