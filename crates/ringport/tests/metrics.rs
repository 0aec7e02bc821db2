//! The Prometheus endpoint over real sockets: a `MetricsServer` fed from a running echo
//! server's stats, scraped with plain HTTP/1.1 on a blocking `std::net::TcpStream`.

mod util;

use ringport::metrics::{MetricsServer, MAX_REQUEST_HEAD};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;
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
