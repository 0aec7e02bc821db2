//! End-to-end tests of the `ringport` binary: the demo, and echo-server + bench as two
//! processes. Every wait has a deadline; a hung child is killed and the test fails.

mod common;

use common::*;
use std::time::Duration;

/// The number after `label` on the report line starting with it (after the server's
/// stats, whose lines may start with the same words).
fn report_number(stdout: &str, label: &str) -> u64 {
    let report = stdout
        .split_once("--- report ---")
        .map_or(stdout, |(_, r)| r);
    let line = report
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
    let (server, addr) = echo_server(&[]);
    let (report, _) = bench_json(&[
        &addr,
        "--connections",
        "4",
        "--size",
        "100",
        "--pipeline",
        "2",
        "--duration",
        "1",
    ]);
    assert!(
        report["messages"].as_u64().expect("messages") > 0,
        "{report}"
    );
    assert_eq!(report["mode"], "closed-loop");
    assert_eq!(report["connections"], 4);
    assert_eq!(report["size"], 100);
    assert_eq!(report["pipeline"], 2);
    assert_no_errors(&report);
    assert!(report["latency_us"]["p50"].as_f64().expect("p50") > 0.0);
    for k in [
        "target_rate",
        "connections_per_sec",
        "cycles",
        "idle_connections",
        "all_up_secs",
    ] {
        assert!(
            report[k].is_null(),
            "{k} should be null in closed-loop mode: {report}"
        );
    }

    let (out, _) = stop(server);
    assert!(out.contains("shutdown:"), "no shutdown report in:\n{out}");
}

#[test]
fn echo_server_runs_on_the_backend_asked_for() {
    for backend in ["poll", "uring"] {
        let (server, addr) = echo_server_with(&["--backend", backend], &[]);
        let (report, _) = bench_json(&[&addr, "--connections", "4", "--duration", "1"]);
        assert_no_errors(&report);
        assert!(report["messages"].as_u64().unwrap() > 0, "{report}");
        let (out, _) = stop(server);
        assert!(out.contains(&format!("backend {backend}")), "{out}");
        assert!(
            out.contains(&format!("backend      {backend}, 2 workers")),
            "{out}"
        );
    }
}
