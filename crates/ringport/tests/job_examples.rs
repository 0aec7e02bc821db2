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
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// How long an example may take to say it is listening.
const STARTUP: Duration = Duration::from_secs(20);
/// Read and write timeout of every client socket.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
const CLIENTS: usize = 20;

/// The directory with this build's examples: this test runs from `target/PROFILE/deps`.
fn examples_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let deps = exe.parent().expect("target/PROFILE/deps");
    deps.parent().expect("target/PROFILE").join("examples")
}

/// Build the examples once per test process, as this test was built.
fn build_examples() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let examples = examples_dir();
        let profile_dir = examples.parent().expect("target/PROFILE");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev",
            Some(name) => name,
        };
        let target_dir = profile_dir.parent().expect("target");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let mut build = Command::new(cargo);
        build
            .args(["build", "--quiet", "--profile", profile, "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(target_dir)
            .args(["--example", "jobs"]);
        let mut features = Vec::new();
        if cfg!(feature = "test-hooks") {
            features.push("test-hooks");
        }
        if cfg!(feature = "tokio") {
            build.args(["--example", "tokio_bridge"]);
            features.push("tokio");
        }
        if !features.is_empty() {
            build.args(["--features", &features.join(",")]);
        }
        match build.status() {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(format!("building the examples failed: {status}")),
            Err(e) => Err(format!("could not run cargo to build the examples: {e}")),
        }
    });
    if let Err(why) = built {
        panic!("{why}");
    }
}

/// A running example; killed when dropped, also when the test panics.
struct Example {
    child: Child,
    addr: SocketAddr,
}

impl Example {
    /// Start example `name` on `127.0.0.1:0`; wait until it says where it listens and
    /// (on stderr) that it runs on the backend under test.
    fn start(name: &'static str) -> Example {
        build_examples();
        let path = examples_dir().join(name);
        let mut child = Command::new(&path)
            .arg("127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", path.display()));
        let stdout = lines_of(child.stdout.take().expect("piped"), name);
        let stderr = lines_of(child.stderr.take().expect("piped"), name);
        let mut example = Example {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let line = next_line(&stdout, name, "its `listening on ADDR` line");
        example.addr = line
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("{name}: expected `listening on ADDR`, got {line:?}"));
        let backend = next_line(&stderr, name, "the line naming its backend");
        let expected = format!("on the {} backend", backend_under_test());
        assert!(backend.contains(&expected), "{name}: {backend:?}");
        example
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `RINGPORT_BACKEND`, as the examples see it: io_uring when unset.
fn backend_under_test() -> &'static str {
    match std::env::var("RINGPORT_BACKEND").as_deref() {
        Ok("poll") => "poll",
        _ => "uring",
    }
}

/// A child's output lines, from a thread that reads them as they come.
fn lines_of(out: impl Read + Send + 'static, name: &'static str) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            eprintln!("[{name}] {line}");
            let _ = tx.send(line);
        }
    });
    rx
}

fn next_line(lines: &Receiver<String>, name: &str, what: &str) -> String {
    lines
        .recv_timeout(STARTUP)
        .unwrap_or_else(|e| panic!("{name}: no {what} within {STARTUP:?}: {e}"))
}

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
