//! The load tool's result: its JSON shape, its text form, and the pass/fail verdict.

use crate::bench::AttackReport;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::fmt;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    /// Percentiles of a histogram of nanoseconds.
    pub fn from_nanos(h: &Histogram<u64>) -> Latency {
        let us = |ns: u64| ns as f64 / 1000.0;
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        }
    }
}

/// Errors seen during a run.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Errors {
    /// Connects that failed.
    pub connect: u64,
    /// Echoed messages whose bytes differed from what was sent (or echo bytes nobody sent).
    pub mismatch: u64,
    /// Connections that closed before the run had finished with them.
    pub closed: u64,
    /// Rate mode: sends skipped because the connection already had the maximum number
    /// of messages outstanding (the server fell behind the schedule).
    pub behind: u64,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.connect + self.mismatch + self.closed + self.behind
    }
}

/// Which load ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModeName {
    ClosedLoop,
    Rate,
    Churn,
    Idle,
    Attack,
}

impl ModeName {
    pub fn as_str(self) -> &'static str {
        match self {
            ModeName::ClosedLoop => "closed-loop",
            ModeName::Rate => "rate",
            ModeName::Churn => "churn",
            ModeName::Idle => "idle",
            ModeName::Attack => "attack",
        }
    }
}

/// The outcome of one load run; serialized as the `--json` report.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub mode: ModeName,
    pub connections: usize,
    /// Payload bytes per message (a codec's framing comes on top).
    pub size: usize,
    pub pipeline: usize,
    /// The framing the messages used ("raw", "length:4", "line", ...).
    pub codec: String,
    /// The measured window (after warm-up, until sending stopped).
    pub duration_secs: f64,
    /// Messages echoed completely within the measured window.
    pub messages: u64,
    pub msgs_per_sec: f64,
    /// Echoed payload, in 10^6 bytes per second.
    pub mb_per_sec: f64,
    pub latency_us: Latency,
    pub errors: Errors,
    /// Rate mode: the scheduled messages per second.
    pub target_rate: Option<f64>,
    /// Churn mode: completed cycles per second, and their number.
    pub connections_per_sec: Option<f64>,
    pub cycles: Option<u64>,
    /// Idle mode: connections asked for, and the seconds until all of them were open
    /// (null if some never opened).
    pub idle_connections: Option<usize>,
    pub all_up_secs: Option<f64>,
    /// Attack mode: what the hostile client saw (null in the other modes).
    pub attack: Option<AttackReport>,
}

