//! Listeners with their own settings: two protocols (handler, session type and codec) on
//! two ports of one server, admission limits and bans per listener on top of the
//! server-wide ones, and each listener's share of the statistics.

mod util;

use ringport::admission::IpNet;
use ringport::codec::{DelimitedCodec, Endian, LengthCodec};
use ringport::{
    Accept, CloseReason, Codec, Conn, FrameError, Handler, Incoming, Listener, Server, Stats,
};
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use util::*;

/// The "chat" protocol on its own port: lines in, `<n>:<LINE>` out, where n counts the
/// connection's lines (its session) and the line is upper-cased.
struct Chat {
    accepted_on: Arc<Mutex<Vec<usize>>>,
    closes: Arc<Mutex<Vec<CloseReason>>>,
}

impl Handler for Chat {
    type Session = u32;
    fn on_accept(&self, incoming: &Incoming) -> Accept {
        self.accepted_on.lock().unwrap().push(incoming.listener);
        Accept::Accept
    }
    fn on_open(&self, conn: &mut Conn) -> u32 {
        assert_eq!(conn.listener(), Some(1));
        0
    }
    fn on_data(&self, lines: &mut u32, conn: &mut Conn, line: &[u8]) {
        *lines += 1;
        let reply = format!("{lines}:{}", String::from_utf8_lossy(line).to_uppercase());
        conn.send_frame(reply.as_bytes()).unwrap();
    }
    fn on_close(&self, lines: u32, _conn: &Conn, reason: CloseReason) {
        assert!(lines > 0);
        self.closes.lock().unwrap().push(reason);
    }
}

/// The server's own handler: echoes each length-prefixed frame; counts its accepts.
struct FrameEcho {
    accepts: Arc<AtomicUsize>,
    closes: Arc<Mutex<Vec<CloseReason>>>,
}

impl Handler for FrameEcho {
    type Session = Vec<u8>;
    fn on_accept(&self, incoming: &Incoming) -> Accept {
        assert_ne!(incoming.listener, 1, "listener 1 has its own handler");
        self.accepts.fetch_add(1, Ordering::SeqCst);
        Accept::Accept
    }
    fn on_open(&self, _conn: &mut Conn) -> Vec<u8> {
        Vec::new()
    }
    fn on_data(&self, seen: &mut Vec<u8>, conn: &mut Conn, frame: &[u8]) {
        seen.extend_from_slice(frame);
        conn.send_frame(frame).unwrap();
    }
    fn on_close(&self, _seen: Vec<u8>, _conn: &Conn, reason: CloseReason) {
        self.closes.lock().unwrap().push(reason);
    }
}

fn length_codec() -> Codec {
    Codec::Length(LengthCodec::new(2, Endian::Big).unwrap())
}

fn lines_codec() -> Codec {
    Codec::Delimited(DelimitedCodec::lines().max_length(64))
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u16).to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

/// Read one `\n`-terminated line (without the newline).
fn read_line(s: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while s.read(&mut b).expect("a line") == 1 && b[0] != b'\n' {
        line.push(b[0]);
    }
    String::from_utf8(line).unwrap()
}

#[test]
fn two_protocols_on_two_ports_each_with_its_handler_and_codec() {
    let _w = watchdog("two_protocols", TEST_LIMIT);
    let (accepted_on, chat_closes) = (Arc::default(), Arc::default());
    let (accepts, echo_closes) = (Arc::new(AtomicUsize::new(0)), Arc::default());
    let chat = Chat {
        accepted_on: Arc::clone(&accepted_on),
        closes: Arc::clone(&chat_closes),
    };
    let echo = FrameEcho {
        accepts: accepts.clone(),
        closes: Arc::clone(&echo_closes),
    };
    let server = Server::builder()
        .workers(2)
        .codec(length_codec())
        .listener(Listener::bind("127.0.0.1:0").unwrap().name("frames"))
        .listener(
            Listener::bind("127.0.0.1:0")
                .unwrap()
                .name("chat")
                .handler(chat)
                .codec(lines_codec()),
        )
        .start(echo)
        .unwrap();
    let (frames_addr, chat_addr) = (server.local_addrs()[0], server.local_addrs()[1]);

    let mut f = connect(frames_addr);
    let mut c = connect(chat_addr);
    for i in 0..3 {
        let payload = format!("frame {i}");
        write_all(&mut f, &frame(payload.as_bytes()));
        assert_eq!(read_n(&mut f, payload.len() + 2), frame(payload.as_bytes()));
        write_all(&mut c, format!("hello {i}\n").as_bytes());
        assert_eq!(read_line(&mut c), format!("{}:HELLO {i}", i + 1));
    }
    // The chat port frames by lines: a line too long is its protocol error alone.
    write_all(&mut c, &[b'x'; 100]);
    wait_ended(&mut c); // panics unless the server ends it
    wait_for_value(WAIT, "chat closes", || chat_closes.lock().unwrap().len(), 1);
    let reason = chat_closes.lock().unwrap()[0];
    assert!(
        matches!(
            reason,
            CloseReason::Protocol(FrameError::LineTooLong { max: 64 })
        ),
        "{reason:?}"
    );
    drop(f);
    wait_for_value(WAIT, "echo closes", || echo_closes.lock().unwrap().len(), 1);
    assert_eq!(*accepted_on.lock().unwrap(), vec![1]);
    assert_eq!(accepts.load(Ordering::SeqCst), 1);

    let stats = server.stats();
    let (frames, chat) = (&stats.listeners[0], &stats.listeners[1]);
    assert_eq!(
        (frames.name.as_str(), chat.name.as_str()),
        ("frames", "chat")
    );
    assert_eq!(stats.listener("chat"), Some(chat));
    assert_eq!((frames.accepted, chat.accepted), (1, 1));
    assert_eq!((frames.open, chat.open), (0, 0));
    assert_eq!(frames.bytes_in, 3 * (2 + 7));
    assert_eq!(frames.bytes_out, frames.bytes_in);
    assert_eq!(chat.bytes_in, 3 * 8 + 100);
    assert_eq!(chat.bytes_out, 3 * "1:HELLO 0\n".len() as u64);
    assert_eq!(chat.closed_with(reason.name()), 1);
    assert_eq!(frames.closed_with("peer_closed"), 1);
    assert_eq!(stats.bytes_in, frames.bytes_in + chat.bytes_in);
    assert_eq!(stats.accepted, 2);
}

