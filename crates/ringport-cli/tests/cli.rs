//! End-to-end tests of the `ringport` binary: the demo, and echo-server + bench as two
//! processes. Every wait has a deadline; a hung child is killed and the test fails.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ringport");

/// A child whose stdout lines arrive on a channel and whose stderr is collected.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
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

fn spawn(args: &[&str]) -> Running {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ringport");
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
    fn wait(&mut self, limit: Duration) -> (ExitStatus, String, String) {
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

    fn take_stderr(&mut self) -> String {
        self.stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

/// The number after `label` on the report line starting with it.
fn report_number(stdout: &str, label: &str) -> u64 {
    let line = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(label))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{stdout}"));
    line.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number on {line:?}"))
}

#[test]
fn demo_runs_and_reports_messages() {
    let mut run = spawn(&["demo", "--duration", "2", "--connections", "10"]);
    let (status, out, err) = run.wait(Duration::from_secs(60));
    assert!(
        status.success(),
        "demo failed ({status}); stdout:\n{out}\nstderr:\n{err}"
    );
    let messages = report_number(&out, "messages");
    assert!(messages > 0, "no messages in:\n{out}");
    assert_eq!(report_number(&out, "connections"), 10, "in:\n{out}");
}

#[test]
fn bench_against_echo_server_verifies_and_the_server_stops_on_sigterm() {
    let mut server = spawn(&["echo-server", "--listen", "127.0.0.1:0", "--workers", "2"]);
    let first = server
        .lines
        .recv_timeout(Duration::from_secs(10))
        .expect("the server printed its address within 10 s");
    let addr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_string();

    let mut bench = spawn(&[
        "bench",
        &addr,
        "--connections",
        "4",
        "--size",
        "100",
        "--pipeline",
        "2",
        "--duration",
        "1",
        "--json",
    ]);
    let (status, out, err) = bench.wait(Duration::from_secs(60));
    assert!(
        status.success(),
        "bench failed ({status}); stdout:\n{out}\nstderr:\n{err}"
    );
    let report: serde_json::Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("bench stdout is not one JSON object ({e}):\n{out}"));
    assert!(
        report["messages"].as_u64().expect("messages") > 0,
        "{report}"
    );
    assert_eq!(report["connections"], 4);
    assert_eq!(report["size"], 100);
    assert_eq!(report["pipeline"], 2);
    for kind in ["connect", "mismatch", "closed"] {
        assert_eq!(report["errors"][kind], 0, "errors.{kind} in {report}");
    }
    assert!(report["latency_us"]["p50"].as_f64().expect("p50") > 0.0);

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
    assert!(out.contains("shutdown:"), "no shutdown report in:\n{out}");
}
