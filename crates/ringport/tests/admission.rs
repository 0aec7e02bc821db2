//! Admission control at accept: the connection cap, per-address accept rates, deny
//! lists and temporary bans. Refused connections are closed at once, run no callback of
//! the handler's, and are counted by reason.

mod util;

use ringport::admission::IpNet;
use ringport::{Server, Stats};
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use util::*;

fn echo_server_with(
    build: impl FnOnce(ringport::ServerBuilder) -> ringport::ServerBuilder,
) -> (Server<Echo>, SocketAddr, std::sync::Arc<Events>) {
    let (echo, events) = Echo::new();
    let builder = Server::builder().listen("127.0.0.1:0").unwrap().workers(2);
    let server = build(builder).start(echo).unwrap();
    let addr = server.local_addrs()[0];
    (server, addr, events)
}

#[test]
fn the_connection_cap_refuses_the_excess_and_frees_places_on_close() {
    let _w = watchdog("cap", TEST_LIMIT);
    let (server, addr, events) = echo_server_with(|b| b.max_connections(500).backlog(1024));
    let mut clients: Vec<TcpStream> = (0..600).map(|_| connect(addr)).collect();
    let connected = Instant::now();
    let counts = |s: &Stats| (s.open, s.refused, s.refused_for("max_connections"));
    wait_for_value(
        Duration::from_millis(500),
        "open, refused",
        || counts(&server.stats()),
        (500, 100, 100),
    );
    assert!(connected.elapsed() <= Duration::from_millis(500));
    assert_eq!(events.opened(), 500, "refused connections run no callback");

    // The 100 refused ones were closed by the server; the others are live.
    wait_until(WAIT, "refused clients see their close", || {
        clients
            .iter_mut()
            .map(closed_by_server)
            .filter(|c| *c)
            .count()
            == 100
    });
    clients.retain_mut(|s| !closed_by_server(s));
    assert_eq!(clients.len(), 500);
    echo_roundtrip(&mut clients[0], b"still served");

    // Close 50: 50 new connections get in, and the refusal count does not move.
    clients.truncate(450);
    wait_for_value(WAIT, "open", || server.stats().open, 450);
    let mut more: Vec<TcpStream> = (0..50).map(|_| connect(addr)).collect();
    wait_for_value(WAIT, "open", || server.stats().open, 500);
    for s in &mut more {
        echo_roundtrip(s, b"x");
    }
    assert_eq!(server.stats().refused, 100);
    drop((clients, more));
    server.shutdown(WAIT);
}

#[test]
fn a_per_address_accept_rate_limits_one_source_and_not_another() {
    let _w = watchdog("rate", TEST_LIMIT);
    let (server, addr, events) = echo_server_with(|b| b.accept_rate_per_ip(100.0, 20));
    let start = Instant::now();
    let window = Duration::from_secs(3);
    // From 127.0.0.2: about 1000 connects a second (several times the rate) for 3 s.
    let flood = std::thread::spawn(move || {
        let mut attempts: u64 = 0;
        while start.elapsed() < window {
            drop(connect_from("127.0.0.2", addr));
            attempts += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
        (attempts, start.elapsed())
    });
    // From 127.0.0.3: 30 polite connections over the same window, every one served.
    for _ in 0..30 {
        let mut s = connect_from("127.0.0.3", addr);
        echo_roundtrip(&mut s, b"polite");
        std::thread::sleep(Duration::from_millis(90));
    }
    let (attempts, flood_time) = flood.join().unwrap();
    let elapsed = flood_time.as_secs_f64();
    wait_until(WAIT, "every attempt accounted for", || {
        let s = server.stats();
        s.accepted + s.refused >= attempts + 30
    });
    let stats = server.stats();
    let from_flood = stats.accepted - 30;
    let allowed = (100.0 * elapsed).ceil() as u64 + 20;
    assert!(
        attempts > allowed,
        "the flood was too slow to test anything ({attempts})"
    );
    assert!(
        from_flood <= allowed,
        "{from_flood} accepted from 127.0.0.2 in {elapsed:.2} s, at most {allowed}"
    );
    assert!(
        from_flood >= 250,
        "the bucket let only {from_flood} through"
    );
    assert_eq!(stats.refused, stats.refused_for("rate_limited_per_ip"));
    assert_eq!(stats.refused, attempts - from_flood);
    assert!(events.opened() as u64 == stats.accepted);
    server.shutdown(WAIT);
}

#[test]
fn deny_lists_and_temporary_bans() {
    let _w = watchdog("deny", TEST_LIMIT);
    let denied: IpNet = "127.0.0.4/32".parse().unwrap();
    let (server, addr, _events) = echo_server_with(|b| b.deny(denied));
    let mut s = connect_from("127.0.0.4", addr);
    assert_eq!(wait_ended(&mut s), (Ending::Eof, vec![]));
    let mut ok = connect_from("127.0.0.6", addr);
    echo_roundtrip(&mut ok, b"not denied");
    wait_for_value(WAIT, "denied", || server.stats().refused_for("denied"), 1);

    // A ban of 300 ms on 127.0.0.5, set while running.
    let ban = Duration::from_millis(300);
    let banned_at = Instant::now();
    server.deny("127.0.0.5".parse().unwrap(), Some(ban));
    let mut s = connect_from("127.0.0.5", addr);
    assert_eq!(wait_ended(&mut s).0, Ending::Eof);
    // Retry until admitted: not before the ban ends, and soon after.
    let mut admitted = None;
    while banned_at.elapsed() < Duration::from_secs(5) {
        let mut s = connect_from("127.0.0.5", addr);
        std::io::Write::write_all(&mut s, b"ping").unwrap();
        let mut b = [0u8; 4];
        if s.read_exact(&mut b).is_ok() {
            admitted = Some(banned_at.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let admitted = admitted.expect("the ban never ended");
    assert!(
        admitted >= ban,
        "admitted after {admitted:?}, before the ban ended"
    );
    assert!(
        admitted < ban + Duration::from_secs(1),
        "admitted only after {admitted:?}"
    );
    assert!(server.stats().refused_for("denied") >= 2);
    // The permanent entry can be lifted.
    assert!(server.remove_deny(denied));
    let mut s = connect_from("127.0.0.4", addr);
    echo_roundtrip(&mut s, b"lifted");
    server.shutdown(WAIT);
}

#[test]
fn ipv6_peers_are_limited_per_prefix_over_loopback() {
    let _w = watchdog("ipv6", TEST_LIMIT);
    let (echo, _events) = Echo::new();
    let server = Server::builder()
        .listen("[::1]:0")
        .unwrap()
        .workers(2)
        .max_per_ip(2)
        .start(echo)
        .unwrap();
    let addr = server.local_addrs()[0];
    assert!(addr.is_ipv6());
    let mut a = connect(addr);
    let mut b = connect(addr);
    echo_roundtrip(&mut a, b"one");
    echo_roundtrip(&mut b, b"two");
    // ::1 is the only loopback IPv6 address: the third connection from its /64 is over.
    let mut c = connect(addr);
    assert_eq!(wait_ended(&mut c).0, Ending::Eof);
    wait_for_value(
        WAIT,
        "refused for max_per_ip",
        || server.stats().refused_for("max_per_ip"),
        1,
    );
    drop(a);
    wait_for_value(WAIT, "open", || server.stats().open, 1);
    let mut d = connect(addr);
    echo_roundtrip(&mut d, b"room again");
    drop((b, d));
    server.shutdown(WAIT);
}
