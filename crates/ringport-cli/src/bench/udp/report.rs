//! The UDP load's result: its JSON shape, its text form, and the pass/fail verdict.

use super::client::Tally;
use crate::report::Latency;
use serde::Serialize;
use std::fmt;

/// The outcome of one UDP load run; serialized as the `--json` report.
#[derive(Debug, Clone, Serialize)]
pub struct UdpReport {
    /// Always "udp".
    pub mode: &'static str,
    pub connections: usize,
    /// Bytes per datagram, header included.
    pub size: usize,
    /// Datagrams in flight per client socket (closed loop; null in rate mode).
    pub pipeline: Option<usize>,
    /// Rate mode: the scheduled datagrams per second in total (null in closed loop).
    pub target_rate: Option<f64>,
    /// The measured window (after warm-up, until sending stopped).
    pub duration_secs: f64,
    /// `received` per second of the window (the datagrams sent in it and echoed intact,
    /// the last ones possibly after it).
    pub datagrams_per_sec: f64,
    /// Received payload, in 10^6 bytes per second.
    pub mb_per_sec: f64,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    /// `lost` in percent of `sent`.
    pub lost_percent: f64,
    pub late: u64,
    pub reordered: u64,
    pub corrupt: u64,
    pub behind: u64,
    pub socket_errors: u64,
    /// Seconds a datagram may take before it counts as lost.
    pub loss_timeout_secs: f64,
    pub latency_us: Latency,
}

impl UdpReport {
    /// The report of a run whose counted datagrams are all resolved.
    pub fn new(
        connections: usize,
        size: usize,
        pipeline: Option<usize>,
        target_rate: Option<f64>,
        duration_secs: f64,
        loss_timeout_secs: f64,
        tally: &Tally,
    ) -> UdpReport {
        let secs = duration_secs.max(1e-9);
        let received = tally.received as f64;
        UdpReport {
            mode: "udp",
            connections,
            size,
            pipeline,
            target_rate,
            duration_secs,
            datagrams_per_sec: received / secs,
            mb_per_sec: received * size as f64 / secs / 1e6,
            sent: tally.sent,
            received: tally.received,
            lost: tally.lost,
            lost_percent: 100.0 * tally.lost as f64 / (tally.sent.max(1)) as f64,
            late: tally.late,
            reordered: tally.reordered,
            corrupt: tally.corrupt,
            behind: tally.behind,
            socket_errors: tally.socket_errors,
            loss_timeout_secs,
            latency_us: Latency::from_nanos(&tally.latency),
        }
    }

    /// Pass or fail: an echo that came back changed fails the run, and so does a run in
    /// which nothing came back. Loss, lateness and reordering are results, not failures.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.corrupt == 0,
            "{} datagrams came back changed",
            self.corrupt
        );
        anyhow::ensure!(
            self.received > 0,
            "no datagram came back ({} sent, {} socket errors)",
            self.sent,
            self.socket_errors
        );
        Ok(())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report always serializes")
    }
}

impl fmt::Display for UdpReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.latency_us;
        match (self.pipeline, self.target_rate) {
            (_, Some(rate)) => {
                writeln!(f, "mode          udp, open loop at {rate:.0} datagrams/s")?
            }
            (pipeline, None) => writeln!(
                f,
                "mode          udp, closed loop, {} in flight per socket",
                pipeline.unwrap_or(1)
            )?,
        }
        writeln!(f, "sockets       {}", self.connections)?;
        writeln!(f, "size          {} bytes", self.size)?;
        writeln!(f, "duration      {:.2} s", self.duration_secs)?;
        writeln!(f, "datagrams/s   {:.0}", self.datagrams_per_sec)?;
        writeln!(f, "MB/s          {:.2}", self.mb_per_sec)?;
        writeln!(f, "sent          {}", self.sent)?;
        writeln!(f, "received      {}", self.received)?;
        writeln!(
            f,
            "lost          {} ({:.3} %, not back within {} s)",
            self.lost, self.lost_percent, self.loss_timeout_secs
        )?;
        writeln!(f, "reordered     {}", self.reordered)?;
        writeln!(f, "corrupt       {}", self.corrupt)?;
        if self.late > 0 {
            writeln!(f, "late          {} (back after counted lost)", self.late)?;
        }
        if self.behind > 0 {
            writeln!(f, "behind        {} (scheduled sends skipped)", self.behind)?;
        }
        if self.socket_errors > 0 {
            writeln!(f, "socket errors {}", self.socket_errors)?;
        }
        write!(
            f,
            "latency µs    p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
            l.p50, l.p90, l.p99, l.p999, l.max
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(tally: &Tally) -> UdpReport {
        UdpReport::new(20, 1200, Some(4), None, 2.0, 1.0, tally)
    }

    #[test]
    fn json_has_the_documented_fields() {
        let mut t = Tally::new();
        t.sent = 10;
        t.received = 9;
        t.lost = 1;
        t.latency.record(12_000).unwrap();
        let v: serde_json::Value = serde_json::from_str(&report(&t).to_json()).unwrap();
        assert_eq!(v["mode"], "udp");
        for k in [
            "connections",
            "size",
            "pipeline",
            "duration_secs",
            "datagrams_per_sec",
            "mb_per_sec",
            "sent",
            "received",
            "lost",
            "lost_percent",
            "reordered",
            "corrupt",
        ] {
            assert!(v[k].is_number(), "missing {k}: {v}");
        }
        for k in ["p50", "p90", "p99", "p999", "max"] {
            assert!(v["latency_us"][k].is_number(), "missing latency_us.{k}");
        }
        assert_eq!(v["datagrams_per_sec"], 4.5);
        assert_eq!(v["lost_percent"], 10.0);
        assert!(v["target_rate"].is_null());
    }

    #[test]
    fn check_fails_on_corruption_or_nothing_back() {
        let mut t = Tally::new();
        t.sent = 10;
        assert!(report(&t).check().is_err());
        t.received = 5;
        t.lost = 5;
        assert!(report(&t).check().is_ok(), "loss alone passes");
        t.corrupt = 1;
        assert!(report(&t).check().is_err());
    }

    #[test]
    fn the_text_names_every_count() {
        let t = Tally::new();
        let text = report(&t).to_string();
        for label in [
            "datagrams/s",
            "MB/s",
            "sent",
            "received",
            "lost",
            "reordered",
        ] {
            assert!(text.contains(label), "no {label} in:\n{text}");
        }
        assert!(text.contains("corrupt") && text.contains("p99.9"));
        assert!(!text.contains("\nlate "), "zero late is not shown:\n{text}");
    }
}
