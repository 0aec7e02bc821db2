//! `echo-server`'s defence and observability flags end to end: connection caps, accept
//! rates, allow/deny lists, timeouts, the send-queue cap, `--metrics`, `--stats`, and
//! running out of file descriptors. Every wait has a deadline.

mod common;

use common::*;
use socket2::{Domain, Socket, Type};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

/// Read/write timeout of every test socket: a server that stops answering fails the test.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A blocking client of `addr`, connected from `source` (any 127.0.0.0/8 address).
fn client_from(source: &str, addr: &str) -> TcpStream {
    let addr: SocketAddr = addr.parse().expect("a socket address");
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let local: SocketAddr = format!("{source}:0").parse().expect("a source address");
    sock.bind(&local.into()).expect("bind the source address");
    sock.connect(&addr.into())
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn client(addr: &str) -> TcpStream {
    client_from("127.0.0.1", addr)
}

/// What the server did with a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// It echoed a message: the connection was admitted.
    Echoed,
    /// It closed the connection (EOF or reset): refused, or closed by a defence.
    Closed,
}

/// Send a ping and see what comes back (bounded by the socket timeout).
fn ping(s: &mut TcpStream) -> Outcome {
    if s.write_all(b"ping").is_err() {
        return Outcome::Closed;
    }
    let mut buf = [0u8; 4];
    match s.read_exact(&mut buf) {
        Ok(()) => {
            assert_eq!(&buf, b"ping", "the echo differs");
            Outcome::Echoed
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            panic!("neither an echo nor a close within {IO_TIMEOUT:?}")
        }
        Err(_) => Outcome::Closed,
    }
}

/// Block until the server ends the connection; panics if it has not within the socket
/// timeout.
fn wait_closed(s: &mut TcpStream) {
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the server did not close the connection within {IO_TIMEOUT:?}")
            }
            Err(_) => return, // reset
        }
    }
}

/// A number from the `final stats:` block: the first `LABEL N` in it, where `label` is a
/// counter's label (`accepted`, `timeouts`, `slow readers`) or a reason's name (its `_`
/// read as spaces, as printed: `max_connections` is `max connections`). Thousands
/// separators are skipped.
fn final_stat(stdout: &str, label: &str) -> u64 {
    let block = stdout
        .split_once("final stats:\n")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no final stats block in:\n{stdout}"));
    let label = label.replace('_', " ");
    let mut from = 0;
    while let Some(i) = block[from..].find(label.as_str()).map(|i| i + from) {
        from = i + label.len();
        let starts_word = block[..i].ends_with([' ', '\n']) || i == 0;
        let rest = block[from..].trim_start_matches(' ');
        let digits: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == ',')
            .filter(char::is_ascii_digit)
            .collect();
        if starts_word && block[from..].starts_with(' ') && !digits.is_empty() {
            return digits.parse().expect("digits");
        }
    }
    panic!("no {label} N in:\n{block}")
}

/// GET `path` from an HTTP server with a plain socket: the status code and the body.
fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = client(addr);
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").expect("send the request");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read the response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response head");
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3)?.parse().ok())
        .unwrap_or_else(|| panic!("bad response {raw:?}"));
    (status, body.to_string())
}

/// Scrape until the sample `series` reads `want` (at most 5 s); returns the last scrape.
fn wait_for_sample(metrics: &str, series: &str, want: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = http_get(metrics, "/metrics");
        assert_eq!(status, 200, "{body}");
        let value = body
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.parse::<u64>().ok());
        if value == Some(want) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{series} is {value:?}, not {want}, after 5 s:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn max_connections_refuses_the_excess_and_counts_it() {
    let (server, addr) =
        echo_server_with(&["--max-connections", "5", "--metrics", "127.0.0.1:0"], &[]);
    let metrics = line_starting(&server, "metrics on ", Duration::from_secs(10));
    let mut clients: Vec<TcpStream> = (0..8).map(|_| client(&addr)).collect();
    let outcomes: Vec<Outcome> = clients.iter_mut().map(ping).collect();
    let echoed = outcomes.iter().filter(|o| **o == Outcome::Echoed).count();
    assert_eq!(echoed, 5, "{outcomes:?}");

    let scrape = wait_for_sample(
        &metrics,
        "ringport_refused_total{reason=\"max_connections\"}",
        3,
    );
    assert!(scrape.contains("\nringport_accepted_total 5\n"), "{scrape}");
    assert!(
        scrape.contains("\nringport_open_connections 5\n"),
        "{scrape}"
    );

    let (out, _) = stop(server);
    assert_eq!(final_stat(&out, "refused"), 3, "{out}");
    assert_eq!(final_stat(&out, "max_connections"), 3, "{out}");
    assert_eq!(final_stat(&out, "accepted"), 5, "{out}");
}

