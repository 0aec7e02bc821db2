//! Running the crate's examples as their real binaries from a test: build them once (as
//! the test was built: profile, features), start one on 127.0.0.1:0, wait for its
//! `listening on ADDR` line and the stderr line naming its backend (the one under test),
//! kill it when dropped. Included with `#[path]` by the tests that need it.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

/// How long an example may take to say it is listening.
pub const STARTUP: Duration = Duration::from_secs(20);

/// The directory with this build's examples: this test runs from `target/PROFILE/deps`.
pub fn examples_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let deps = exe.parent().expect("target/PROFILE/deps");
    deps.parent().expect("target/PROFILE").join("examples")
}

/// Build the examples once per test process, as this test was built.
pub fn build_examples() {
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
            .arg("--examples");
        // Examples whose required features are off are skipped by cargo.
        let mut features = Vec::new();
        if cfg!(feature = "test-hooks") {
            features.push("test-hooks");
        }
        if cfg!(feature = "tokio") {
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
pub struct Example {
    pub name: &'static str,
    pub child: Child,
    pub addr: SocketAddr,
}

impl Example {
    /// Start example `name` on `127.0.0.1:0` and wait until it says where it listens
    /// (and, on stderr, which backend it runs on: the one under test).
    pub fn start(name: &'static str) -> Example {
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
            name,
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let line = next_line(&stdout, name, "its `listening on ADDR` line");
        let addr = line
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("{name}: expected `listening on ADDR`, got {line:?}"));
        example.addr = addr;
        let backend = next_line(&stderr, name, "the line naming its backend");
        let expected = format!("on the {} backend", backend_under_test());
        assert!(backend.contains(&expected), "{name}: {backend:?}");
        example
    }

    /// The number of descriptors the example has open.
    #[allow(dead_code)] // for the tests that count them
    pub fn open_fds(&self) -> usize {
        let dir = format!("/proc/{}/fd", self.child.id());
        std::fs::read_dir(dir)
            .expect("list its descriptors")
            .count()
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        eprintln!("{}: stopped", self.name);
    }
}

/// `RINGPORT_BACKEND`, as the examples see it: io_uring when unset.
pub fn backend_under_test() -> &'static str {
    match std::env::var("RINGPORT_BACKEND").as_deref() {
        Ok("poll") => "poll",
        _ => "uring",
    }
}

/// The lines of a child's output, from a thread that reads them as they come (so the
/// child never blocks on a full pipe).
pub fn lines_of(out: impl Read + Send + 'static, name: &'static str) -> Receiver<String> {
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

pub fn next_line(lines: &Receiver<String>, name: &str, what: &str) -> String {
    lines
        .recv_timeout(STARTUP)
        .unwrap_or_else(|e| panic!("{name}: no {what} within {STARTUP:?}: {e}"))
}
