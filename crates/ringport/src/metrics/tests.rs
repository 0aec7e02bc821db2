//! Tests of the exposition text `render` writes.

use super::*;
use crate::admission::RefuseReason;
use crate::error::CloseReason;
use std::collections::HashSet;

/// A snapshot whose every counter holds a distinct value (field `i` holds `1000 + i`).
fn numbered() -> Stats {
    let mut s = Stats {
        backend: "uring",
        refused_by: RefuseReason::ALL
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name(), 500 + i as u64))
            .collect(),
        closed_by: CloseReason::NAMES
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, 700 + i as u64))
            .collect(),
        ..Stats::default()
    };
    let fields: [&mut u64; 21] = [
        &mut s.open,
        &mut s.queued_bytes,
        &mut s.accepted,
        &mut s.rejected,
        &mut s.connected,
        &mut s.connect_failed,
        &mut s.bytes_in,
        &mut s.bytes_out,
        &mut s.undelivered_bytes,
        &mut s.accept_errors,
        &mut s.timeouts_fired,
        &mut s.timers_fired,
        &mut s.slow_readers,
        &mut s.protocol_errors,
        &mut s.frames_discarded,
        &mut s.handler_panics,
        &mut s.late_sends,
        &mut s.enobufs,
        &mut s.stale_completions,
        &mut s.cq_overflows,
        &mut s.inflight_ops,
    ];
    for (i, f) in fields.into_iter().enumerate() {
        *f = 1000 + i as u64;
    }
    s.listeners = ["game", "ad\"min"]
        .iter()
        .zip([2000u64, 3000])
        .map(|(name, base)| ListenerStats {
            name: name.to_string(),
            open: base + 1,
            accepted: base + 2,
            refused: base + 3,
            refused_by: vec![("max_connections", base + 4), ("denied", base + 5)],
            closed: base + 6,
            closed_by: vec![("idle_timeout", base + 7)],
            bytes_in: base + 8,
            bytes_out: base + 9,
            queued_bytes: base + 10,
        })
        .collect();
    s
}

/// The field names of `Stats`, read from its `Debug` output (so a field added later
/// shows up here without anyone listing it).
fn stats_field_names() -> Vec<String> {
    let text = format!("{:?}", Stats::default());
    let inner = text
        .strip_prefix("Stats { ")
        .and_then(|t| t.strip_suffix(" }"))
        .expect("Debug of Stats is `Stats { .. }`");
    // Values are numbers, "" or []: no nested ", " to trip over.
    inner
        .split(", ")
        .map(|kv| kv.split_once(": ").expect("name: value").0.to_string())
        .collect()
}

/// The value of the sample line `series` (name with its labels) in `text`.
fn sample(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().expect("an integer sample value"))
}

#[test]
fn every_stats_field_is_exported() {
    let covered: HashSet<&str> = scalars().map(|m| m.field).chain(LABELLED_FIELDS).collect();
    let fields = stats_field_names();
    assert!(fields.len() > 20, "parsed {fields:?}");
    for f in &fields {
        assert!(
            covered.contains(f.as_str()),
            "Stats::{f} is not rendered by metrics::render"
        );
    }
    assert_eq!(covered.len(), scalars().count() + LABELLED_FIELDS.len());
}

#[test]
fn every_value_lands_on_its_own_metric() {
    let s = numbered();
    let text = render(&s);
    for m in scalars() {
        assert_eq!(sample(&text, m.name), Some((m.get)(&s)), "{}", m.name);
    }
    assert_eq!(sample(&text, "ringport_accepted_total"), Some(s.accepted));
    assert_eq!(sample(&text, "ringport_open_connections"), Some(s.open));
    for (name, n) in &s.refused_by {
        let series = format!("ringport_refused_total{{reason=\"{name}\"}}");
        assert_eq!(sample(&text, &series), Some(*n), "{series}");
    }
    for (name, n) in &s.closed_by {
        let series = format!("ringport_closed_total{{reason=\"{name}\"}}");
        assert_eq!(sample(&text, &series), Some(*n), "{series}");
    }
    assert_eq!(
        sample(&text, "ringport_backend_info{backend=\"uring\"}"),
        Some(1)
    );
}