#[test]
fn outbound_connections_and_unnamed_listeners_use_the_servers_handler() {
    let _w = watchdog("outbound_routed", TEST_LIMIT);
    let (accepts, echo_closes) = (Arc::new(AtomicUsize::new(0)), Arc::default());
    let echo = FrameEcho {
        accepts: accepts.clone(),
        closes: Arc::clone(&echo_closes),
    };
    let chat = Chat {
        accepted_on: Arc::default(),
        closes: Arc::default(),
    };
    let server = Server::builder()
        .workers(1)
        .codec(length_codec())
        .listen("127.0.0.1:0")
        .unwrap()
        .listener(Listener::bind("127.0.0.1:0").unwrap().handler(chat))
        .start(echo)
        .unwrap();
    // The server connects to its own first listener: both ends run FrameEcho; nothing
    // is sent, so both stay open until the shutdown.
    server.connect(server.local_addrs()[0], 7).unwrap();
    wait_for_value(WAIT, "open", || server.stats().open, 2);
    assert_eq!(accepts.load(Ordering::SeqCst), 1);
    let stats = server.stats();
    assert_eq!(stats.listeners[0].name, server.local_addrs()[0].to_string());
    assert_eq!(
        stats.listeners[0].open, 1,
        "the outbound end is no listener's"
    );
    let report = server.shutdown(Duration::from_secs(2));
    assert_eq!(report.connections, 2);
    assert_eq!(echo_closes.lock().unwrap().len(), 2);
}

/// Wait until the server has closed this connection (it was refused).
#[track_caller]
fn assert_refused(s: &mut TcpStream) {
    wait_until(WAIT, "the server to close a refused connection", || {
        closed_by_server(s)
    });
}

fn echo_pair(build: impl FnOnce(Listener) -> Listener) -> (Server<Echo>, SocketAddr, SocketAddr) {
    let (echo, _events) = Echo::new();
    let server = Server::builder()
        .workers(2)
        .listener(Listener::bind("127.0.0.1:0").unwrap().name("public"))
        .listener(build(Listener::bind("127.0.0.1:0").unwrap().name("admin")))
        .start(echo)
        .unwrap();
    let (a, b) = (server.local_addrs()[0], server.local_addrs()[1]);
    (server, a, b)
}

fn counts(s: &Stats, name: &str) -> (u64, u64) {
    let l = s.listener(name).expect("a listener by that name");
    (l.open, l.refused)
}

#[test]
fn a_listeners_cap_holds_for_it_alone() {
    let _w = watchdog("listener_cap", TEST_LIMIT);
    let (server, public, admin) = echo_pair(|l| l.max_connections(2));
    let mut admins: Vec<TcpStream> = (0..3).map(|_| connect(admin)).collect();
    let publics: Vec<TcpStream> = (0..5).map(|_| connect(public)).collect();
    wait_for_value(
        WAIT,
        "admin open, refused",
        || counts(&server.stats(), "admin"),
        (2, 1),
    );
    wait_for_value(
        WAIT,
        "public open, refused",
        || counts(&server.stats(), "public"),
        (5, 0),
    );
    let stats = server.stats();
    assert_eq!(
        stats.refused_for("max_connections"),
        1,
        "counted globally too"
    );
    assert_eq!(
        stats
            .listener("admin")
            .unwrap()
            .refused_for("max_connections"),
        1
    );
    wait_until(WAIT, "one admin client closed", || {
        admins.iter_mut().any(closed_by_server)
    });
    let closed: Vec<usize> = (0..3)
        .filter(|&i| closed_by_server(&mut admins[i]))
        .collect();
    assert_eq!(closed.len(), 1, "exactly one admin client was refused");
    // A place frees up: the next admin connection is accepted.
    let keep = (0..3).find(|i| !closed.contains(i)).unwrap();
    admins.remove(keep);
    wait_for_value(WAIT, "admin open", || counts(&server.stats(), "admin").0, 1);
    let mut again = connect(admin);
    echo_roundtrip(&mut again, b"let in");
    assert_eq!(counts(&server.stats(), "admin"), (2, 1));
    drop(publics);
}