#[test]
fn allow_and_deny_lists_pick_who_may_connect() {
    let (server, addr) = echo_server_with(&["--allow", "127.0.0.0/29", "--deny", "127.0.0.2"], &[]);
    assert_eq!(ping(&mut client_from("127.0.0.1", &addr)), Outcome::Echoed);
    assert_eq!(ping(&mut client_from("127.0.0.2", &addr)), Outcome::Closed);
    assert_eq!(ping(&mut client_from("127.0.0.9", &addr)), Outcome::Closed);
    assert_eq!(ping(&mut client_from("127.0.0.7", &addr)), Outcome::Echoed);
    let (out, _) = stop(server);
    assert_eq!(final_stat(&out, "denied"), 1, "{out}");
    assert_eq!(final_stat(&out, "not_allowed"), 1, "{out}");
    assert_eq!(final_stat(&out, "accepted"), 2, "{out}");
}

#[test]
fn accept_rates_refuse_beyond_the_burst() {
    // A rate this low refills nothing during the test: exactly the burst gets in.
    let (server, addr) = echo_server_with(&["--accept-rate", "0.01/2"], &[]);
    let mut clients: Vec<TcpStream> = (0..4).map(|_| client(&addr)).collect();
    let outcomes: Vec<Outcome> = clients.iter_mut().map(ping).collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == Outcome::Echoed).count(),
        2,
        "{outcomes:?}"
    );
    let (out, _) = stop(server);
    assert_eq!(final_stat(&out, "rate_limited"), 2, "{out}");

    // Per address: 127.0.0.1 uses up its burst of one, 127.0.0.2 still gets its own;
    // and at most two open from one address.
    let (server, addr) =
        echo_server_with(&["--accept-rate-per-ip", "0.01", "--max-per-ip", "2"], &[]);
    let mut first = client_from("127.0.0.1", &addr);
    assert_eq!(ping(&mut first), Outcome::Echoed);
    assert_eq!(ping(&mut client_from("127.0.0.1", &addr)), Outcome::Closed);
    assert_eq!(ping(&mut client_from("127.0.0.2", &addr)), Outcome::Echoed);
    let (out, _) = stop(server);
    assert_eq!(final_stat(&out, "rate_limited_per_ip"), 1, "{out}");

    let (server, addr) = echo_server_with(&["--max-per-ip", "2"], &[]);
    let mut held: Vec<TcpStream> = (0..3).map(|_| client_from("127.0.0.3", &addr)).collect();
    let outcomes: Vec<Outcome> = held.iter_mut().map(ping).collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == Outcome::Echoed).count(),
        2,
        "{outcomes:?}"
    );
    assert_eq!(ping(&mut client_from("127.0.0.4", &addr)), Outcome::Echoed);
    let (out, _) = stop(server);
    assert_eq!(final_stat(&out, "max_per_ip"), 1, "{out}");
}

#[test]
fn first_data_and_idle_timeouts_close_quiet_clients_on_time() {
    let (server, addr) = echo_server_with(&["--first-data-timeout", "0.5"], &[]);
    let t0 = Instant::now();
    let mut silent = client(&addr);
    let mut talker = client(&addr);
    assert_eq!(ping(&mut talker), Outcome::Echoed);
    wait_closed(&mut silent);
    let lived = t0.elapsed();
    assert!(
        lived >= Duration::from_millis(450) && lived <= Duration::from_millis(1500),
        "the silent client was closed after {lived:?}"
    );
    // The one that spoke in time is not subject to it.
    assert_eq!(ping(&mut talker), Outcome::Echoed);
    let (out, _) = stop(server);
    assert_eq!(final_stat(&out, "timeout_first_data"), 1, "{out}");
    assert_eq!(final_stat(&out, "timeouts"), 1, "{out}");

    let (server, addr) = echo_server_with(&["--idle-timeout", "0.5"], &[]);
    let mut quiet = client(&addr);
    assert_eq!(ping(&mut quiet), Outcome::Echoed);
    let last_echo = Instant::now();
    wait_closed(&mut quiet);
    let idle = last_echo.elapsed();
    assert!(
        idle >= Duration::from_millis(450) && idle <= Duration::from_millis(1500),
        "closed {idle:?} after the last traffic"
    );
    let (out, _) = stop(server);
    assert_eq!(final_stat(&out, "timeout_idle"), 1, "{out}");
}

