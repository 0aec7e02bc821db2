//! Datagram sockets on the engine (`ServerBuilder::udp`), on the backend under test:
//! echo of datagrams of random sizes up to 65,507 bytes (zero-length ones included)
//! from many client sockets, intact; a datagram too long for the buffers reported
//! truncated and never delivered as if whole; sends from another thread; IPv6; the
//! per-socket send queue bound (drop-newest, counted).

mod util;

use rand::{Rng, SeedableRng};
use ringport::udp::{DatagramHandler, Udp, UdpCtx};
use ringport::Server;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use util::{wait_for_value, watchdog, TEST_LIMIT, WAIT};

struct Echo;

impl DatagramHandler for Echo {
    fn on_datagram(&self, socket: &mut UdpCtx<'_>, from: SocketAddr, data: &[u8]) {
        socket.send_to(from, data);
    }
}

/// A `()` TCP handler for servers that only serve datagrams.
struct NoTcp;

impl ringport::Handler for NoTcp {
    type Session = ();
    fn on_open(&self, _conn: &mut ringport::Conn) {}
    fn on_data(&self, _s: &mut (), _conn: &mut ringport::Conn, _data: &[u8]) {}
    fn on_close(&self, _s: (), _conn: &ringport::Conn, _why: ringport::CloseReason) {}
}

fn client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    s
}

