//! `Display` for [`Stats`]: a few lines a person reads. Zero counts are left out except
//! the headline ones (open, accepted, connected, closed, bytes), so what is printed is
//! what happened.

use super::{ListenerStats, Shown, Stats, COUNTERS};
use std::fmt;

/// A byte count in binary units for people: `512 B`, `1.2 KiB`, `140.3 MiB`. The
/// alternate form (`{:#}`) adds the exact count: `140.3 MiB (147,155,392 B)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if n < 1024 {
            return write!(f, "{n} B");
        }
        let mut value = n as f64 / 1024.0;
        let mut unit = 0;
        // Move up while the value would print as 1024.0 or more in this unit.
        while value >= 1023.95 && unit + 1 < UNITS.len() {
            value /= 1024.0;
            unit += 1;
        }
        write!(f, "{value:.1} {}", UNITS[unit])?;
        if f.alternate() {
            write!(f, " ({} B)", Count(n))?;
        }
        Ok(())
    }
}

/// A count with thousands separators: `1,299,673`.
struct Count(u64);

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.0.to_string();
        for (i, d) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Writes `label value` items separated by `, `, skipping zero values when asked.
struct List<'a, 'b> {
    f: &'a mut fmt::Formatter<'b>,
    first: bool,
}

impl<'a, 'b> List<'a, 'b> {
    fn new(f: &'a mut fmt::Formatter<'b>) -> Self {
        List { f, first: true }
    }

    fn item(&mut self, label: &str, value: impl fmt::Display) -> fmt::Result {
        if !self.first {
            self.f.write_str(", ")?;
        }
        self.first = false;
        write!(self.f, "{label} {value}")
    }

    fn count(&mut self, label: &str, n: u64) -> fmt::Result {
        self.item(label, Count(n))
    }

    fn nonzero(&mut self, label: &str, n: u64) -> fmt::Result {
        if n == 0 {
            return Ok(());
        }
        self.count(label, n)
    }

    fn nonzero_bytes(&mut self, label: &str, n: u64) -> fmt::Result {
        if n == 0 {
            return Ok(());
        }
        self.item(label, format_args!("{:#}", ByteSize(n)))
    }