#[test]
fn a_client_that_never_reads_is_closed_at_the_send_queue_cap() {
    let (server, addr) = echo_server_with(&["--send-queue-max", "65536"], &[]);
    // A small receive window, so the echoes pile up in the server's queue.
    let target: SocketAddr = addr.parse().unwrap();
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&target.into()).expect("connect");
    let mut s: TcpStream = sock.into();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let chunk = vec![b'z'; 64 * 1024];
    let mut written = 0usize;
    let ended = loop {
        match s.write(&chunk) {
            Ok(n) => written += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => break e,
        }
        assert!(
            written < 1 << 30,
            "1 GiB written and the connection is still open"
        );
    };
    assert!(
        !matches!(ended.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "the writes stalled instead of the server closing the connection ({ended})"
    );
    let (out, _) = stop(server);
    assert_eq!(final_stat(&out, "slow_readers"), 1, "{out}");
    assert_eq!(final_stat(&out, "slow_reader"), 1, "{out}");
}

#[test]
fn the_metrics_endpoint_is_announced_after_the_listen_lines_and_serves() {
    let server = spawn(&[
        "echo-server",
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let next = || {
        server
            .lines
            .recv_timeout(Duration::from_secs(10))
            .expect("a stdout line within 10 s")
    };
    let addr = next()
        .strip_prefix("listening on ")
        .expect("the first line names the listen address")
        .to_string();
    assert!(next().starts_with("backend "));
    let metrics = next()
        .strip_prefix("metrics on ")
        .expect("then the metrics address")
        .to_string();
    let port: u16 = metrics.rsplit(':').next().unwrap().parse().unwrap();
    assert_ne!(port, 0, "port 0 is printed resolved");

    assert_eq!(ping(&mut client(&addr)), Outcome::Echoed);
    let body = wait_for_sample(&metrics, "ringport_accepted_total", 1);
    assert!(body.contains("# TYPE ringport_accepted_total counter"));
    assert!(body.contains("ringport_backend_info{backend="), "{body}");
    assert_eq!(http_get(&metrics, "/elsewhere").0, 404);
    let (out, _) = stop(server);
    assert!(out.contains("final stats:\n"), "{out}");
}

#[test]
fn stats_lines_come_every_second_and_stop_at_sigterm() {
    let (server, addr) = echo_server_with(&["--stats"], &[]);
    let mut c = client(&addr);
    assert_eq!(ping(&mut c), Outcome::Echoed);
    let started = Instant::now();
    let line = line_starting(&server, "stats: ", Duration::from_secs(2));
    assert!(started.elapsed() <= Duration::from_secs(2));
    for key in [
        "open ",
        "accepted ",
        "refused ",
        "closed ",
        "in ",
        "out ",
        "queued ",
        "timeouts ",
        "slow readers ",
    ] {
        assert!(line.contains(key), "no {key} in {line:?}");
    }
    // A second line follows about a second later, counting the open client.
    let later = line_starting(&server, "stats: ", Duration::from_secs(3));
    assert!(later.starts_with("open 1  accepted 1  "), "{later:?}");

    let (out, _) = stop(server);
    let tail: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("shutting down"))
        .collect();
    assert!(
        tail.len() > 3
            && tail[1].starts_with("shutdown: ")
            && tail[2] == "final stats:"
            && tail[3..].iter().all(|l| l.starts_with("  ")),
        "the final lines (the stats block indented), and no stats line after them:\n{out}"
    );
}

#[test]
fn bad_defence_values_are_refused_with_a_message() {
    for args in [
        &["--max-connections", "0"][..],
        &["--accept-rate", "0"],
        &["--accept-rate", "10/0"],
        &["--accept-rate-per-ip", "fast"],
        &["--allow", "300.0.0.0/8"],
        &["--deny", "10.0.0.0/33"],
        &["--first-data-timeout", "0"],
        &["--idle-timeout=-1"],
        &["--send-queue-max", "0"],
        &["--metrics", "not an address"],
    ] {
        let mut all = vec!["echo-server", "--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut run = spawn(&all);
        let (status, out, err) = run.wait(Duration::from_secs(10));
        assert!(!status.success(), "{args:?} was accepted:\n{out}");
        assert!(!out.contains("listening on"), "{args:?} started a server");
        let flag = args[0].split('=').next().unwrap();
        assert!(
            err.contains(flag),
            "{args:?}: the message does not name the flag: {err}"
        );
    }
}

/// CPU time (user + system) the process `pid` has used, from /proc/PID/stat.
fn cpu_time(pid: u32, ticks_per_sec: f64) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // The command name may hold spaces; the fields after it are plain.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("a stat line")
        .1
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_secs_f64(ticks as f64 / ticks_per_sec)
}

fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Has the echo of the client's one-byte greeting arrived? Does not block.
fn greeted_back(s: &mut TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    let got = match s.read(&mut b) {
        Ok(1) => true,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        other => panic!("unexpected read result {other:?}"),
    };
    s.set_nonblocking(false).unwrap();
    got
}

#[test]
fn out_of_descriptors_the_server_idles_and_recovers() {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(format!(
        "ulimit -n 64 && exec '{BIN}' echo-server --listen 127.0.0.1:0 --workers 1"
    ));
    let server = spawn_command(cmd);
    let started = Instant::now();
    let addr = line_starting(&server, "listening on ", Duration::from_secs(10));
    let pid = server.child.id(); // sh exec'd: this is ringport

    // Twice what the server can hold; each client says one byte, echoed once accepted.
    let mut clients: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut c = client(&addr);
            c.write_all(b"x").expect("greet");
            c
        })
        .collect();

    let ticks = clock_ticks_per_sec();
    let before = cpu_time(pid, ticks);
    let window = Duration::from_secs(5);
    std::thread::sleep(window);
    let used = cpu_time(pid, ticks) - before;
    let cpu_percent = 100.0 * used.as_secs_f64() / window.as_secs_f64();
    eprintln!("server CPU over {window:?} out of descriptors: {used:?} ({cpu_percent:.2}%)");
    assert!(
        cpu_percent < 5.0,
        "the server used {cpu_percent:.1}% of a core"
    );

    // Five seconds on, the accepted clients have long had their echo.
    let (mut accepted, mut pending): (Vec<TcpStream>, Vec<TcpStream>) =
        clients.drain(..).partition_map_by(greeted_back);
    eprintln!(
        "{} clients accepted, {} pending",
        accepted.len(),
        pending.len()
    );
    assert!(accepted.len() >= 40, "only {} accepted", accepted.len());
    assert!(
        !pending.is_empty(),
        "the descriptor limit was never reached"
    );

    // Free 40 descriptors: that many pending clients get in (the server retries its
    // paused accept every 100 ms).
    accepted.truncate(accepted.len() - 40);
    let freed = Instant::now();
    let expect = pending.len().min(40);
    let deadline = freed + Duration::from_millis(1500);
    let mut echoed = vec![false; pending.len()];
    while echoed.iter().filter(|e| **e).count() < expect {
        for (i, c) in pending.iter_mut().enumerate() {
            echoed[i] = echoed[i] || greeted_back(c);
        }
        assert!(
            Instant::now() < deadline,
            "{} of {expect} pending clients accepted within 1.5 s",
            echoed.iter().filter(|e| **e).count()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!(
        "{expect} pending clients accepted {:?} after 40 closes",
        freed.elapsed()
    );
    let newcomer = echoed.iter().position(|e| *e).unwrap();
    assert_eq!(ping(&mut pending[newcomer]), Outcome::Echoed);

    drop(pending);
    drop(accepted);
    let ran = started.elapsed();
    let (_, err) = stop(server);
    let warnings = err.lines().filter(|l| l.contains("accept failed")).count();
    eprintln!("{warnings} accept-failure warnings in {ran:?}");
    assert!(
        warnings >= 1,
        "no warning about the failing accepts:\n{err}"
    );
    assert!(
        warnings as f64 <= ran.as_secs_f64().ceil() + 1.0,
        "{warnings} warnings in {ran:?}: more than one a second"
    );
}

/// Split a vector by a predicate that needs `&mut` access to each element.
trait PartitionMapBy<T> {
    fn partition_map_by(self, f: impl FnMut(&mut T) -> bool) -> (Vec<T>, Vec<T>);
}

impl<T, I: Iterator<Item = T>> PartitionMapBy<T> for I {
    fn partition_map_by(self, mut f: impl FnMut(&mut T) -> bool) -> (Vec<T>, Vec<T>) {
        let (mut yes, mut no) = (Vec::new(), Vec::new());
        for mut x in self {
            if f(&mut x) {
                yes.push(x);
            } else {
                no.push(x);
            }
        }
        (yes, no)
    }
}
