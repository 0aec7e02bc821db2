//! The once-a-second progress line on stderr: rewritten in place on a terminal, one line
//! per tick otherwise (logs, pipes, CI).

use std::io::{IsTerminal, Write};
use std::time::Duration;

/// What the count of a tick is.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A running total (messages, cycles): shown with its rates, as `unit`/s.
    Total(&'static str),
    /// A level (connections open): shown as is, followed by `label`.
    Gauge(&'static str),
}

pub struct Progress {
    enabled: bool,
    tty: bool,
    kind: Kind,
    last_count: u64,
    last_elapsed: Duration,
    printed: bool,
}

impl Progress {
    /// Progress of a running total counted in `unit` (e.g. "msgs", "conns").
    pub fn new(enabled: bool, unit: &'static str) -> Progress {
        Progress::with_kind(enabled, Kind::Total(unit))
    }

    /// Progress of a level, printed as `<count> <label>` (e.g. "conns open").
    pub fn gauge(enabled: bool, label: &'static str) -> Progress {
        Progress::with_kind(enabled, Kind::Gauge(label))
    }

    fn with_kind(enabled: bool, kind: Kind) -> Progress {
        Progress {
            enabled,
            tty: std::io::stderr().is_terminal(),
            kind,
            last_count: 0,
            last_elapsed: Duration::ZERO,
            printed: false,
        }
    }

    /// Report `count` after `elapsed` of the phase being shown.
    pub fn tick(&mut self, elapsed: Duration, count: u64, errors: u64) {
        if !self.enabled {
            return;
        }
        let secs = elapsed.as_secs_f64().max(1e-9);
        let line = match self.kind {
            Kind::Total(unit) => {
                let window = elapsed.saturating_sub(self.last_elapsed).as_secs_f64();
                let now_rate = count.saturating_sub(self.last_count) as f64 / window.max(1e-9);
                format!(
                    "[{secs:>5.1}s] {count} {unit}  {:.0} {unit}/s (last second {now_rate:.0})  errors {errors}",
                    count as f64 / secs,
                )
            }
            Kind::Gauge(label) => format!("[{secs:>5.1}s] {count} {label}  errors {errors}"),
        };
        self.last_count = count;
        self.last_elapsed = elapsed;
        self.print(&line);
    }

    /// Print `what` after `elapsed`, as `[  1.0s] what` (the attacks' own lines).
    pub fn line(&mut self, elapsed: Duration, what: &str) {
        if self.enabled {
            self.print(&format!("[{:>5.1}s] {what}", elapsed.as_secs_f64()));
        }
    }

    fn print(&mut self, line: &str) {
        let mut err = std::io::stderr().lock();
        // A progress line that cannot be written is not worth failing the run for.
        let _ = if self.tty {
            write!(err, "\r{line}\x1b[K")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
        self.printed = true;
    }

    /// End the in-place line so later output starts on a fresh one.
    pub fn finish(&mut self) {
        if self.enabled && self.tty && self.printed {
            let _ = writeln!(std::io::stderr());
            self.printed = false;
        }
    }
}
