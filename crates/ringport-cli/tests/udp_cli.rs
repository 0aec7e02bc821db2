//! End-to-end tests of `ringport udp-echo` and `ringport bench --udp`, as two processes.
//! The server runs on the backend `RINGPORT_BACKEND` selects (it inherits the variable;
//! run once with `RINGPORT_BACKEND=poll` too). Short runs, every wait bounded.

mod common;

use common::*;
use std::sync::Mutex;
use std::time::Duration;

/// The load tests share two cores with everything else: one at a time, so a run's rate
/// and loss are its own.
static ONE_LOAD_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Start `ringport udp-echo` on a free loopback port; returns it and its address. Checks
/// it runs on the backend `RINGPORT_BACKEND` asks for.
fn udp_echo(extra: &[&str]) -> (Running, String) {
    let mut args = vec!["udp-echo", "--listen", "127.0.0.1:0", "--workers", "2"];
    args.extend_from_slice(extra);
    let server = spawn(&args);
    let addr = line_starting(&server, "listening on ", Duration::from_secs(10));
    let backend = line_starting(&server, "backend ", Duration::from_secs(10));
    if let Ok(wanted @ ("uring" | "poll")) = std::env::var("RINGPORT_BACKEND").as_deref() {
        assert_eq!(
            backend, wanted,
            "the server did not inherit RINGPORT_BACKEND"
        );
    }
    (server, addr)
}

fn u64_of(report: &serde_json::Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count in {report}"))
}

fn f64_of(report: &serde_json::Value, key: &str) -> f64 {
    report[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {report}"))
}

/// Run `bench ADDR --udp <args> --json` and check what every run must show: something
/// came back, nothing came back changed, every datagram sent is accounted for, and loss
/// (loopback) is at most 1 %.
fn udp_bench(addr: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec![addr, "--udp"];
    all.extend_from_slice(args);
    let (report, _) = bench_json(&all);
    assert_eq!(report["mode"], "udp", "{report}");
    let (sent, received, lost) = (
        u64_of(&report, "sent"),
        u64_of(&report, "received"),
        u64_of(&report, "lost"),
    );
    assert!(received > 0, "nothing came back: {report}");
    assert_eq!(u64_of(&report, "corrupt"), 0, "{report}");
    assert_eq!(sent, received + lost, "unaccounted datagrams: {report}");
    assert!(lost * 100 <= sent, "more than 1 % lost: {report}");
    for k in ["p50", "p90", "p99", "p999", "max"] {
        assert!(
            report["latency_us"][k].as_f64().is_some(),
            "latency_us.{k}: {report}"
        );
    }
    assert!(f64_of(&report["latency_us"], "p50") > 0.0, "{report}");
    report
}

#[test]
fn closed_loop_verifies_every_size_and_the_server_stops_on_sigterm() {
    let _one = ONE_LOAD_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (server, addr) = udp_echo(&[]);
    let run = |args: &[&str]| udp_bench(&addr, args);

    let report = run(&[
        "--connections",
        "20",
        "--size",
        "1200",
        "--pipeline",
        "4",
        "--duration",
        "2",
    ]);
    assert_eq!(report["connections"], 20);
    assert_eq!(report["size"], 1200);
    assert_eq!(report["pipeline"], 4);
    let secs = f64_of(&report, "duration_secs");
    assert!((1.9..3.0).contains(&secs), "duration {secs}: {report}");
    let per_sec = f64_of(&report, "datagrams_per_sec");
    let received = u64_of(&report, "received") as f64;
    assert!((per_sec - received / secs).abs() < 1.0, "{report}");
    assert!(report["reordered"].is_u64(), "{report}");

    // The smallest datagram is the bare header; the largest the most UDP carries.
    let smallest = run(&[
        "--connections",
        "20",
        "--size",
        "16",
        "--pipeline",
        "4",
        "--duration",
        "2",
    ]);
    assert_eq!(smallest["size"], 16);
    let largest = run(&[
        "--connections",
        "4",
        "--size",
        "65507",
        "--pipeline",
        "1",
        "--duration",
        "2",
    ]);
    assert_eq!(largest["size"], 65507);

    let (out, err) = stop(server);
    assert!(
        out.contains("shutting down"),
        "stdout:\n{out}\nstderr:\n{err}"
    );
    let datagrams = out
        .lines()
        .find(|l| l.trim_start().starts_with("datagrams"))
        .unwrap_or_else(|| panic!("no datagrams line in the final stats:\n{out}"));
    assert!(
        datagrams.contains("in ") && datagrams.contains("out "),
        "{datagrams}"
    );
}

#[test]
fn rate_mode_keeps_its_schedule_and_the_server_prints_stats_lines() {
    let _one = ONE_LOAD_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (server, addr) = udp_echo(&["--stats"]);
    let report = udp_bench(
        &addr,
        &[
            "--rate",
            "2000",
            "--connections",
            "20",
            "--size",
            "1200",
            "--duration",
            "2",
        ],
    );
    assert_eq!(f64_of(&report, "target_rate"), 2000.0);
    let achieved = f64_of(&report, "datagrams_per_sec");
    assert!(
        (achieved - 2000.0).abs() <= 0.2 * 2000.0,
        "{achieved} datagrams/s, wanted 2000 ± 20 %: {report}"
    );
    // A line a second while it served: some of them saw the load.
    let line = line_starting(&server, "udp: in ", Duration::from_secs(5));
    assert!(
        line.contains("truncated 0") && line.contains("dropped"),
        "{line}"
    );
    stop(server);
}

#[test]
fn a_run_where_nothing_comes_back_fails() {
    // A bound socket that never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr").to_string();
    let mut run = spawn(&[
        "bench",
        &addr,
        "--udp",
        "--connections",
        "2",
        "--duration",
        "0.5",
        "--loss-timeout",
        "0.2",
        "--json",
    ]);
    let (status, out, err) = run.wait(Duration::from_secs(30));
    assert!(!status.success(), "stdout:\n{out}\nstderr:\n{err}");
    let report: serde_json::Value = serde_json::from_str(out.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("no JSON report ({e}):\n{out}\nstderr:\n{err}"));
    assert_eq!(report["received"], 0, "{report}");
    assert_eq!(report["lost"], report["sent"], "{report}");
    assert!(u64_of(&report, "sent") > 0, "{report}");
    assert!(err.contains("no datagram came back"), "{err}");
}

#[test]
fn bad_udp_options_are_refused() {
    let mut run = spawn(&["bench", "127.0.0.1:9", "--udp", "--size", "15"]);
    let (status, _, err) = run.wait(Duration::from_secs(20));
    assert!(!status.success());
    assert!(err.contains("16"), "{err}");
    let mut run = spawn(&["bench", "127.0.0.1:9", "--udp", "--churn"]);
    let (status, _, err) = run.wait(Duration::from_secs(20));
    assert_eq!(status.code(), Some(2), "clap usage error expected: {err}");
    let mut run = spawn(&["bench", "127.0.0.1:9", "--loss-timeout", "1"]);
    let (status, _, err) = run.wait(Duration::from_secs(20));
    assert_eq!(status.code(), Some(2), "--loss-timeout needs --udp: {err}");
}
