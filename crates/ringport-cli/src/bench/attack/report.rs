//! What an attack saw: the counters kept while it runs (`Tally`), and the report made
//! of them (the `attack` object of the `--json` report, and its text form).

use super::net::{Ended, Fail};
use super::Attack;
use serde::Serialize;
use std::fmt;
use std::io;
use std::time::Duration;

/// Smallest, middle and largest of a set of values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Spread {
    /// `None` for no values. The median of an even count is the mean of the middle two.
    pub fn of(values: &mut [f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        };
        Some(Spread {
            min: values[0],
            median,
            max: values[n - 1],
        })
    }
}

/// Connects that failed, by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ConnectFailures {
    /// ECONNREFUSED.
    pub refused: u64,
    /// Reset or aborted during the handshake.
    pub reset: u64,
    /// No answer within --connect-timeout (or the kernel's own).
    pub timeout: u64,
    /// Anything else (see `first_error`).
    pub other: u64,
    /// Connected, then reset before a byte moved either way (a server turning
    /// connections away once accepted); these count in `connected` too.
    pub reset_early: u64,
}

impl ConnectFailures {
    pub fn total(&self) -> u64 {
        self.refused + self.reset + self.timeout + self.other + self.reset_early
    }
}

/// Connections the server ended after they had been open, by how.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Closes {
    /// An orderly close (FIN).
    pub eof: u64,
    /// A reset (RST), or a broken pipe on write.
    pub reset: u64,
    /// Another error.
    pub other: u64,
}

impl Closes {
    pub fn total(&self) -> u64 {
        self.eof + self.reset + self.other
    }
}

/// One second of a flood (second 1 is the first second of the run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Second {
    pub second: u64,
    pub attempted: u64,
    pub succeeded: u64,
    pub refused: u64,
    pub closed: u64,
}

/// Counters kept while an attack runs.
#[derive(Debug, Default)]
pub struct Tally {
    pub attempted: u64,
    pub connected: u64,
    pub failures: ConnectFailures,
    pub local_errors: u64,
    pub closes: Closes,
    /// Seconds from connect to the server's close, one per close.
    pub close_times: Vec<f64>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub first_error: Option<String>,
}

impl Tally {
    /// Count a failed connect.
    pub fn connect_failed(&mut self, fail: Fail, error: Option<&io::Error>) {
        match fail {
            Fail::Refused => self.failures.refused += 1,
            Fail::Reset => self.failures.reset += 1,
            Fail::Timeout => self.failures.timeout += 1,
            Fail::Local => self.local_errors += 1,
            Fail::Other => self.failures.other += 1,
        }
        if matches!(fail, Fail::Other | Fail::Local) && self.first_error.is_none() {
            self.first_error = error.map(|e| e.to_string());
        }
    }

    /// Count a connection the server ended `after` it opened; one reset before any byte
    /// moved (`moved` false) counts as refused. Returns true if it counted as closed.
    pub fn ended(&mut self, how: Ended, after: Duration, moved: bool) -> bool {
        if how == Ended::Reset && !moved {
            self.failures.reset_early += 1;
            return false;
        }
        self.closed(how, after);
        true
    }

    /// Count a connection the server ended `after` it opened.
    pub fn closed(&mut self, how: Ended, after: Duration) {
        match how {
            Ended::Eof => self.closes.eof += 1,
            Ended::Reset => self.closes.reset += 1,
            Ended::Other => self.closes.other += 1,
        }
        self.close_times.push(after.as_secs_f64());
    }

    pub fn refused(&self) -> u64 {
        self.failures.total()
    }

    /// The report fields every attack fills; the attack adds its own afterwards.
    pub fn into_report(mut self, kind: Attack, target: String, elapsed: Duration) -> AttackReport {
        AttackReport {
            kind,
            target,
            duration_secs: elapsed.as_secs_f64(),
            interval_secs: None,
            attempted: self.attempted,
            connected: self.connected,
            refused: self.failures.total(),
            refused_by: self.failures,
            local_errors: self.local_errors,
            pending_at_end: 0,
            closed: self.closes.total(),
            closed_by: self.closes,
            closed_after_secs: Spread::of(&mut self.close_times),
            open_at_end: 0,
            bytes_sent: self.bytes_sent,
            bytes_received: self.bytes_received,
            first_error: self.first_error,
            stalled: None,
            stalled_after_secs: None,
            written_per_conn: None,
            per_second: None,
            attempted_per_sec: None,
            succeeded_per_sec: None,
            refused_per_sec: None,
            cycles: None,
            cycles_per_sec: None,
            write_errors: None,
        }
    }
}

/// The `attack` object of the report. Fields of another attack are null.
#[derive(Debug, Clone, Serialize)]
pub struct AttackReport {
    pub kind: Attack,
    pub target: String,
    /// From the first connect to the end of --duration.
    pub duration_secs: f64,
    /// Slowloris: seconds between two bytes; slow-reader: the stall threshold.
    pub interval_secs: Option<f64>,
    /// Connects started, and those that completed.
    pub attempted: u64,
    pub connected: u64,
    /// Connects that failed, and connections reset before any byte moved (the sum of
    /// `refused_by`).
    pub refused: u64,
    pub refused_by: ConnectFailures,
    /// Connects this side could not start (no free local port), not counted as refused.
    pub local_errors: u64,
    /// Connects neither completed nor failed when the run ended.
    pub pending_at_end: u64,
    /// Connections the server ended after they had opened (the sum of `closed_by`).
    pub closed: u64,
    pub closed_by: Closes,
    /// Seconds from connect to the server's close (null if nothing closed).
    pub closed_after_secs: Option<Spread>,
    /// Connections still open when the run ended (closed by this tool then).
    pub open_at_end: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// The first unexpected error's message.
    pub first_error: Option<String>,
    /// Slow-reader: connections open at the end whose writes had made no progress for
    /// `interval_secs`, the seconds from connect to their last write, and the bytes each
    /// connection wrote before it closed or the run ended.
    pub stalled: Option<u64>,
    pub stalled_after_secs: Option<Spread>,
    pub written_per_conn: Option<Spread>,
    /// Flood: second by second, and the rates over the run.
    pub per_second: Option<Vec<Second>>,
    pub attempted_per_sec: Option<f64>,
    pub succeeded_per_sec: Option<f64>,
    pub refused_per_sec: Option<f64>,
    /// Reset: connect, partial message, RST cycles completed, their rate, and writes of
    /// the partial message that failed.
    pub cycles: Option<u64>,
    pub cycles_per_sec: Option<f64>,
    pub write_errors: Option<u64>,
}