impl BenchReport {
    /// Pass or fail: any error is a failure, and so is a run that did nothing (no
    /// message; churn: no cycle; idle: not every connection up). An attack always
    /// passes: how the server treated it is its result.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.mode == ModeName::Attack {
            return Ok(());
        }
        let e = &self.errors;
        if e.total() > 0 {
            anyhow::bail!(
                "load run had errors: {} connect failures, {} mismatches, {} unexpected closes, {} sends behind schedule",
                e.connect,
                e.mismatch,
                e.closed,
                e.behind
            );
        }
        match self.mode {
            ModeName::ClosedLoop | ModeName::Rate if self.messages == 0 => {
                anyhow::bail!("no message completed")
            }
            ModeName::Churn if self.cycles.unwrap_or(0) == 0 => {
                anyhow::bail!("no connect-echo-close cycle completed")
            }
            ModeName::Idle if self.all_up_secs.is_none() => {
                anyhow::bail!("not every idle connection came up")
            }
            _ => Ok(()),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report always serializes")
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.latency_us;
        let e = &self.errors;
        if let Some(attack) = &self.attack {
            writeln!(f, "mode          {}", self.mode.as_str())?;
            writeln!(f, "connections   {}", self.connections)?;
            writeln!(f, "size          {} bytes ({})", self.size, self.codec)?;
            return write!(f, "{}", attack.to_string().trim_end());
        }
        writeln!(f, "mode          {}", self.mode.as_str())?;
        writeln!(f, "connections   {}", self.connections)?;
        writeln!(f, "size          {} bytes ({})", self.size, self.codec)?;
        writeln!(f, "pipeline      {}", self.pipeline)?;
        writeln!(f, "duration      {:.2} s", self.duration_secs)?;
        writeln!(f, "messages      {}", self.messages)?;
        writeln!(f, "msgs/s        {:.0}", self.msgs_per_sec)?;
        writeln!(f, "MB/s          {:.2}", self.mb_per_sec)?;
        if let Some(rate) = self.target_rate {
            writeln!(f, "target rate   {rate:.0} msgs/s")?;
        }
        if let (Some(cycles), Some(cps)) = (self.cycles, self.connections_per_sec) {
            writeln!(f, "cycles        {cycles}")?;
            writeln!(f, "conns/s       {cps:.0}")?;
        }
        if let Some(n) = self.idle_connections {
            writeln!(f, "idle conns    {n}")?;
            match self.all_up_secs {
                Some(t) => writeln!(f, "all up after  {t:.3} s")?,
                None => writeln!(f, "all up after  never")?,
            }
        }
        writeln!(
            f,
            "latency µs    p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
            l.p50, l.p90, l.p99, l.p999, l.max
        )?;
        write!(
            f,
            "errors        connect {}  mismatch {}  closed {}  behind {}",
            e.connect, e.mismatch, e.closed, e.behind
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(messages: u64, errors: Errors) -> BenchReport {
        BenchReport {
            mode: ModeName::ClosedLoop,
            connections: 2,
            size: 64,
            pipeline: 1,
            codec: "raw".to_string(),
            duration_secs: 1.0,
            messages,
            msgs_per_sec: messages as f64,
            mb_per_sec: 0.0,
            latency_us: Latency::default(),
            errors,
            target_rate: None,
            connections_per_sec: None,
            cycles: None,
            idle_connections: None,
            all_up_secs: None,
            attack: None,
        }
    }

    #[test]
    fn json_has_the_documented_fields() {
        let v: serde_json::Value =
            serde_json::from_str(&report(5, Errors::default()).to_json()).expect("valid json");
        for k in [
            "connections",
            "size",
            "pipeline",
            "duration_secs",
            "messages",
            "msgs_per_sec",
            "mb_per_sec",
            "target_rate",
            "connections_per_sec",
            "cycles",
            "idle_connections",
            "all_up_secs",
            "attack",
        ] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        assert_eq!(v["mode"], "closed-loop");
        assert!(v["target_rate"].is_null());
        for k in ["p50", "p90", "p99", "p999", "max"] {
            assert!(v["latency_us"].get(k).is_some(), "missing latency_us.{k}");
        }
        for k in ["connect", "mismatch", "closed", "behind"] {
            assert_eq!(v["errors"][k], 0, "errors.{k}");
        }
    }

    #[test]
    fn check_fails_on_errors_or_no_messages() {
        assert!(report(5, Errors::default()).check().is_ok());
        assert!(report(0, Errors::default()).check().is_err());
        let mismatch = Errors {
            mismatch: 1,
            ..Errors::default()
        };
        assert!(report(5, mismatch).check().is_err());
    }

    #[test]
    fn check_judges_churn_by_cycles_and_idle_by_all_up() {
        let mut churn = report(0, Errors::default());
        churn.mode = ModeName::Churn;
        churn.cycles = Some(0);
        assert!(churn.check().is_err());
        churn.cycles = Some(3);
        assert!(churn.check().is_ok());
        let mut idle = report(0, Errors::default());
        idle.mode = ModeName::Idle;
        assert!(idle.check().is_err());
        idle.all_up_secs = Some(0.1);
        assert!(idle.check().is_ok());
        let v: serde_json::Value = serde_json::from_str(&idle.to_json()).expect("json");
        assert_eq!(v["mode"], "idle");
    }

    #[test]
    fn latency_of_an_empty_histogram_is_zero() {
        let h = Histogram::<u64>::new(3).expect("histogram");
        assert_eq!(Latency::from_nanos(&h).max, 0.0);
    }
}
