//! The once-a-second progress line on stderr: rewritten in place on a terminal, one line
//! per tick otherwise (logs, pipes, CI).

use std::io::{IsTerminal, Write};
use std::time::Duration;

pub struct Progress {
    enabled: bool,
    tty: bool,
    last_messages: u64,
    last_elapsed: Duration,
    printed: bool,
}

impl Progress {
    pub fn new(enabled: bool) -> Progress {
        Progress {
            enabled,
            tty: std::io::stderr().is_terminal(),
            last_messages: 0,
            last_elapsed: Duration::ZERO,
            printed: false,
        }
    }

    /// Report the totals after `elapsed` of the measured window.
    pub fn tick(&mut self, elapsed: Duration, messages: u64, errors: u64) {
        if !self.enabled {
            return;
        }
        let secs = elapsed.as_secs_f64().max(1e-9);
        let window = (elapsed - self.last_elapsed).as_secs_f64().max(1e-9);
        let now_rate = (messages - self.last_messages) as f64 / window;
        self.last_messages = messages;
        self.last_elapsed = elapsed;
        let line = format!(
            "[{:>5.1}s] {messages} msgs  {:.0} msgs/s (last second {:.0})  errors {errors}",
            secs,
            messages as f64 / secs,
            now_rate
        );
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
        }
    }
}