#[test]
fn a_ban_on_one_listener_leaves_the_other_open() {
    let _w = watchdog("listener_ban", TEST_LIMIT);
    let (server, public, admin) = echo_pair(|l| l);
    let loopback: IpNet = "127.0.0.0/8".parse().unwrap();
    server
        .deny_on(1, loopback, Some(Duration::from_millis(300)))
        .unwrap();
    assert!(server.deny_on(2, loopback, None).is_err(), "no listener 2");
    let mut banned = connect(admin);
    assert_refused(&mut banned);
    let mut ok = connect(public);
    echo_roundtrip(&mut ok, b"public still serves");
    let stats = server.stats();
    assert_eq!(stats.listener("admin").unwrap().refused_for("denied"), 1);
    assert_eq!(stats.listener("public").unwrap().refused, 0);
    // The ban expires: the admin port serves again.
    wait_until(WAIT, "the ban to expire", || {
        let mut s = connect(admin);
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        write_all(&mut s, b"x");
        let mut b = [0u8; 1];
        matches!(s.read(&mut b), Ok(1))
    });
    // A lasting ban, lifted by hand.
    let denied = || {
        server
            .stats()
            .listener("admin")
            .unwrap()
            .refused_for("denied")
    };
    let before = denied();
    server.deny_on(1, loopback, None).unwrap();
    assert_refused(&mut connect(admin));
    assert!(server.remove_deny_on(1, loopback).unwrap());
    echo_roundtrip(&mut connect(admin), b"lifted");
    assert_eq!(denied(), before + 1);
}

#[test]
fn a_listeners_allow_list_and_per_ip_limit_apply_to_it_only() {
    let _w = watchdog("listener_allow", TEST_LIMIT);
    let only: IpNet = "127.0.0.2/32".parse().unwrap();
    let (server, public, admin) = echo_pair(|l| l.allow(only).max_per_ip(1));
    // 127.0.0.1 is not on the admin allow list; 127.0.0.2 is, once at a time.
    let mut outsider = connect_from("127.0.0.1", admin);
    assert_refused(&mut outsider);
    let mut first = connect_from("127.0.0.2", admin);
    echo_roundtrip(&mut first, b"allowed");
    let mut second = connect_from("127.0.0.2", admin);
    assert_refused(&mut second);
    // The public port has neither limit.
    let mut p: Vec<TcpStream> = (0..2).map(|_| connect_from("127.0.0.2", public)).collect();
    p.push(connect_from("127.0.0.1", public));
    for s in &mut p {
        echo_roundtrip(s, b"no limits here");
    }
    let stats = server.stats();
    let admin_stats = stats.listener("admin").unwrap();
    assert_eq!(admin_stats.refused_for("not_allowed"), 1);
    assert_eq!(admin_stats.refused_for("max_per_ip"), 1);
    assert_eq!(admin_stats.accepted, 1);
    assert_eq!(stats.listener("public").unwrap().accepted, 3);
    assert_eq!(stats.refused, 2);
}

#[test]
fn listener_names_must_differ_and_a_forever_ban_lasts() {
    let _w = watchdog("listener_names", TEST_LIMIT);
    let (echo, _events) = Echo::new();
    let twice = Server::builder()
        .listener(Listener::bind("127.0.0.1:0").unwrap().name("same"))
        .listener(Listener::bind("127.0.0.1:0").unwrap().name("same"))
        .start(echo);
    assert!(
        matches!(twice, Err(ringport::Error::Config(ref why)) if why.contains("\"same\"")),
        "{:?}",
        twice.err()
    );
    let (server, public, admin) = echo_pair(|l| l);
    let loopback: IpNet = "127.0.0.0/8".parse().unwrap();
    server.deny(loopback, Some(Duration::MAX)); // no overflow: a lasting ban
    server.deny_on(1, loopback, Some(Duration::MAX)).unwrap();
    assert_refused(&mut connect(public));
    assert_refused(&mut connect(admin));
    assert!(server.remove_deny(loopback));
    echo_roundtrip(&mut connect(public), b"lifted");
}
