//! The Prometheus endpoint over real sockets: a `MetricsServer` fed from a running echo
//! server's stats, scraped with plain HTTP/1.1 on a blocking `std::net::TcpStream`.

mod util;

use ringport::metrics::{
    MetricsServer, DEFAULT_MAX_PER_IP, DEFAULT_REQUEST_DEADLINE, MAX_REQUEST_HEAD,
};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};
use util::*;

/// One HTTP exchange: the status code, the header lines and the body.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<String>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|h| {
            let (n, v) = h.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Send `request` as is, read until the server closes, parse the response.
#[track_caller]
fn exchange(addr: SocketAddr, request: &[u8]) -> Response {
    let mut stream = connect(addr);
    write_all(&mut stream, request);
    let raw = read_to_eof(&mut stream);
    parse(&raw)
}

#[track_caller]
fn parse(raw: &[u8]) -> Response {
    let text = String::from_utf8(raw.to_vec()).expect("a UTF-8 response");
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {text:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let r = Response {
        status,
        headers: lines.map(str::to_string).collect(),
        body: body.to_string(),
    };
    assert_eq!(r.header("Connection"), Some("close"), "{r:?}");
    let length: usize = r
        .header("Content-Length")
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("no Content-Length in {r:?}"));
    if !r.body.is_empty() {
        assert_eq!(length, r.body.len(), "Content-Length against the body");
    }
    r
}

fn get(addr: SocketAddr, path: &str) -> Response {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nUser-Agent: ringport-tests\r\n\r\n")
            .as_bytes(),
    )
}

/// The value of the sample `series` (name with labels) in a scrape.
fn sample(body: &str, series: &str) -> Option<u64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

