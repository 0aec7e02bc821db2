//! End-to-end tests of the bench modes (rate, churn, idle, source addresses) against a
//! `ringport echo-server` child. Small numbers, short runs, every wait bounded.

mod common;

use common::*;
use std::time::{Duration, Instant};

fn f64_of(report: &serde_json::Value, key: &str) -> f64 {
    report[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {report}"))
}

#[test]
fn rate_mode_sends_on_schedule() {
    let (server, addr) = echo_server(&[]);
    let (rate, secs) = (1000.0, 2.0);
    let (report, _) = bench_json(&[
        &addr,
        "--rate",
        "1000",
        "--connections",
        "4",
        "--size",
        "100",
        "--duration",
        "2",
    ]);
    assert_eq!(report["mode"], "rate");
    assert_eq!(f64_of(&report, "target_rate"), rate);
    assert_no_errors(&report);
    let expected = rate * secs;
    let messages = report["messages"].as_u64().expect("messages") as f64;
    assert!(
        (messages - expected).abs() <= 0.2 * expected,
        "{messages} messages, expected {expected} ± 20%: {report}"
    );
    let achieved = f64_of(&report, "msgs_per_sec");
    assert!(
        (achieved - rate).abs() <= 0.2 * rate,
        "achieved {achieved}/s: {report}"
    );
    assert!(f64_of(&report["latency_us"], "p50") > 0.0, "{report}");
    assert!(report["cycles"].is_null() && report["all_up_secs"].is_null());
    stop(server);
}

#[test]
fn rate_mode_counts_sends_behind_when_the_server_never_answers() {
    // Connects complete in the kernel's backlog; nothing is ever read or echoed.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr").to_string();
    let mut run = spawn(&[
        "bench",
        &addr,
        "--rate",
        "500",
        "--connections",
        "1",
        "--max-outstanding",
        "10",
        "--duration",
        "1",
        "--json",
    ]);
    let (status, out, err) = run.wait(Duration::from_secs(60));
    assert!(
        !status.success(),
        "a silent server must fail the run; stdout:\n{out}\nstderr:\n{err}"
    );
    let last = out.lines().last().unwrap_or_default();
    let report: serde_json::Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stdout:\n{out}\nstderr:\n{err}"));
    let behind = report["errors"]["behind"].as_u64().expect("behind");
    // 500 scheduled, 10 ever outstanding: the rest are behind.
    assert!(behind >= 400, "behind {behind}: {report}");
    assert_eq!(report["messages"], 0, "{report}");
}

#[test]
fn churn_mode_cycles_connections() {
    let (server, addr) = echo_server(&[]);
    let (report, _) = bench_json(&[
        &addr,
        "--churn",
        "--connections",
        "4",
        "--churn-messages",
        "3",
        "--pipeline",
        "2",
        "--size",
        "200",
        "--duration",
        "1",
    ]);
    assert_eq!(report["mode"], "churn");
    assert_no_errors(&report);
    let cycles = report["cycles"].as_u64().expect("cycles");
    assert!(cycles > 0, "{report}");
    assert!(f64_of(&report, "connections_per_sec") > 0.0, "{report}");
    // Every cycle echoes 3 messages (window edges aside).
    let messages = report["messages"].as_u64().expect("messages");
    assert!(
        messages + 12 >= 3 * cycles,
        "{messages} for {cycles}: {report}"
    );
    assert!(report["target_rate"].is_null() && report["idle_connections"].is_null());
    stop(server);
}

#[test]
fn idle_mode_announces_all_up_while_holding_then_reports() {
    let (server, addr) = echo_server(&[]);
    let mut run = spawn(&["bench", &addr, "--idle", "50", "--duration", "3", "--json"]);
    let first = run
        .lines
        .recv_timeout(Duration::from_secs(20))
        .expect("an 'all up' line within 20 s");
    let secs: f64 = first
        .strip_prefix("all 50 connections up after ")
        .and_then(|rest| rest.strip_suffix(" s"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first stdout line {first:?}"));
    // The line comes while the connections are held, not at the end.
    assert!(
        run.child.try_wait().expect("try_wait").is_none(),
        "bench had already exited when the 'all up' line arrived"
    );
    let (status, out, err) = run.wait(Duration::from_secs(60));
    assert!(
        status.success(),
        "idle bench failed ({status}); stdout:\n{out}\nstderr:\n{err}"
    );
    assert_eq!(
        out.lines().count(),
        1,
        "one JSON line after 'all up': {out}"
    );
    let report: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON report");
    assert_eq!(report["mode"], "idle");
    assert_eq!(report["idle_connections"], 50);
    assert_eq!(report["connections"], 50);
    assert_no_errors(&report);
    let all_up = f64_of(&report, "all_up_secs");
    assert!((all_up - secs).abs() < 0.01, "{all_up} vs line {secs}");
    assert!(f64_of(&report, "duration_secs") >= 2.9, "{report}");
    stop(server);
}

#[test]
fn source_ips_spread_connections_in_closed_loop_and_churn() {
    let (server, addr) = echo_server(&[("RUST_LOG", "ringport::echo_server=debug")]);
    let sources = ["--source-ip", "127.0.0.2", "--source-ip", "127.0.0.3"];
    let mut closed = vec![addr.as_str(), "--connections", "4", "--duration", "1"];
    closed.extend_from_slice(&sources);
    let (report, _) = bench_json(&closed);
    assert_eq!(report["mode"], "closed-loop");
    assert_no_errors(&report);
    assert!(report["messages"].as_u64().expect("messages") > 0);

    let mut churn = vec![
        addr.as_str(),
        "--churn",
        "--connections",
        "2",
        "--duration",
        "1",
    ];
    churn.extend_from_slice(&sources);
    let (report, _) = bench_json(&churn);
    assert_eq!(report["mode"], "churn");
    assert_no_errors(&report);
    assert!(report["cycles"].as_u64().expect("cycles") > 0);

    let (_, log) = stop(server);
    let peers = |ip: &str| log.matches(&format!("peer={ip}:")).count();
    assert!(
        peers("127.0.0.2") > 2,
        "no peers from 127.0.0.2 in the server log"
    );
    assert!(
        peers("127.0.0.3") > 2,
        "no peers from 127.0.0.3 in the server log"
    );
    assert_eq!(peers("127.0.0.1"), 0, "a connection came from 127.0.0.1");
}

#[test]
fn modes_are_exclusive_and_a_bad_source_family_is_refused() {
    let started = Instant::now();
    let mut run = spawn(&["bench", "127.0.0.1:9", "--rate", "10", "--churn"]);
    let (status, _, err) = run.wait(Duration::from_secs(20));
    assert_eq!(status.code(), Some(2), "clap usage error expected: {err}");
    assert!(err.contains("cannot be used with"), "{err}");

    let mut run = spawn(&["bench", "127.0.0.1:9", "--source-ip", "::1"]);
    let (status, _, err) = run.wait(Duration::from_secs(20));
    assert!(!status.success());
    assert!(err.contains("not of the same family"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20));
}
