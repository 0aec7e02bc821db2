//! Progress of `get` and `put` on stderr: a live bar with rate and ETA redrawn in place
//! on a terminal, plain lines (one a second, and a final one) otherwise.

use ringport::ByteSize;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Time between two redraws of the bar.
const BAR_EVERY: Duration = Duration::from_millis(100);
/// Time between two plain lines.
const LINE_EVERY: Duration = Duration::from_secs(1);
/// Cells of the bar.
const BAR_WIDTH: usize = 30;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Bar,
    Lines,
}

impl Style {
    /// The bar if stderr is a terminal, else lines.
    pub fn for_stderr() -> Style {
        if std::io::stderr().is_terminal() {
            Style::Bar
        } else {
            Style::Lines
        }
    }
}

/// One transfer's progress.
pub struct Progress {
    label: String,
    style: Style,
    total: u64,
    /// Bytes there before this run (a resumed download).
    start: u64,
    done: u64,
    began: Instant,
    shown: Option<Instant>,
}

impl Progress {
    /// `total` bytes in all, `start` of them there already.
    pub fn new(label: impl Into<String>, total: u64, start: u64, style: Style) -> Progress {
        Progress {
            label: label.into(),
            style,
            total,
            start,
            done: start,
            began: Instant::now(),
            shown: None,
        }
    }

    /// `done` of the total bytes are there now; shows it if it is time to.
    pub fn update(&mut self, done: u64) {
        self.done = done;
        let every = match self.style {
            Style::Bar => BAR_EVERY,
            Style::Lines => LINE_EVERY,
        };
        let now = Instant::now();
        let due = match self.shown {
            Some(at) => now.duration_since(at) >= every,
            None => now.duration_since(self.began) >= every,
        };
        if due {
            self.shown = Some(now);
            self.show(false);
        }
    }

    /// Show the final state (and end the bar's line).
    pub fn finish(&mut self, done: u64) {
        self.done = done;
        self.show(true);
    }

    fn show(&self, last: bool) {
        let elapsed = self.began.elapsed();
        let text = match self.style {
            Style::Bar => format!(
                "\r{}\x1b[K{}",
                bar_line(&self.label, self.done, self.total, self.start, elapsed),
                if last { "\n" } else { "" }
            ),
            Style::Lines => format!(
                "{}\n",
                plain_line(
                    &self.label,
                    self.done,
                    self.total,
                    self.start,
                    elapsed,
                    last
                )
            ),
        };
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    }
}

/// Bytes per second moved in this run.
fn rate(done: u64, start: u64, elapsed: Duration) -> f64 {
    done.saturating_sub(start) as f64 / elapsed.as_secs_f64().max(1e-3)
}

/// `m:ss` (or `h:mm:ss`), or `?` when unknown.
fn clock(secs: Option<f64>) -> String {
    let Some(secs) = secs.filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e8) else {
        return "?".to_string();
    };
    let s = secs.round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

fn percent(done: u64, total: u64) -> f64 {
    if total == 0 {
        100.0
    } else {
        done as f64 * 100.0 / total as f64
    }
}

fn eta(done: u64, total: u64, rate: f64) -> Option<f64> {
    (rate > 0.0).then(|| total.saturating_sub(done) as f64 / rate)
}

/// `LABEL [#########-----]  45.0%  450.0 MiB / 1.0 GiB  120.3 MiB/s  ETA 0:05`.
pub fn bar_line(label: &str, done: u64, total: u64, start: u64, elapsed: Duration) -> String {
    let pct = percent(done, total);
    let filled = ((pct / 100.0) * BAR_WIDTH as f64).floor() as usize;
    let filled = filled.min(BAR_WIDTH);
    let r = rate(done, start, elapsed);
    format!(
        "{label} [{}{}] {pct:5.1}%  {} / {}  {}/s  ETA {}",
        "#".repeat(filled),
        "-".repeat(BAR_WIDTH - filled),
        ByteSize(done),
        ByteSize(total),
        ByteSize(r.round() as u64),
        clock(eta(done, total, r)),
    )
}

/// `LABEL: 45.0% (450.0 MiB of 1.0 GiB)  120.3 MiB/s  ETA 0:05`, or at the end
/// `LABEL: done, 1.0 GiB in 8.5 s (120.3 MiB/s)`.
pub fn plain_line(
    label: &str,
    done: u64,
    total: u64,
    start: u64,
    elapsed: Duration,
    last: bool,
) -> String {
    let r = rate(done, start, elapsed);
    if last {
        let state = if done >= total { "done" } else { "stopped" };
        format!(
            "{label}: {state}, {} of {} in {:.1} s ({}/s)",
            ByteSize(done),
            ByteSize(total),
            elapsed.as_secs_f64(),
            ByteSize(r.round() as u64),
        )
    } else {
        format!(
            "{label}: {:.1}% ({} of {})  {}/s  ETA {}",
            percent(done, total),
            ByteSize(done),
            ByteSize(total),
            ByteSize(r.round() as u64),
            clock(eta(done, total, r)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn the_bar_fills_with_the_rate_and_eta() {
        let line = bar_line("x", 50 * MIB, 100 * MIB, 0, Duration::from_secs(5));
        assert_eq!(
            line,
            "x [###############---------------]  50.0%  50.0 MiB / 100.0 MiB  10.0 MiB/s  ETA 0:05"
        );
        let full = bar_line("x", 0, 0, 0, Duration::ZERO);
        assert!(
            full.contains("[##############################] 100.0%"),
            "{full}"
        );
    }

    #[test]
    fn plain_lines_count_only_this_runs_bytes_in_the_rate() {
        let line = plain_line(
            "get f",
            60 * MIB,
            100 * MIB,
            40 * MIB,
            Duration::from_secs(2),
            false,
        );
        assert_eq!(
            line,
            "get f: 60.0% (60.0 MiB of 100.0 MiB)  10.0 MiB/s  ETA 0:04"
        );
        let last = plain_line(
            "get f",
            100 * MIB,
            100 * MIB,
            0,
            Duration::from_secs(4),
            true,
        );
        assert_eq!(
            last,
            "get f: done, 100.0 MiB of 100.0 MiB in 4.0 s (25.0 MiB/s)"
        );
        assert!(plain_line("p", 1, 2, 0, Duration::from_secs(1), true).contains("stopped"));
    }

    #[test]
    fn clocks() {
        assert_eq!(clock(Some(0.4)), "0:00");
        assert_eq!(clock(Some(65.0)), "1:05");
        assert_eq!(clock(Some(3725.0)), "1:02:05");
        assert_eq!(clock(None), "?");
        assert_eq!(clock(Some(f64::INFINITY)), "?");
        assert_eq!(eta(0, 10, 0.0), None);
    }
}