/// Send `payload` to `to` and wait for it to come back (resent up to 5 times on loss).
fn round_trip(s: &UdpSocket, to: SocketAddr, payload: &[u8], buf: &mut [u8]) {
    for _ in 0..5 {
        s.send_to(payload, to).unwrap();
        match s.recv_from(buf) {
            Ok((n, from)) => {
                assert_eq!(from, to);
                assert_eq!(
                    &buf[..n],
                    payload,
                    "{} bytes came back changed",
                    payload.len()
                );
                return;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => panic!("recv: {e}"),
        }
    }
    panic!("no echo of {} bytes after 5 tries", payload.len());
}

#[test]
fn datagrams_of_every_size_are_echoed_intact() {
    let _w = watchdog("udp-echo", TEST_LIMIT);
    let server = Server::builder()
        .workers(2)
        .udp(Udp::bind("127.0.0.1:0", Echo).unwrap())
        .start(NoTcp)
        .unwrap();
    let to = server.udp_addrs()[0];
    const SOCKETS: usize = 100;
    const EACH: usize = 100;
    let threads: Vec<_> = (0..10)
        .map(|t| {
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(t as u64);
                let mut buf = vec![0u8; 65_536];
                for _ in 0..SOCKETS / 10 {
                    let s = client();
                    for i in 0..EACH {
                        let n = match i {
                            0 => 0,
                            1 => 65_507,
                            _ => rng.gen_range(0..=65_507),
                        };
                        let payload: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
                        round_trip(&s, to, &payload, &mut buf);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a client thread failed");
    }
    let stats = server.stats();
    assert!(stats.datagrams_in >= (SOCKETS * EACH) as u64, "{stats}");
    assert_eq!(stats.datagrams_truncated, 0);
    let report = server.shutdown(WAIT);
    assert_eq!(report.stats.datagrams_out, report.stats.datagrams_in);
}

#[derive(Default)]
struct Record {
    whole: Mutex<Vec<Vec<u8>>>,
    cut: Mutex<Vec<Vec<u8>>>,
}

struct Recorder(Arc<Record>);

impl DatagramHandler for Recorder {
    fn on_datagram(&self, _socket: &mut UdpCtx<'_>, _from: SocketAddr, data: &[u8]) {
        self.0.whole.lock().unwrap().push(data.to_vec());
    }
    fn on_truncated(&self, _socket: &mut UdpCtx<'_>, _from: SocketAddr, data: &[u8]) {
        self.0.cut.lock().unwrap().push(data.to_vec());
    }
}

#[test]
fn a_datagram_too_long_for_the_buffers_is_reported_truncated() {
    let _w = watchdog("udp-truncated", TEST_LIMIT);
    let record = Arc::new(Record::default());
    let server = Server::builder()
        .workers(1)
        .datagram_buffers(8, 1024)
        .udp(Udp::bind("127.0.0.1:0", Recorder(record.clone())).unwrap())
        .start(NoTcp)
        .unwrap();
    let to = server.udp_addrs()[0];
    let s = client();
    let long: Vec<u8> = (0..3000).map(|i| i as u8).collect();
    s.send_to(&long, to).unwrap();
    s.send_to(&long[..1024], to).unwrap();
    wait_for_value(WAIT, "datagrams seen", || server.stats().datagrams_in, 1);
    wait_for_value(WAIT, "truncated", || server.stats().datagrams_truncated, 1);
    assert_eq!(*record.cut.lock().unwrap(), vec![long[..1024].to_vec()]);
    assert_eq!(*record.whole.lock().unwrap(), vec![long[..1024].to_vec()]);
}

#[test]
fn sends_from_another_thread_leave_from_each_worker() {
    let _w = watchdog("udp-handles", TEST_LIMIT);
    let record = Arc::new(Record::default());
    let server = Server::builder()
        .workers(2)
        .udp(Udp::bind("127.0.0.1:0", Recorder(record)).unwrap())
        .start(NoTcp)
        .unwrap();
    let s = client();
    let me = s.local_addr().unwrap();
    for worker in 0..2 {
        let handle = server
            .udp_socket(0, worker)
            .expect("a socket on each worker");
        handle.send_to(me, format!("from worker {worker}")).unwrap();
    }
    assert!(server.udp_socket(1, 0).is_none() && server.udp_socket(0, 2).is_none());
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    for _ in 0..2 {
        let (n, from) = s.recv_from(&mut buf).expect("a datagram from the server");
        assert_eq!(from.port(), server.udp_addrs()[0].port());
        got.push(String::from_utf8(buf[..n].to_vec()).unwrap());
    }
    got.sort();
    assert_eq!(got, ["from worker 0", "from worker 1"]);
    wait_for_value(WAIT, "datagrams sent", || server.stats().datagrams_out, 2);
}

#[test]
fn ipv6_datagrams_are_echoed() {
    let _w = watchdog("udp-v6", TEST_LIMIT);
    let Ok(probe) = UdpSocket::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback here; skipped");
        return;
    };
    drop(probe);
    let server = Server::builder()
        .workers(1)
        .udp(Udp::bind("[::1]:0", Echo).unwrap())
        .start(NoTcp)
        .unwrap();
    let to = server.udp_addrs()[0];
    assert!(to.is_ipv6());
    let s = UdpSocket::bind("[::1]:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 64];
    round_trip(&s, to, b"over IPv6", &mut buf);
}

/// Answers each datagram with ten of 500 bytes.
struct Burst;

impl DatagramHandler for Burst {
    fn on_datagram(&self, socket: &mut UdpCtx<'_>, from: SocketAddr, _data: &[u8]) {
        for i in 0..10u8 {
            socket.send_to(from, &[i; 500]);
        }
    }
}

#[test]
fn a_run_of_equal_datagrams_to_one_peer_arrives_whole_and_in_order() {
    let _w = watchdog("udp-gso", TEST_LIMIT);
    let server = Server::builder()
        .workers(1)
        .udp(Udp::bind("127.0.0.1:0", Burst).unwrap())
        .start(NoTcp)
        .unwrap();
    let s = client();
    s.send_to(b"go", server.udp_addrs()[0]).unwrap();
    let mut buf = [0u8; 600];
    for i in 0..10u8 {
        let (n, _) = s.recv_from(&mut buf).expect("ten datagrams");
        assert_eq!(
            &buf[..n],
            &[i; 500][..],
            "datagram {i}: one GSO send is cut back into them"
        );
    }
    wait_for_value(WAIT, "sent", || server.stats().datagrams_out, 10);
}

#[test]
fn datagrams_beyond_the_send_queue_bound_are_dropped_and_counted() {
    let _w = watchdog("udp-bound", TEST_LIMIT);
    let server = Server::builder()
        .workers(1)
        .udp(
            Udp::bind("127.0.0.1:0", Burst)
                .unwrap()
                .send_queue_bytes(1000),
        )
        .start(NoTcp)
        .unwrap();
    let s = client();
    s.send_to(b"go", server.udp_addrs()[0]).unwrap();
    wait_for_value(WAIT, "dropped", || server.stats().datagrams_dropped, 8);
    wait_for_value(WAIT, "sent", || server.stats().datagrams_out, 2);
    let mut buf = [0u8; 600];
    for i in 0..2u8 {
        let (n, _) = s.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[i; 500][..], "the first two, in order");
    }
    assert_eq!(
        server.stats().datagrams_out,
        2,
        "no more than the bound allowed"
    );
}

#[test]
fn deny_lists_and_per_source_rates_drop_datagrams_before_the_handler() {
    let _w = watchdog("udp-admission", TEST_LIMIT);
    let server = Server::builder()
        .workers(2)
        .udp(
            Udp::bind("127.0.0.1:0", Echo)
                .unwrap()
                .deny("127.0.0.2".parse().unwrap())
                .rate_per_source(0.01, 3),
        )
        .start(NoTcp)
        .unwrap();
    let to = server.udp_addrs()[0];
    let denied = UdpSocket::bind("127.0.0.2:0").unwrap();
    denied.send_to(b"let me in", to).unwrap();
    wait_for_value(WAIT, "denied", || server.stats().datagrams_denied, 1);

    let s = client();
    for i in 0..10u8 {
        s.send_to(&[i], to).unwrap();
    }
    wait_for_value(
        WAIT,
        "rate-limited",
        || server.stats().datagrams_rate_limited,
        7,
    );
    let mut buf = [0u8; 8];
    for i in 0..3u8 {
        let (n, _) = s.recv_from(&mut buf).expect("the burst's echoes");
        assert_eq!(&buf[..n], &[i]);
    }
    assert_eq!(
        server.stats().datagrams_in,
        3,
        "only the burst reached the handler"
    );
}

#[derive(Default)]
struct ClientRecord {
    got: Mutex<Vec<(SocketAddr, Vec<u8>)>>,
    errors: Mutex<Vec<ringport::udp::UdpError>>,
}

struct ClientSide(Arc<ClientRecord>);

impl DatagramHandler for ClientSide {
    fn on_datagram(&self, _socket: &mut UdpCtx<'_>, from: SocketAddr, data: &[u8]) {
        self.0.got.lock().unwrap().push((from, data.to_vec()));
    }
    fn on_error(&self, _socket: &mut UdpCtx<'_>, error: ringport::udp::UdpError) {
        self.0.errors.lock().unwrap().push(error);
    }
}

#[test]
fn a_connected_client_socket_talks_to_its_peer_and_hears_icmp_refusals() {
    let _w = watchdog("udp-client", TEST_LIMIT);
    let server = Server::builder()
        .workers(1)
        .udp(Udp::bind("127.0.0.1:0", Echo).unwrap())
        .start(NoTcp)
        .unwrap();
    let peer = server.udp_addrs()[0];
    // A port nobody listens on (bound, noted, closed).
    let gone = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let record = Arc::new(ClientRecord::default());
    let client = ringport::Client::builder()
        .workers(2)
        .udp(Udp::connect(peer, ClientSide(record.clone())))
        .udp(Udp::connect(gone, ClientSide(record.clone())).on_worker(1))
        .start(NoTcp)
        .unwrap();
    assert!(
        client.udp_socket(0, 1).is_none(),
        "a connected socket lives on one worker"
    );
    let to_peer = client.udp_socket(0, 0).unwrap();
    to_peer.send_to(peer, &b"ping"[..]).unwrap();
    util::wait_until(WAIT, "the echo", || !record.got.lock().unwrap().is_empty());
    assert_eq!(record.got.lock().unwrap()[0], (peer, b"ping".to_vec()));

    let to_gone = client.udp_socket(1, 1).unwrap();
    for round in 1..=2 {
        to_gone.send_to(gone, &b"anyone?"[..]).unwrap();
        util::wait_until(WAIT, "the refusal", || {
            record.errors.lock().unwrap().len() == round
        });
    }
    let errors = record.errors.lock().unwrap().clone();
    assert_eq!(
        errors,
        vec![ringport::udp::UdpError::Refused; 2],
        "and still receiving"
    );
    assert_eq!(client.stats().datagram_errors, 2);
}

#[test]
fn a_socket_joined_to_a_multicast_group_handles_each_datagram_once() {
    use std::net::Ipv4Addr;
    let _w = watchdog("udp-multicast", TEST_LIMIT);
    let group = Ipv4Addr::new(239, 255, 42, 7);
    let record = Arc::new(Record::default());
    let server = Server::builder()
        .workers(2)
        .udp(
            Udp::bind("0.0.0.0:0", Recorder(record.clone()))
                .unwrap()
                .join_multicast_v4(group, Ipv4Addr::LOCALHOST),
        )
        .start(NoTcp)
        .unwrap();
    let port = server.udp_addrs()[0].port();
    let sender = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    sender.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    sender.set_multicast_loop_v4(true).unwrap();
    let to: SocketAddr = (group, port).into();
    for i in 0..5u8 {
        sender.send_to(&[i], &to.into()).unwrap();
    }
    wait_for_value(WAIT, "datagrams", || server.stats().datagrams_in, 5);
    let got = record.whole.lock().unwrap().clone();
    assert_eq!(
        got,
        (0..5u8).map(|i| vec![i]).collect::<Vec<_>>(),
        "each once, in order"
    );
}