    /// The non-zero entries of a by-reason list, their names with spaces for underscores.
    fn reasons(&mut self, by: &[(&'static str, u64)]) -> fmt::Result {
        for &(name, n) in by.iter().filter(|(_, n)| *n > 0) {
            self.count(&name.replace('_', " "), n)?;
        }
        Ok(())
    }
}

/// The width of the label column.
const LABEL: usize = 12;

fn label(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    write!(f, "{text:<LABEL$} ")
}

fn any(by: &[(&'static str, u64)]) -> bool {
    by.iter().any(|(_, n)| *n > 0)
}

/// One counter of the `anomalies` line: its field name (for the coverage test), its
/// label, its value, and whether it counts bytes.
struct Anomaly {
    #[cfg_attr(not(test), allow(dead_code))]
    field: &'static str,
    label: &'static str,
    value: u64,
    bytes: bool,
}

/// The `Stats` fields outside the counter table, each written on a line of its own
/// (`refused` is the sum of `refused_by`).
#[cfg(test)]
const NOT_IN_THE_TABLE: [&str; 7] = [
    "backend",
    "workers",
    "refused",
    "refused_by",
    "closed_by",
    "listeners",
    "job_pool",
];

impl Stats {
    /// The anomaly counters and gauges worth a look (the counter table's rows shown in
    /// the `anomalies` line); the `Display` prints the non-zero ones, in table order.
    fn anomalies(&self) -> Vec<Anomaly> {
        COUNTERS
            .iter()
            .filter_map(|c| {
                let (label, bytes) = match c.shown {
                    Shown::Anomaly(label) => (label, false),
                    Shown::AnomalyBytes(label) => (label, true),
                    Shown::Written => return None,
                };
                Some(Anomaly {
                    field: c.field,
                    label,
                    value: (c.get)(self),
                    bytes,
                })
            })
            .collect()
    }
}

impl fmt::Display for Stats {
    /// ```text
    /// backend      uring
    /// connections  open 0, accepted 100, connected 0, closed 100
    /// bytes        in 140.3 MiB (147,155,392 B), out 140.3 MiB (147,155,392 B)
    /// refused      3: max connections 3
    /// closed by    peer closed 98, timeout idle 2
    /// anomalies    timeouts 2
    /// ```
    /// Refusals, closes, anomalies and handler timers appear only when non-zero; with
    /// several listeners, a block for each follows.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        label(f, "backend")?;
        f.write_str(if self.backend.is_empty() {
            "none"
        } else {
            self.backend
        })?;
        if self.workers > 0 {
            let plural = if self.workers == 1 { "" } else { "s" };
            write!(f, ", {} worker{plural}", self.workers)?;
        }
        f.write_str("\n")?;
        if self.workers_lost > 0 {
            label(f, "health")?;
            writeln!(f, "{}", crate::Health::of(self))?;
        }
        label(f, "connections")?;
        let mut l = List::new(f);
        l.count("open", self.open)?;
        l.count("accepted", self.accepted)?;
        l.count("connected", self.connected)?;
        l.count("closed", self.closed)?;
        f.write_str("\n")?;
        label(f, "bytes")?;
        write!(
            f,
            "in {:#}, out {:#}",
            ByteSize(self.bytes_in),
            ByteSize(self.bytes_out)
        )?;
        if self.refused > 0 {
            f.write_str("\n")?;
            label(f, "refused")?;
            write!(f, "{}: ", Count(self.refused))?;
            List::new(f).reasons(&self.refused_by)?;
        }
        if any(&self.closed_by) {
            f.write_str("\n")?;
            label(f, "closed by")?;
            List::new(f).reasons(&self.closed_by)?;
        }
        let anomalies = self.anomalies();
        if anomalies.iter().any(|a| a.value > 0) {
            f.write_str("\n")?;
            label(f, "anomalies")?;
            let mut l = List::new(f);
            for a in anomalies {
                if a.bytes {
                    l.nonzero_bytes(a.label, a.value)?;
                } else {
                    l.nonzero(a.label, a.value)?;
                }
            }
        }
        if self.timers_fired > 0 {
            f.write_str("\n")?;
            label(f, "timers")?;
            write!(f, "fired {}", Count(self.timers_fired))?;
        }
        let watched = self.watches + self.watch_notifications + self.watches_removed;
        if watched + self.watches_shut_down > 0 {
            f.write_str("\n")?;
            label(f, "watches")?;
            let mut l = List::new(f);
            l.count("now", self.watches)?;
            l.count("notifications", self.watch_notifications)?;
            l.count("removed", self.watches_removed)?;
            l.nonzero("at shutdown", self.watches_shut_down)?;
        }
        let datagrams = [self.datagrams_in, self.datagrams_out];
        let datagram_bytes = [self.datagram_bytes_in, self.datagram_bytes_out];
        if datagrams.iter().chain(&datagram_bytes).any(|&n| n > 0) {
            f.write_str("\n")?;
            label(f, "datagrams")?;
            write!(
                f,
                "in {} ({:#}), out {} ({:#})",
                Count(self.datagrams_in),
                ByteSize(self.datagram_bytes_in),
                Count(self.datagrams_out),
                ByteSize(self.datagram_bytes_out)
            )?;
        }
        let jobs = [self.jobs_spawned, self.jobs_done, self.jobs_outstanding];
        if jobs.iter().any(|&n| n > 0) || self.job_pool.is_some() {
            f.write_str("\n")?;
            label(f, "jobs")?;
            let mut l = List::new(f);
            l.count("spawned", self.jobs_spawned)?;
            l.count("done", self.jobs_done)?;
            l.count("outstanding", self.jobs_outstanding)?;
            if let Some(pool) = &self.job_pool {
                l.count("queued", pool.queued)?;
                l.count("running", pool.running)?;
                l.count("threads", pool.threads)?;
            }
            if let Some(pool) = self.job_pool.filter(|p| p.queue_wait.count > 0) {
                f.write_str("\n")?;
                label(f, "job times")?;
                write!(f, "queue wait {}; run {}", pool.queue_wait, pool.run_time)?;
            }
        }
        if self.files_sent + self.files_received + self.file_bytes_sent + self.file_bytes_received
            > 0
        {
            f.write_str("\n")?;
            label(f, "files")?;
            write!(
                f,
                "sent {} ({:#}), received {} ({:#})",
                Count(self.files_sent),
                ByteSize(self.file_bytes_sent),
                Count(self.files_received),
                ByteSize(self.file_bytes_received)
            )?;
        }
        if self.posts > 0 {
            f.write_str("\n")?;
            label(f, "posts")?;
            write!(f, "delivered {}", Count(self.posts))?;
        }
        if self.listeners.len() > 1 {
            for listener in &self.listeners {
                f.write_str("\n")?;
                label(f, "listener")?;
                listener.fmt(f)?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for ListenerStats {
    /// `NAME: open 3, accepted 10, closed 7, in 1.2 KiB, out 1.2 KiB`, then indented
    /// lines for its non-zero refusals and closes by reason.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.name)?;
        let mut l = List::new(f);
        l.count("open", self.open)?;
        l.count("accepted", self.accepted)?;
        l.count("closed", self.closed)?;
        l.item("in", ByteSize(self.bytes_in))?;
        l.item("out", ByteSize(self.bytes_out))?;
        l.nonzero_bytes("queued", self.queued_bytes)?;
        let indent = LABEL + 3;
        if self.refused > 0 {
            write!(f, "\n{:indent$}refused {}: ", "", Count(self.refused))?;
            List::new(f).reasons(&self.refused_by)?;
        }
        if any(&self.closed_by) {
            write!(f, "\n{:indent$}closed by ", "")?;
            List::new(f).reasons(&self.closed_by)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reasons(names: &[&'static str]) -> Vec<(&'static str, u64)> {
        names.iter().map(|&n| (n, 0)).collect()
    }

    fn empty() -> Stats {
        Stats {
            backend: "poll",
            refused_by: reasons(&["denied", "max_connections", "rate_limited"]),
            closed_by: reasons(&["local", "peer_closed", "timeout_idle"]),
            ..Stats::default()
        }
    }

    #[test]
    fn a_lost_worker_shows_as_degraded_under_the_backend() {
        let mut s = empty();
        s.workers = 2;
        let healthy = s.to_string();
        assert_eq!(healthy.lines().next(), Some("backend      poll, 2 workers"));
        assert!(!healthy.contains("health"));
        s.workers_lost = 1;
        let lines: Vec<String> = s.to_string().lines().map(String::from).collect();
        assert_eq!(lines[1], "health       degraded: 1 of 2 workers lost");
    }

    fn set(list: &mut [(&'static str, u64)], name: &str, n: u64) {
        list.iter_mut().find(|(k, _)| *k == name).unwrap().1 = n;
    }

    #[test]
    fn bytes_read_in_binary_units() {
        assert_eq!(ByteSize(0).to_string(), "0 B");
        assert_eq!(ByteSize(1023).to_string(), "1023 B");
        assert_eq!(ByteSize(1024).to_string(), "1.0 KiB");
        assert_eq!(ByteSize(1536).to_string(), "1.5 KiB");
        assert_eq!(ByteSize(1_258_291).to_string(), "1.2 MiB");
        // Never "1024.0 KiB": the next unit up.
        assert_eq!(ByteSize(1024 * 1024 - 1).to_string(), "1.0 MiB");
        assert_eq!(ByteSize(5 << 30).to_string(), "5.0 GiB");
        assert_eq!(ByteSize(u64::MAX).to_string(), "16.0 EiB");
        assert_eq!(
            format!("{:#}", ByteSize(147_155_392)),
            "140.3 MiB (147,155,392 B)"
        );
        assert_eq!(
            format!("{:#}", ByteSize(999)),
            "999 B",
            "no exact count twice"
        );
    }

    #[test]
    fn counts_have_thousands_separators() {
        for (n, text) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (123_456, "123,456"),
            (1_234_567, "1,234,567"),
        ] {
            assert_eq!(Count(n).to_string(), text);
        }
    }

    #[test]
    fn zeros_are_left_out() {
        let text = empty().to_string();
        assert_eq!(
            text,
            "backend      poll\n\
             connections  open 0, accepted 0, connected 0, closed 0\n\
             bytes        in 0 B, out 0 B"
        );
    }

    #[test]
    fn exactly_the_nonzero_reasons_and_anomalies_are_printed() {
        let mut s = empty();
        s.open = 2;
        s.accepted = 1500;
        s.closed = 1498;
        s.bytes_in = 3 << 20;
        s.bytes_out = 100;
        s.refused = 4;
        set(&mut s.refused_by, "max_connections", 3);
        set(&mut s.refused_by, "rate_limited", 1);
        set(&mut s.closed_by, "peer_closed", 1497);
        set(&mut s.closed_by, "timeout_idle", 1);
        s.timeouts_fired = 1;
        s.inflight_ops = 29;
        s.undelivered_bytes = 2048;
        let text = s.to_string();
        assert_eq!(
            text,
            "backend      poll\n\
             connections  open 2, accepted 1,500, connected 0, closed 1,498\n\
             bytes        in 3.0 MiB (3,145,728 B), out 100 B\n\
             refused      4: max connections 3, rate limited 1\n\
             closed by    peer closed 1,497, timeout idle 1\n\
             anomalies    undelivered 2.0 KiB (2,048 B), timeouts 1, in-flight ops 29"
        );
        assert!(!text.contains("denied") && !text.contains("local"));
    }

    #[test]
    fn each_anomaly_shows_alone_when_it_is_the_only_one() {
        for a in empty().anomalies() {
            let mut s = empty();
            *s.field_mut(a.field).unwrap() = 7;
            let want = if a.bytes { "7 B" } else { "7" };
            let last = s.to_string().lines().last().unwrap().to_string();
            assert_eq!(last, format!("anomalies    {} {want}", a.label));
        }
    }

    /// Every field of `Stats` is printed somewhere: an anomaly row, or a table row
    /// written on a line of its own whose value changes the output (`rejected` shows as
    /// the refusal reason `handler_veto`), or one of the fields outside the table.
    #[test]
    fn every_field_has_a_place() {
        let debug = format!("{:?}", Stats::default());
        let inner = debug
            .strip_prefix("Stats { ")
            .and_then(|t| t.strip_suffix(" }"))
            .expect("Debug of Stats is `Stats { .. }`");
        let blank = empty().to_string();
        for kv in inner.split(", ") {
            let field = kv.split_once(": ").expect("name: value").0;
            if NOT_IN_THE_TABLE.contains(&field) {
                continue;
            }
            let row = COUNTERS
                .iter()
                .find(|c| c.field == field)
                .unwrap_or_else(|| panic!("Stats::{field} is neither in the table nor written"));
            if row.shown == Shown::Written && field != "rejected" {
                let mut s = empty();
                s.workers = 2;
                *s.field_mut(field).unwrap() = 1;
                let mut before = empty();
                before.workers = 2;
                assert_ne!(
                    s.to_string(),
                    before.to_string(),
                    "Stats::{field} is not displayed"
                );
            }
        }
        assert!(!blank.is_empty());
    }

    #[test]
    fn several_listeners_get_a_block_each_one_does_not() {
        let mut s = empty();
        let mut game = ListenerStats {
            name: "game".to_string(),
            open: 1,
            accepted: 5,
            closed: 4,
            bytes_in: 2048,
            bytes_out: 2048,
            refused: 2,
            refused_by: reasons(&["denied", "max_connections"]),
            closed_by: reasons(&["local", "peer_closed"]),
            ..ListenerStats::default()
        };
        set(&mut game.refused_by, "denied", 2);
        set(&mut game.closed_by, "peer_closed", 4);
        s.listeners.push(game);
        assert!(
            !s.to_string().contains("listener"),
            "one listener: no block"
        );
        s.listeners.push(ListenerStats {
            name: "admin".to_string(),
            ..ListenerStats::default()
        });
        let text = s.to_string();
        let blocks: Vec<&str> = text.lines().skip(3).collect();
        assert_eq!(
            blocks,
            [
                "listener     game: open 1, accepted 5, closed 4, in 2.0 KiB, out 2.0 KiB",
                "               refused 2: denied 2",
                "               closed by peer closed 4",
                "listener     admin: open 0, accepted 0, closed 0, in 0 B, out 0 B",
            ]
        );
    }
}
