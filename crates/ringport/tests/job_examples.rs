//! The job examples, run as their real binaries on the backend under test
//! (`RINGPORT_BACKEND`, which they inherit) and driven over real sockets:
//! - `jobs`: 20 concurrent clients, each pipelining logins (right and wrong passwords,
//!   unknown users, a malformed line) and half-closing at once; every answer must come,
//!   in request order, before the server closes.
//! - `tokio_bridge` (feature `tokio`): 20 concurrent clients, each pipelining lookups
//!   (known and unknown keys, a malformed line), checked the same way; the lookups'
//!   random-ish delays make them finish out of order.
//!
//! As in `notify_examples`, the first test to need the examples builds them (a no-op
//! when up to date) with the profile and features this test was built with.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

/// Read and write timeout of every client socket.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
const CLIENTS: usize = 20;

#[path = "util/examples.rs"]
mod examples;
use examples::Example;

/// Send every request line at once (from a thread), half-close, and read the answers:
/// exactly `expected`, in order, then the server's close.
fn pipeline(addr: SocketAddr, requests: Vec<String>, expected: &[String], who: &str) {
    let s = TcpStream::connect(addr).expect("connect to the example");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut writer = s.try_clone().expect("clone the stream");
    let write = thread::spawn(move || {
        let wire: String = requests.iter().map(|r| format!("{r}\n")).collect();
        writer.write_all(wire.as_bytes())?;
        writer.shutdown(Shutdown::Write)
    });
    let mut reader = BufReader::new(s);
    for (i, want) in expected.iter().enumerate() {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => panic!("{who}: the server closed before answer {i} ({want:?})"),
            Ok(_) => assert_eq!(line.trim_end(), want, "{who}: answer {i}"),
            Err(e) => panic!("{who}: reading answer {i}: {e}"),
        }
    }
    let mut rest = String::new();
    reader
        .read_to_string(&mut rest)
        .unwrap_or_else(|e| panic!("{who}: waiting for the server to close: {e}"));
    assert!(rest.is_empty(), "{who}: more after the answers: {rest:?}");
    write
        .join()
        .expect("the writer thread")
        .unwrap_or_else(|e| panic!("{who}: write: {e}"));
}

/// Run `client(i)` for each of `CLIENTS` concurrent clients and wait for all.
fn concurrently(client: impl Fn(usize) + Send + Sync + Copy + 'static) {
    let handles: Vec<_> = (0..CLIENTS)
        .map(|i| thread::spawn(move || client(i)))
        .collect();
    for h in handles {
        if let Err(panic) = h.join() {
            std::panic::resume_unwind(panic);
        }
    }
}

#[test]
fn jobs_answers_pipelined_logins_in_order() {
    let example = Example::start("jobs");
    let addr = example.addr;
    let started = Instant::now();
    concurrently(move |c| {
        let users = [
            ("alice", "wonderland"),
            ("bob", "builder"),
            ("carol", "s3cret"),
        ];
        let (mut requests, mut expected) = (Vec::new(), Vec::new());
        for i in 0..8 {
            let (user, password) = users[(c + i) % users.len()];
            match (c + i) % 4 {
                0 | 1 => {
                    requests.push(format!("LOGIN {user} {password}"));
                    expected.push(format!("OK {user}"));
                }
                2 => {
                    requests.push(format!("LOGIN {user} {password}x"));
                    expected.push("DENIED".to_string());
                }
                _ => {
                    requests.push(format!("LOGIN mallory{c} {password}"));
                    expected.push("DENIED".to_string());
                }
            }
            if i == 4 {
                requests.push("LOGOUT please".to_string());
                expected.push("ERR expected LOGIN user password".to_string());
            }
        }
        pipeline(addr, requests, &expected, &format!("login client {c}"));
    });
    eprintln!("jobs: {CLIENTS} x 9 logins in {:?}", started.elapsed());
}

#[cfg(feature = "tokio")]
#[test]
fn tokio_bridge_answers_pipelined_lookups_in_order() {
    let example = Example::start("tokio_bridge");
    let addr = example.addr;
    let started = Instant::now();
    concurrently(move |c| {
        let (mut requests, mut expected) = (Vec::new(), Vec::new());
        for i in 0..50 {
            let n = (c * 37 + i * 11) % 130 + 1; // 1..=130: some beyond user:100
            requests.push(format!("GET user:{n}"));
            expected.push(if n <= 100 {
                format!("VALUE user:{n} name-{n}")
            } else {
                format!("NOTFOUND user:{n}")
            });
            if i == 25 {
                requests.push("PUT user:1 x".to_string());
                expected.push("ERR expected GET key".to_string());
            }
        }
        pipeline(addr, requests, &expected, &format!("lookup client {c}"));
    });
    eprintln!(
        "tokio_bridge: {CLIENTS} x 51 lookups in {:?}",
        started.elapsed()
    );
}
