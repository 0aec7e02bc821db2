//! Live counters for Prometheus: [`render`] writes a [`Stats`] snapshot in the text
//! exposition format (version 0.0.4), and [`MetricsServer`] answers `GET /metrics` with
//! it, on a one-worker ringport server of its own.
//!
//! ```no_run
//! use ringport::metrics::MetricsServer;
//! use ringport::{CloseReason, Conn, Handler, Server};
//! use std::sync::Arc;
//!
//! struct Echo;
//! impl Handler for Echo {
//!     type Session = ();
//!     fn on_open(&self, _conn: &mut Conn) {}
//!     fn on_data(&self, _s: &mut (), conn: &mut Conn, data: &[u8]) {
//!         conn.send(data);
//!     }
//!     fn on_close(&self, _s: (), _conn: &Conn, _why: CloseReason) {}
//! }
//!
//! # fn main() -> Result<(), ringport::Error> {
//! let server = Arc::new(Server::builder().listen("127.0.0.1:7007")?.start(Echo)?);
//! let source = Arc::clone(&server);
//! let metrics = MetricsServer::start("127.0.0.1:9090".parse().unwrap(), move || source.stats())?;
//! // curl http://127.0.0.1:9090/metrics
//! metrics.shutdown();
//! # Ok(())
//! # }
//! ```
//!
//! The endpoint bounds every connection so that hostile clients cannot lock scrapes out:
//! the request head must be complete within 5 s of connect and 8 KiB, the client must
//! take the answer and close within 5 s of it, and at most 512 connections (16 per IPv4
//! address or IPv6 `/64`) are open at once. [`MetricsServer::builder`] changes each
//! bound; [`MetricsServer::stats`] counts what they did.
//!
//! Every counter of [`Stats`] is a `ringport_..._total` counter; `open` and
//! `queued_bytes` are gauges; refusals and closes are one series per reason
//! (`ringport_refused_total{reason="max_connections"}`, zeros included), and the backend
//! is `ringport_backend_info{backend="uring"} 1`. Each listener's share comes again as
//! `ringport_listener_...` families labelled with its name
//! (`ringport_listener_accepted_total{listener="admin"}`,
//! `ringport_listener_closed_total{listener="admin",reason="idle_timeout"}`).

mod endpoint;
mod http;
mod session;

pub use endpoint::{
    EndpointStats, MetricsServer, MetricsServerBuilder, DEFAULT_LINGER, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_PER_IP, DEFAULT_REQUEST_DEADLINE, MAX_REQUEST_HEAD,
};

use crate::stats::{ListenerStats, Stats};
use std::fmt::{self, Write as _};

/// The `Content-Type` of the exposition format [`render`] writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

use crate::stats::{MetricKind as Kind, COUNTERS};

/// One unlabelled metric taken from one `Stats` field.
struct Scalar {
    /// The `Stats` field it comes from (checked by the coverage test).
    #[cfg_attr(not(test), allow(dead_code))]
    field: &'static str,
    name: &'static str,
    kind: Kind,
    help: &'static str,
    get: fn(&Stats) -> u64,
}

/// The unlabelled metrics, in output order: every row of the counter table
/// (`stats.rs`) that has a metric of its own, then the worker count.
fn scalars() -> impl Iterator<Item = Scalar> {
    let workers = Scalar {
        field: "workers",
        name: "ringport_workers",
        kind: Kind::Gauge,
        help: "I/O workers started.",
        get: |s| s.workers,
    };
    COUNTERS
        .iter()
        .filter_map(|c| {
            Some(Scalar {
                field: c.field,
                name: c.metric?,
                kind: c.kind,
                help: c.help,
                get: c.get,
            })
        })
        .chain([workers])
}

/// `Stats` fields rendered as labelled series rather than through [`scalars`]: the
/// totals `refused` and `closed` are the sums of their per-reason series.
#[cfg_attr(not(test), allow(dead_code))]
const LABELLED_FIELDS: [&str; 7] = [
    "refused",
    "refused_by",
    "closed",
    "closed_by",
    "backend",
    "listeners",
    "job_pool",
];

/// One per-listener metric family (label `listener`) taken from a `ListenerStats` field.
struct PerListener {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    get: fn(&ListenerStats) -> u64,
}

/// The unlabelled per-listener families, in output order.
const PER_LISTENER: &[PerListener] = &[
    PerListener {
        name: "ringport_listener_open_connections",
        kind: Kind::Gauge,
        help: "A listener's connections open now.",
        get: |l| l.open,
    },
    PerListener {
        name: "ringport_listener_accepted_total",
        kind: Kind::Counter,
        help: "Connections a listener accepted.",
        get: |l| l.accepted,
    },
    PerListener {
        name: "ringport_listener_bytes_in_total",
        kind: Kind::Counter,
        help: "Bytes received on a listener's connections.",
        get: |l| l.bytes_in,
    },
    PerListener {
        name: "ringport_listener_bytes_out_total",
        kind: Kind::Counter,
        help: "Bytes sent on a listener's connections.",
        get: |l| l.bytes_out,
    },
    PerListener {
        name: "ringport_listener_queued_bytes",
        kind: Kind::Gauge,
        help: "Bytes queued for sending on a listener's connections now.",
        get: |l| l.queued_bytes,
    },
];

