//! The load tool's result: its JSON shape, its text form, and the pass/fail verdict.

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
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.connect + self.mismatch + self.closed
    }
}

/// The outcome of one load run; serialized as the `--json` report.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub connections: usize,
    pub size: usize,
    pub pipeline: usize,
    /// The measured window (after warm-up, until sending stopped).
    pub duration_secs: f64,
    /// Messages echoed completely within the measured window.
    pub messages: u64,
    pub msgs_per_sec: f64,
    /// Echoed payload, in 10^6 bytes per second.
    pub mb_per_sec: f64,
    pub latency_us: Latency,
    pub errors: Errors,
}

impl BenchReport {
    /// Pass or fail: any error, or no message at all, is a failure.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.errors.total() > 0 {
            anyhow::bail!(
                "load run had errors: {} connect failures, {} mismatches, {} unexpected closes",
                self.errors.connect,
                self.errors.mismatch,
                self.errors.closed
            );
        }
        if self.messages == 0 {
            anyhow::bail!("no message completed");
        }
        Ok(())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report always serializes")
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.latency_us;
        let e = &self.errors;
        writeln!(f, "connections   {}", self.connections)?;
        writeln!(f, "size          {} bytes", self.size)?;
        writeln!(f, "pipeline      {}", self.pipeline)?;
        writeln!(f, "duration      {:.2} s", self.duration_secs)?;
        writeln!(f, "messages      {}", self.messages)?;
        writeln!(f, "msgs/s        {:.0}", self.msgs_per_sec)?;
        writeln!(f, "MB/s          {:.2}", self.mb_per_sec)?;
        writeln!(
            f,
            "latency µs    p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
            l.p50, l.p90, l.p99, l.p999, l.max
        )?;
        write!(
            f,
            "errors        connect {}  mismatch {}  closed {}",
            e.connect, e.mismatch, e.closed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(messages: u64, errors: Errors) -> BenchReport {
        BenchReport {
            connections: 2,
            size: 64,
            pipeline: 1,
            duration_secs: 1.0,
            messages,
            msgs_per_sec: messages as f64,
            mb_per_sec: 0.0,
            latency_us: Latency::default(),
            errors,
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
        ] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        for k in ["p50", "p90", "p99", "p999", "max"] {
            assert!(v["latency_us"].get(k).is_some(), "missing latency_us.{k}");
        }
        for k in ["connect", "mismatch", "closed"] {
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
    fn latency_of_an_empty_histogram_is_zero() {
        let h = Histogram::<u64>::new(3).expect("histogram");
        assert_eq!(Latency::from_nanos(&h).max, 0.0);
    }
}