/// One line of a spread: seconds with 3 decimals, other units whole.
fn spread(f: &mut fmt::Formatter<'_>, label: &str, s: Option<Spread>, unit: &str) -> fmt::Result {
    let p = if unit == " s" { 3 } else { 0 };
    match s {
        Some(s) => writeln!(
            f,
            "{label:<14}min {:.p$}{unit}  median {:.p$}{unit}  max {:.p$}{unit}",
            s.min, s.median, s.max
        ),
        None => writeln!(f, "{label:<14}-"),
    }
}

impl fmt::Display for AttackReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.refused_by;
        let c = &self.closed_by;
        write!(f, "attack        {} on {}", self.kind.as_str(), self.target)?;
        match self.interval_secs {
            Some(i) => writeln!(f, " (interval {i:.3} s)")?,
            None => writeln!(f)?,
        }
        writeln!(f, "duration      {:.2} s", self.duration_secs)?;
        writeln!(
            f,
            "connects      attempted {}  connected {}  pending at end {}  local errors {}",
            self.attempted, self.connected, self.pending_at_end, self.local_errors
        )?;
        writeln!(
            f,
            "refused       {} (refused {}, reset {}, timeout {}, other {}, reset before any byte {})",
            self.refused, r.refused, r.reset, r.timeout, r.other, r.reset_early
        )?;
        writeln!(
            f,
            "closed        {} by the server (eof {}, reset {}, other {})",
            self.closed, c.eof, c.reset, c.other
        )?;
        spread(f, "closed after", self.closed_after_secs, " s")?;
        writeln!(f, "open at end   {}", self.open_at_end)?;
        writeln!(
            f,
            "bytes         sent {}  received {}",
            self.bytes_sent, self.bytes_received
        )?;
        if let Some(stalled) = self.stalled {
            writeln!(f, "stalled       {stalled} (no write progress at the end)")?;
            spread(f, "stalled after", self.stalled_after_secs, " s")?;
            spread(f, "written/conn", self.written_per_conn, " B")?;
        }
        if let Some(seconds) = &self.per_second {
            writeln!(f, "second   attempted  succeeded    refused     closed")?;
            for s in seconds {
                writeln!(
                    f,
                    "{:>6} {:>11} {:>10} {:>10} {:>10}",
                    s.second, s.attempted, s.succeeded, s.refused, s.closed
                )?;
            }
            writeln!(
                f,
                "per second    attempted {:.0}  succeeded {:.0}  refused {:.0}",
                self.attempted_per_sec.unwrap_or(0.0),
                self.succeeded_per_sec.unwrap_or(0.0),
                self.refused_per_sec.unwrap_or(0.0)
            )?;
        }
        if let Some(cycles) = self.cycles {
            writeln!(
                f,
                "cycles        {cycles} ({:.0}/s)  write errors {}",
                self.cycles_per_sec.unwrap_or(0.0),
                self.write_errors.unwrap_or(0)
            )?;
        }
        if let Some(e) = &self.first_error {
            writeln!(f, "first error   {e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_odd_even_and_empty_sets() {
        assert_eq!(Spread::of(&mut []), None);
        let s = Spread::of(&mut [3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.min, s.median, s.max), (1.0, 2.0, 3.0));
        let s = Spread::of(&mut [4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!((s.min, s.median, s.max), (1.0, 2.5, 4.0));
    }

    #[test]
    fn tally_sorts_failures_and_closes() {
        let mut t = Tally::default();
        t.connect_failed(Fail::Refused, None);
        t.connect_failed(Fail::Timeout, None);
        let e = io::Error::other("no route");
        t.connect_failed(Fail::Other, Some(&e));
        t.connect_failed(Fail::Local, None);
        assert!(t.ended(Ended::Eof, Duration::from_millis(200), false));
        assert!(t.ended(Ended::Reset, Duration::from_millis(400), true));
        assert!(!t.ended(Ended::Reset, Duration::from_millis(1), false));
        let r = t.into_report(Attack::Silent, "127.0.0.1:1".into(), Duration::from_secs(1));
        assert_eq!(r.refused, 4);
        assert_eq!(r.refused_by.reset_early, 1);
        assert_eq!(r.local_errors, 1);
        assert_eq!(r.first_error.as_deref(), Some("no route"));
        assert_eq!((r.closed, r.closed_by.eof, r.closed_by.reset), (2, 1, 1));
        let s = r.closed_after_secs.unwrap();
        assert_eq!((s.min, s.max), (0.2, 0.4));
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(v["kind"], "silent");
        assert!(v["per_second"].is_null() && v["stalled"].is_null());
        assert!(r.to_string().contains("closed        2 by the server"));
    }
}