#[test]
fn a_scrape_shows_the_echo_servers_live_counters() {
    let _w = watchdog("scrape", TEST_LIMIT);
    let (server, addr, events) = echo_server();
    let server = Arc::new(server);
    let source = Arc::clone(&server);
    let metrics = MetricsServer::start("127.0.0.1:0".parse().unwrap(), move || source.stats())
        .expect("start the metrics endpoint");
    let maddr = metrics.local_addr();
    assert_ne!(maddr.port(), 0, "port 0 is resolved");

    let mut a = connect(addr);
    let mut b = connect(addr);
    echo_roundtrip(&mut a, b"hello metrics");
    echo_roundtrip(&mut b, &[7u8; 1000]);
    drop(a);
    events.wait_closes(1);

    let mut last = String::new();
    wait_until(
        WAIT,
        "the scrape shows 2 accepted, 1 open, 1 closed",
        || {
            let r = get(maddr, "/metrics");
            assert_eq!(r.status, 200, "{r:?}");
            assert_eq!(
                r.header("Content-Type"),
                Some("text/plain; version=0.0.4"),
                "{r:?}"
            );
            last = r.body;
            sample(&last, "ringport_accepted_total") == Some(2)
                && sample(&last, "ringport_open_connections") == Some(1)
                && sample(&last, "ringport_closed_total{reason=\"peer_closed\"}") == Some(1)
                && sample(&last, "ringport_received_bytes_total") == Some(1013)
                && sample(&last, "ringport_sent_bytes_total") == Some(1013)
        },
    );
    for series in [
        "ringport_queued_bytes",
        "ringport_refused_total{reason=\"max_connections\"}",
        "ringport_timeouts_fired_total",
        "ringport_slow_readers_total",
        "ringport_accept_errors_total",
    ] {
        assert_eq!(sample(&last, series), Some(0), "{series} in:\n{last}");
    }
    let backend = format!(
        "ringport_backend_info{{backend=\"{}\"}}",
        backend_under_test()
    );
    assert_eq!(sample(&last, &backend), Some(1), "{last}");
    assert!(last.contains("# TYPE ringport_accepted_total counter\n"));
    assert!(last.contains("# TYPE ringport_open_connections gauge\n"));

    // `/` answers the same; HEAD has the headers only.
    let root = get(maddr, "/");
    assert_eq!(root.status, 200);
    assert!(root.body.contains("ringport_accepted_total"));
    let head = exchange(maddr, b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert!(
        head.header("Content-Length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 0
    );

    metrics.shutdown();
    drop(b);
    let server = Arc::try_unwrap(server)
        .unwrap_or_else(|_| panic!("the endpoint let go of the stats source on shutdown"));
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn wrong_paths_methods_and_malformed_heads_get_their_status() {
    let _w = watchdog("statuses", TEST_LIMIT);
    let metrics = MetricsServer::start("127.0.0.1:0".parse().unwrap(), Default::default)
        .expect("start the metrics endpoint");
    let addr = metrics.local_addr();

    assert_eq!(get(addr, "/nope").status, 404);
    let post = exchange(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(post.status, 405, "{post:?}");
    assert_eq!(post.header("Allow"), Some("GET, HEAD"));
    // A body after the head is read and dropped: the answer arrives intact.
    let mut with_body = b"PUT /metrics HTTP/1.1\r\nContent-Length: 200000\r\n\r\n".to_vec();
    with_body.resize(with_body.len() + 200_000, b'b');
    assert_eq!(exchange(addr, &with_body).status, 405);
    assert_eq!(exchange(addr, b"hello there\r\n\r\n").status, 400);
    assert_eq!(exchange(addr, b"GET metrics HTTP/1.1\r\n\r\n").status, 400);

    // A head that fills the limit without ending: 431, and the server closes.
    let mut long = b"GET /metrics HTTP/1.1\r\nX-Filler: ".to_vec();
    long.resize(MAX_REQUEST_HEAD, b'a');
    assert_eq!(exchange(addr, &long).status, 431);

    // The endpoint still serves afterwards.
    assert_eq!(get(addr, "/metrics").status, 200);
    metrics.shutdown();
}

#[test]
fn a_request_head_in_single_bytes_is_answered_once_complete() {
    let _w = watchdog("bytewise", TEST_LIMIT);
    let metrics = MetricsServer::start("127.0.0.1:0".parse().unwrap(), Default::default)
        .expect("start the metrics endpoint");
    let mut stream = connect(metrics.local_addr());
    let request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    let (last, first) = request.split_last().unwrap();
    for byte in first {
        write_all(&mut stream, std::slice::from_ref(byte));
    }
    // Nothing is answered before the blank line is complete.
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut probe = [0u8; 1];
    loop {
        match stream.read(&mut probe) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            other => panic!("answered before the head was complete: {other:?}"),
        }
    }
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.write_all(std::slice::from_ref(last)).unwrap();
    let r = parse(&read_to_eof(&mut stream));
    assert_eq!(r.status, 200);
    assert!(r.body.contains("ringport_backend_info"));
    metrics.shutdown();
}

#[test]
fn after_shutdown_the_port_refuses_connections() {
    let _w = watchdog("shutdown", TEST_LIMIT);
    let metrics = MetricsServer::start("127.0.0.1:0".parse().unwrap(), Default::default)
        .expect("start the metrics endpoint");
    let addr = metrics.local_addr();
    assert_eq!(get(addr, "/metrics").status, 200);
    assert!(format!("{metrics:?}").contains(&addr.to_string()));
    metrics.shutdown();
    let err = TcpStream::connect(addr).expect_err("nothing listens after shutdown");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

/// A request head that never ends: the line, then a header growing forever.
const TRICKLE: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: test\r\nX-Slow: ";

/// One trickling client: when it connected and when it saw the server end it.
#[derive(Debug)]
struct Trickled {
    connected: Instant,
    ended: Option<Instant>,
}

/// `per_source` clients from each of `sources` (loopback addresses), connected before
/// this returns, then fed one byte each per `every` from a thread for at most `run_for`
/// (or until the server has ended all of them); the thread returns what it saw.
fn trickle(
    addr: SocketAddr,
    sources: &[String],
    per_source: usize,
    every: Duration,
    run_for: Duration,
) -> std::thread::JoinHandle<Vec<Trickled>> {
    let mut clients = Vec::new();
    for _ in 0..per_source {
        for source in sources {
            let connected = Instant::now();
            let stream = connect_from(source, addr);
            stream.set_nonblocking(true).unwrap();
            clients.push((stream, connected, 0usize, connected));
        }
    }
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut ended: Vec<Option<Instant>> = vec![None; clients.len()];
        while start.elapsed() < run_for && ended.iter().any(Option::is_none) {
            let now = Instant::now();
            for (i, (stream, _, sent, next)) in clients.iter_mut().enumerate() {
                if ended[i].is_some() {
                    continue;
                }
                let mut buf = [0u8; 512];
                let gone = match stream.read(&mut buf) {
                    Ok(0) => true,
                    Ok(_) => false, // an answer would be a test failure, seen below
                    Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted),
                };
                if gone {
                    ended[i] = Some(now);
                    continue;
                }
                if now >= *next {
                    let byte = TRICKLE.get(*sent).copied().unwrap_or(b'a');
                    match stream.write(&[byte]) {
                        Ok(_) => *sent += 1,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(_) => ended[i] = Some(now),
                    }
                    *next += every;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        clients
            .iter()
            .zip(ended)
            .map(|((_, connected, _, _), ended)| Trickled {
                connected: *connected,
                ended,
            })
            .collect()
    })
}

/// `127.0.0.1` to `127.0.0.n`.
fn loopbacks(n: u8) -> Vec<String> {
    (1..=n).map(|i| format!("127.0.0.{i}")).collect()
}

/// A GET of `/metrics` from `source`: the status, or `None` if the connection was
/// refused (closed or reset before any answer).
fn scrape_from(source: &str, addr: SocketAddr) -> Option<u16> {
    let mut s = connect_from(source, addr);
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    if s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .is_err()
    {
        return None;
    }
    let mut raw = Vec::new();
    match s.read_to_end(&mut raw) {
        Ok(_) if !raw.is_empty() => Some(parse(&raw).status),
        _ => None,
    }
}

#[test]
fn three_hundred_tricklers_do_not_lock_scrapes_out_and_are_closed_by_the_deadline() {
    let _w = watchdog("tricklers", TEST_LIMIT);
    let metrics = MetricsServer::start("127.0.0.1:0".parse().unwrap(), Default::default)
        .expect("start the metrics endpoint");
    let addr = metrics.local_addr();
    let deadline = DEFAULT_REQUEST_DEADLINE;
    // 30 from each of 127.0.0.1-10: 16 per address get in (the per-IP cap), 14 do not.
    let attack = trickle(
        addr,
        &loopbacks(10),
        30,
        Duration::from_secs(1),
        deadline + Duration::from_secs(4),
    );
    let per_ip = u64::from(DEFAULT_MAX_PER_IP);
    wait_for_value(
        WAIT,
        "open, refused for max_per_ip",
        || {
            let s = metrics.stats().server;
            (s.open, s.refused_for("max_per_ip"))
        },
        (10 * per_ip, 300 - 10 * per_ip),
    );
    // Let them trickle a while, then scrape from an address of its own.
    std::thread::sleep(Duration::from_millis(1500));
    let asked = Instant::now();
    assert_eq!(scrape_from("127.0.0.200", addr), Some(200));
    let took = asked.elapsed();
    eprintln!("scrape during the attack answered in {took:?}");
    assert!(took < deadline + Duration::from_secs(1), "took {took:?}");

    let seen = attack.join().unwrap();
    let (refused, admitted): (Vec<_>, Vec<_>) = seen.iter().partition(|t| {
        t.ended
            .is_some_and(|e| e - t.connected < Duration::from_secs(1))
    });
    assert_eq!(refused.len() as u64, 300 - 10 * per_ip);
    for t in &admitted {
        let lasted = t.ended.expect("a trickler outlived the deadline") - t.connected;
        assert!(
            lasted >= deadline - Duration::from_millis(50)
                && lasted <= deadline + Duration::from_secs(1),
            "a trickler lasted {lasted:?} (deadline {deadline:?})"
        );
    }
    let stats = metrics.stats();
    assert_eq!(stats.request_timeouts, 10 * per_ip);
    assert_eq!(stats.answered, 1);
    wait_for_value(WAIT, "open", || metrics.stats().server.open, 0);
    metrics.shutdown();
}

#[test]
fn with_the_connection_cap_full_a_scrape_is_answered_within_the_deadline() {
    let _w = watchdog("cap full", TEST_LIMIT);
    let deadline = Duration::from_secs(2);
    let metrics = MetricsServer::builder()
        .max_connections(100)
        .max_per_ip(1000)
        .request_deadline(deadline)
        .start("127.0.0.1:0".parse().unwrap(), Default::default)
        .expect("start the metrics endpoint");
    let addr = metrics.local_addr();
    let attack = trickle(
        addr,
        &loopbacks(10),
        30,
        Duration::from_secs(1),
        deadline + Duration::from_secs(3),
    );
    let started = Instant::now();
    wait_for_value(
        WAIT,
        "open, refused for max_connections",
        || {
            let s = metrics.stats().server;
            (s.open, s.refused_for("max_connections"))
        },
        (100, 200),
    );
    // Every place is taken: retry until one is free (the first tricklers' deadline).
    let answered = loop {
        if scrape_from("127.0.0.200", addr) == Some(200) {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < deadline + Duration::from_secs(1),
            "no scrape answered within the deadline + 1 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!("with the cap full, a scrape was answered after {answered:?}");
    let seen = attack.join().unwrap();
    assert!(seen.iter().all(|t| t.ended.is_some()));
    assert_eq!(metrics.stats().request_timeouts, 100);
    metrics.shutdown();
}

#[test]
fn a_client_that_never_reads_or_never_closes_is_cut_off_after_the_linger_bound() {
    let _w = watchdog("linger", TEST_LIMIT);
    let linger = Duration::from_secs(1);
    // An answer of several MiB: far more than a small receive buffer and the kernel's
    // send buffer take without the client reading.
    let big = || {
        let mut stats = ringport::Stats::default();
        stats.listeners = (0..3000)
            .map(|i| {
                let mut l = ringport::ListenerStats::default();
                l.name = format!("listener-{i}");
                l.closed_by = vec![("idle_timeout", 1); 20];
                l
            })
            .collect();
        stats
    };
    let metrics = MetricsServer::builder()
        .linger(linger)
        .start("127.0.0.1:0".parse().unwrap(), big)
        .expect("start the metrics endpoint");
    let addr = metrics.local_addr();

    // 1. Asks, then neither reads nor closes.
    let mut deaf = connect_slow_reader(addr);
    write_all(&mut deaf, b"GET /metrics HTTP/1.1\r\n\r\n");
    let asked = Instant::now();
    wait_for_value(WAIT, "answered", || metrics.stats().answered, 1);
    std::thread::sleep(linger / 2);
    assert_eq!(
        metrics.stats().server.open,
        1,
        "closed before the linger bound"
    );
    wait_for_value(WAIT, "open", || metrics.stats().server.open, 0);
    let cut = asked.elapsed();
    eprintln!("a client that never reads was cut off after {cut:?}");
    assert!(cut <= linger + Duration::from_secs(1), "after {cut:?}");
    let s = metrics.stats();
    assert_eq!(s.linger_timeouts, 1);
    assert_eq!(s.server.closed_with("aborted"), 1);
    assert!(s.server.undelivered_bytes > 0, "{s:?}");
    // What the kernel had taken still arrives, then the end: never the whole answer.
    let (_, got) = wait_ended(&mut deaf);
    let promised: usize = parse_head_length(&got);
    assert!(got.len() < promised, "{} of {promised} bytes", got.len());

    // 2. Reads the whole answer, then keeps its side open.
    let mut clinging = connect(addr);
    write_all(&mut clinging, b"GET /metrics HTTP/1.1\r\n\r\n");
    let asked = Instant::now();
    let r = parse(&read_to_eof(&mut clinging));
    assert_eq!(r.status, 200);
    assert!(r.body.len() > 4 << 20, "{} bytes", r.body.len());
    wait_for_value(WAIT, "open", || metrics.stats().server.open, 0);
    let cut = asked.elapsed();
    assert!(cut <= linger + Duration::from_secs(1), "after {cut:?}");
    assert_eq!(metrics.stats().linger_timeouts, 2);

    // 3. Asks, shuts its write side at once (its EOF starts a graceful close, which then
    // waits on a flush that never ends), and never reads: still cut off in time.
    let mut half = connect_slow_reader(addr);
    write_all(&mut half, b"GET /metrics HTTP/1.1\r\n\r\n");
    half.shutdown(std::net::Shutdown::Write).unwrap();
    let asked = Instant::now();
    wait_for_value(WAIT, "answered", || metrics.stats().answered, 3);
    wait_for_value(WAIT, "open", || metrics.stats().server.open, 0);
    let cut = asked.elapsed();
    assert!(cut <= linger + Duration::from_secs(1), "after {cut:?}");
    assert_eq!(metrics.stats().linger_timeouts, 3);

    // A well-behaved client is not counted.
    assert_eq!(get(addr, "/metrics").status, 200);
    wait_for_value(WAIT, "open", || metrics.stats().server.open, 0);
    assert_eq!(metrics.stats().linger_timeouts, 3);
    metrics.shutdown();
}

/// The Content-Length of a (possibly cut) response, plus its head's length: the size of
/// the whole response.
fn parse_head_length(raw: &[u8]) -> usize {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("the head arrived")
        + 4;
    let head = String::from_utf8_lossy(&raw[..end]);
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("a Content-Length");
    end + length
}

#[test]
fn limits_are_checked_at_start() {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    for builder in [
        MetricsServer::builder().request_deadline(Duration::ZERO),
        MetricsServer::builder().linger(Duration::ZERO),
        MetricsServer::builder().max_request_head(10),
        MetricsServer::builder().per_ip_prefixes(33, 64),
    ] {
        assert!(builder.start(addr, Default::default).is_err());
    }
}
