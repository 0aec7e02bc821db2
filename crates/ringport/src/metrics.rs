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

/// How a metric behaves over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

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

/// The unlabelled metrics, in output order.
const SCALARS: &[Scalar] = &[
    Scalar {
        field: "open",
        name: "ringport_open_connections",
        kind: Kind::Gauge,
        help: "Connections open now.",
        get: |s| s.open,
    },
    Scalar {
        field: "queued_bytes",
        name: "ringport_queued_bytes",
        kind: Kind::Gauge,
        help: "Bytes queued for sending and not yet taken by the kernel.",
        get: |s| s.queued_bytes,
    },
    Scalar {
        field: "inflight_ops",
        name: "ringport_inflight_operations",
        kind: Kind::Gauge,
        help: "Connection operations submitted and not yet completed.",
        get: |s| s.inflight_ops,
    },
    Scalar {
        field: "frame_bytes",
        name: "ringport_frame_bytes",
        kind: Kind::Gauge,
        help: "Bytes held in partly received frames.",
        get: |s| s.frame_bytes,
    },
    Scalar {
        field: "workers",
        name: "ringport_workers",
        kind: Kind::Gauge,
        help: "I/O workers started.",
        get: |s| s.workers,
    },
    Scalar {
        field: "workers_lost",
        name: "ringport_workers_lost",
        kind: Kind::Gauge,
        help: "I/O workers lost (non-zero: the server is degraded).",
        get: |s| s.workers_lost,
    },
    Scalar {
        field: "refused_send_bytes",
        name: "ringport_refused_send_bytes_total",
        kind: Kind::Counter,
        help: "Bytes refused by sends after shutdown_write or abort.",
        get: |s| s.refused_send_bytes,
    },
    Scalar {
        field: "accepted",
        name: "ringport_accepted_total",
        kind: Kind::Counter,
        help: "Inbound connections accepted.",
        get: |s| s.accepted,
    },
    Scalar {
        field: "rejected",
        name: "ringport_rejected_total",
        kind: Kind::Counter,
        help: "Inbound connections the handler vetoed.",
        get: |s| s.rejected,
    },
    Scalar {
        field: "connected",
        name: "ringport_connected_total",
        kind: Kind::Counter,
        help: "Outbound connects that succeeded.",
        get: |s| s.connected,
    },
    Scalar {
        field: "connect_failed",
        name: "ringport_connect_failed_total",
        kind: Kind::Counter,
        help: "Outbound connects that failed.",
        get: |s| s.connect_failed,
    },
    Scalar {
        field: "bytes_in",
        name: "ringport_received_bytes_total",
        kind: Kind::Counter,
        help: "Bytes received.",
        get: |s| s.bytes_in,
    },
    Scalar {
        field: "bytes_out",
        name: "ringport_sent_bytes_total",
        kind: Kind::Counter,
        help: "Bytes sent.",
        get: |s| s.bytes_out,
    },
    Scalar {
        field: "undelivered_bytes",
        name: "ringport_undelivered_bytes_total",
        kind: Kind::Counter,
        help: "Bytes accepted for sending that were never sent.",
        get: |s| s.undelivered_bytes,
    },
    Scalar {
        field: "accept_errors",
        name: "ringport_accept_errors_total",
        kind: Kind::Counter,
        help: "Accept calls that failed (EMFILE, ENFILE, ...) and paused a listener.",
        get: |s| s.accept_errors,
    },
    Scalar {
        field: "timeouts_fired",
        name: "ringport_timeouts_fired_total",
        kind: Kind::Counter,
        help: "Connections closed by one of their timeouts.",
        get: |s| s.timeouts_fired,
    },
    Scalar {
        field: "timers_fired",
        name: "ringport_timers_fired_total",
        kind: Kind::Counter,
        help: "Handler timers that fired.",
        get: |s| s.timers_fired,
    },
    Scalar {
        field: "slow_readers",
        name: "ringport_slow_readers_total",
        kind: Kind::Counter,
        help: "Connections closed as slow readers.",
        get: |s| s.slow_readers,
    },
    Scalar {
        field: "protocol_errors",
        name: "ringport_protocol_errors_total",
        kind: Kind::Counter,
        help: "Connections closed because their bytes could not be framed.",
        get: |s| s.protocol_errors,
    },
    Scalar {
        field: "frames_discarded",
        name: "ringport_frames_discarded_total",
        kind: Kind::Counter,
        help: "Oversized frames skipped by a codec in discard mode.",
        get: |s| s.frames_discarded,
    },
    Scalar {
        field: "handler_panics",
        name: "ringport_handler_panics_total",
        kind: Kind::Counter,
        help: "Handler callbacks that panicked.",
        get: |s| s.handler_panics,
    },
    Scalar {
        field: "late_sends",
        name: "ringport_late_sends_total",
        kind: Kind::Counter,
        help: "Sends through a connection handle after the connection had closed.",
        get: |s| s.late_sends,
    },
    Scalar {
        field: "enobufs",
        name: "ringport_enobufs_total",
        kind: Kind::Counter,
        help: "Receives that found the provided-buffer ring empty.",
        get: |s| s.enobufs,
    },
    Scalar {
        field: "stale_completions",
        name: "ringport_stale_completions_total",
        kind: Kind::Counter,
        help: "Completions for a connection slot that had been reused.",
        get: |s| s.stale_completions,
    },
    Scalar {
        field: "cq_overflows",
        name: "ringport_cq_overflows_total",
        kind: Kind::Counter,
        help: "Wake-ups that found the completion queue overflowed.",
        get: |s| s.cq_overflows,
    },
];

/// `Stats` fields rendered as labelled series rather than through [`SCALARS`]: the
/// totals `refused` and `closed` are the sums of their per-reason series.
#[cfg_attr(not(test), allow(dead_code))]
const LABELLED_FIELDS: [&str; 6] = [
    "refused",
    "refused_by",
    "closed",
    "closed_by",
    "backend",
    "listeners",
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
    for m in SCALARS {
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
    out
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