/// `stats` in the Prometheus text exposition format 0.0.4: a `# HELP` and a `# TYPE`
/// line per metric family, then its samples, one per line.
pub fn render(stats: &Stats) -> String {
    let mut out = String::with_capacity(4096);
    for m in scalars() {
        family_head(&mut out, m.name, m.kind, m.help);
        let _ = writeln!(out, "{} {}", m.name, (m.get)(stats));
    }
    labelled(
        &mut out,
        "ringport_refused_total",
        "Inbound connections refused at accept, by reason.",
        &stats.refused_by,
    );
    labelled(
        &mut out,
        "ringport_closed_total",
        "Connections closed, by reason.",
        &stats.closed_by,
    );
    family_head(
        &mut out,
        "ringport_backend_info",
        Kind::Gauge,
        "The I/O backend serving (always 1).",
    );
    let _ = writeln!(
        out,
        "ringport_backend_info{{backend=\"{}\"}} 1",
        LabelValue(stats.backend)
    );
    if !stats.listeners.is_empty() {
        render_listeners(&mut out, &stats.listeners);
    }
    if let Some(pool) = &stats.job_pool {
        render_job_pool(&mut out, pool);
    }
    out
}

/// The job pool's gauges and its two latency summaries (quantiles in seconds).
fn render_job_pool(out: &mut String, pool: &crate::jobs::JobPoolStats) {
    for (name, help, value) in [
        (
            "ringport_job_pool_threads",
            "Threads in the job pool.",
            pool.threads,
        ),
        (
            "ringport_job_pool_queued",
            "Jobs queued, not yet taken by a pool thread.",
            pool.queued,
        ),
        (
            "ringport_job_pool_running",
            "Jobs running on the pool now.",
            pool.running,
        ),
    ] {
        family_head(out, name, Kind::Gauge, help);
        let _ = writeln!(out, "{name} {value}");
    }
    for (name, help, p) in [
        (
            "ringport_job_queue_wait_seconds",
            "How long jobs waited in the pool's queue.",
            &pool.queue_wait,
        ),
        (
            "ringport_job_run_seconds",
            "How long jobs ran.",
            &pool.run_time,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} summary");
        for (q, d) in [("0.5", p.p50), ("0.9", p.p90), ("0.99", p.p99)] {
            let _ = writeln!(out, "{name}{{quantile=\"{q}\"}} {}", d.as_secs_f64());
        }
        let _ = writeln!(out, "{name}_sum {}", p.total.as_secs_f64());
        let _ = writeln!(out, "{name}_count {}", p.count);
    }
}

/// The per-listener families: each listener's series labelled with its name.
fn render_listeners(out: &mut String, listeners: &[ListenerStats]) {
    for m in PER_LISTENER {
        family_head(out, m.name, m.kind, m.help);
        for l in listeners {
            let name = LabelValue(&l.name);
            let _ = writeln!(out, "{}{{listener=\"{name}\"}} {}", m.name, (m.get)(l));
        }
    }
    for (family, help, get) in [
        (
            "ringport_listener_refused_total",
            "Connections a listener refused at accept, by reason.",
            (|l| &l.refused_by) as fn(&ListenerStats) -> &Vec<(&'static str, u64)>,
        ),
        (
            "ringport_listener_closed_total",
            "A listener's connections closed, by reason.",
            |l| &l.closed_by,
        ),
    ] {
        family_head(out, family, Kind::Counter, help);
        for l in listeners {
            for (reason, count) in get(l) {
                let _ = writeln!(
                    out,
                    "{family}{{listener=\"{}\",reason=\"{}\"}} {count}",
                    LabelValue(&l.name),
                    LabelValue(reason)
                );
            }
        }
    }
}

fn family_head(out: &mut String, name: &str, kind: Kind, help: &str) {
    let _ = writeln!(out, "# HELP {name} {}", HelpText(help));
    let _ = writeln!(out, "# TYPE {name} {}", kind.name());
}

/// A counter family with one series per reason.
fn labelled(out: &mut String, name: &str, help: &str, by_reason: &[(&str, u64)]) {
    family_head(out, name, Kind::Counter, help);
    for (reason, count) in by_reason {
        let _ = writeln!(out, "{name}{{reason=\"{}\"}} {count}", LabelValue(reason));
    }
}

/// A label value, escaped as the format requires: `\` → `\\`, `"` → `\"`, newline → `\n`.
struct LabelValue<'a>(&'a str);

impl fmt::Display for LabelValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// `# HELP` text, escaped: `\` → `\\`, newline → `\n`.
struct HelpText<'a>(&'a str);

impl fmt::Display for HelpText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