#[test]
fn each_listener_has_its_own_series() {
    let s = numbered();
    let text = render(&s);
    for l in &s.listeners {
        let label = format!("listener=\"{}\"", LabelValue(&l.name));
        for m in PER_LISTENER {
            let series = format!("{}{{{label}}}", m.name);
            assert_eq!(sample(&text, &series), Some((m.get)(l)), "{series}");
        }
        for (reason, n) in &l.refused_by {
            let series = format!("ringport_listener_refused_total{{{label},reason=\"{reason}\"}}");
            assert_eq!(sample(&text, &series), Some(*n), "{series}");
        }
        for (reason, n) in &l.closed_by {
            let series = format!("ringport_listener_closed_total{{{label},reason=\"{reason}\"}}");
            assert_eq!(sample(&text, &series), Some(*n), "{series}");
        }
    }
    assert!(text.contains("listener=\"ad\\\"min\""), "names are escaped");
    let none = render(&Stats::default());
    assert!(
        !none.contains("ringport_listener_"),
        "no listeners, no families"
    );
}

#[test]
fn the_output_is_well_formed_exposition_text() {
    let text = render(&numbered());
    assert!(text.ends_with('\n'));
    let mut declared: Vec<String> = Vec::new();
    let mut current: Option<(String, String)> = None; // (name, type)
    let mut pending_help: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap().to_string();
            assert!(!declared.contains(&name), "{name} declared twice");
            pending_help = Some(name);
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert_eq!(
                pending_help.take().as_deref(),
                Some(name),
                "HELP before TYPE"
            );
            assert!(kind == "counter" || kind == "gauge", "{line}");
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counter {name} without _total");
            }
            declared.push(name.to_string());
            current = Some((name.to_string(), kind.to_string()));
        } else {
            let (series, value) = line.rsplit_once(' ').expect("series value");
            value.parse::<u64>().expect("integer value");
            let name = series.split('{').next().unwrap();
            let (family, _) = current.as_ref().expect("a sample after its TYPE");
            assert_eq!(name, family, "sample outside its family: {line}");
            assert!(name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit()));
            assert!(name.starts_with("ringport_"));
        }
    }
    assert_eq!(
        declared.len(),
        scalars().count() + 3 + PER_LISTENER.len() + 2
    );
}

#[test]
fn label_values_and_help_are_escaped() {
    assert_eq!(
        LabelValue("a\"b\\c\nd").to_string(),
        "a\\\"b\\\\c\\nd",
        "quote, backslash, newline"
    );
    assert_eq!(HelpText("x\\y\nz \"q\"").to_string(), "x\\\\y\\nz \"q\"");
    let s = Stats {
        backend: "we\"ird\\\nname",
        refused_by: vec![("odd\"reason", 2)],
        ..Stats::default()
    };
    let text = render(&s);
    assert!(
        text.contains("ringport_backend_info{backend=\"we\\\"ird\\\\\\nname\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("ringport_refused_total{reason=\"odd\\\"reason\"} 2\n"));
    // Every sample stays on one line.
    assert!(text
        .lines()
        .all(|l| l.starts_with('#') || l.ends_with(|c: char| c.is_ascii_digit())));
}

#[test]
fn the_job_pool_renders_as_gauges_and_two_summaries() {
    use crate::jobs::{JobPoolStats, Percentiles};
    use std::time::Duration;
    let none = render(&Stats::default());
    assert!(
        !none.contains("ringport_job_pool"),
        "no pool, no pool metrics"
    );
    let ms = Duration::from_millis;
    let wait = Percentiles {
        count: 40,
        p50: ms(1),
        p90: ms(2),
        p99: ms(4),
        max: ms(8),
        total: ms(60),
    };
    let s = Stats {
        job_pool: Some(JobPoolStats {
            threads: 4,
            queued: 17,
            running: 3,
            queue_wait: wait,
            run_time: Percentiles::default(),
        }),
        ..Stats::default()
    };
    let text = render(&s);
    assert_eq!(sample(&text, "ringport_job_pool_threads"), Some(4));
    assert_eq!(sample(&text, "ringport_job_pool_queued"), Some(17));
    assert_eq!(sample(&text, "ringport_job_pool_running"), Some(3));
    assert_eq!(
        sample(&text, "ringport_job_queue_wait_seconds_count"),
        Some(40)
    );
    assert!(text.contains("# TYPE ringport_job_queue_wait_seconds summary"));
    assert!(text.contains("ringport_job_queue_wait_seconds{quantile=\"0.99\"} 0.004\n"));
    assert!(text.contains("ringport_job_queue_wait_seconds_sum 0.06\n"));
    assert_eq!(sample(&text, "ringport_job_run_seconds_count"), Some(0));
    let shown = s.to_string();
    assert!(shown.contains("queued 17, running 3, threads 4"), "{shown}");
    assert!(
        shown.contains("queue wait p50 1.0 ms, p90 2.0 ms, p99 4.0 ms, max 8.0 ms"),
        "{shown}"
    );
}
