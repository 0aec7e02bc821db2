//! Helpers shared by the end-to-end tests: run the `ringport` binary as a child whose
//! stdout lines arrive on a channel, with every wait bounded by a deadline.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_ringport");

/// A child whose stdout lines arrive on a channel and whose stderr is collected.
pub struct Running {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    stderr: Option<JoinHandle<String>>,
}

/// A test that fails half way must not leave a server running.
impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn spawn(args: &[&str]) -> Running {
    spawn_with_env(args, &[])
}

/// As `spawn`, with extra environment variables.
pub fn spawn_with_env(args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut cmd = Command::new(BIN);
    cmd.args(args).envs(env.iter().copied());
    spawn_command(cmd)
}

/// Run `cmd` (any program, e.g. a shell that execs `ringport`) as a [`Running`] child.
pub fn spawn_command(mut cmd: Command) -> Running {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child process");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let (tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let stderr = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    Running {
        child,
        lines,
        stderr: Some(stderr),
    }
}

impl Running {
    /// Wait for exit within `limit`; on timeout kill the child and panic.
    pub fn wait(&mut self, limit: Duration) -> (ExitStatus, String, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let err = self.take_stderr();
                panic!("ringport did not exit within {limit:?}; stderr:\n{err}");
            }
            thread::sleep(Duration::from_millis(20));
        };
        let err = self.take_stderr();
        // The stdout reader ends at EOF, once the child has exited.
        let out: Vec<String> = self.lines.iter().collect();
        (status, out.join("\n"), err)
    }

    pub fn take_stderr(&mut self) -> String {
        self.stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

/// Start `ringport echo-server` on a free loopback port (extra `env` for its logging);
/// returns it and its address.
pub fn echo_server(env: &[(&str, &str)]) -> (Running, String) {
    echo_server_with(&[], env)
}

/// As [`echo_server`], with extra command-line arguments (e.g. `--codec line`).
pub fn echo_server_with(extra: &[&str], env: &[(&str, &str)]) -> (Running, String) {
    let mut args = vec!["echo-server", "--listen", "127.0.0.1:0", "--workers", "2"];
    args.extend_from_slice(extra);
    let server = spawn_with_env(&args, env);
    let first = server
        .lines
        .recv_timeout(Duration::from_secs(10))
        .expect("the server printed its address within 10 s");
    let addr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_string();
    (server, addr)
}

/// The next stdout line starting with `prefix` (earlier lines are skipped), with the
/// prefix removed; panics if none comes within `limit`.
pub fn line_starting(run: &Running, prefix: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match run.lines.recv_timeout(left) {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix(prefix) {
                    return rest.to_string();
                }
            }
            Err(e) => panic!("no stdout line starting with {prefix:?} within {limit:?} ({e})"),
        }
    }
}

/// Stop a server with SIGTERM and wait for a clean exit; returns its stdout and stderr.
pub fn stop(mut server: Running) -> (String, String) {
    let pid = server.child.id().to_string();
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(kill.success(), "kill -TERM {pid} failed");
    let (status, out, err) = server.wait(Duration::from_secs(10));
    assert!(
        status.success(),
        "echo-server exited with {status}; stdout:\n{out}\nstderr:\n{err}"
    );
    (out, err)
}

/// Run `ringport bench <args>` to completion (bounded), require success, and parse the
/// JSON object on the last stdout line. Returns it with all of stdout.
pub fn bench_json(args: &[&str]) -> (serde_json::Value, String) {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    all.push("--json");
    let mut run = spawn(&all);
    let (status, out, err) = run.wait(Duration::from_secs(60));
    assert!(
        status.success(),
        "bench {args:?} failed ({status}); stdout:\n{out}\nstderr:\n{err}"
    );
    let last = out.lines().last().unwrap_or_default();
    let report = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("last stdout line is not a JSON object ({e}):\n{out}"));
    (report, out)
}

/// Assert every error counter of a report is zero.
pub fn assert_no_errors(report: &serde_json::Value) {
    for kind in ["connect", "mismatch", "closed", "behind"] {
        assert_eq!(report["errors"][kind], 0, "errors.{kind} in {report}");
    }
}
