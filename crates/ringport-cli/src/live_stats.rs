//! Stats on the console: `echo-server --stats` and `udp-echo --stats` print one summary
//! line per second ([`line`], [`datagram_line`]) from a thread that stops when asked;
//! [`indented`] is the block the demo and the echo servers print at the end.

use ringport::{ByteSize, Stats};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Time between two lines.
const EVERY: Duration = Duration::from_secs(1);

/// The printing thread; [`Ticker::stop`] ends it.
pub struct Ticker {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Ticker {
    /// Print a line every second, made by `format` from what `source` reports.
    pub fn start(
        source: impl Fn() -> Stats + Send + 'static,
        format: impl Fn(&Stats, &Stats, Duration) -> String + Send + 'static,
    ) -> anyhow::Result<Ticker> {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("stats".into())
            .spawn(move || tick(&source, &format, &stopped))?;
        Ok(Ticker { stop, thread })
    }

    /// Stop printing (no line follows this call) and wait for the thread.
    pub fn stop(self) {
        // Dropping the sender would do as well; sending says it outright.
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

fn tick(
    source: &dyn Fn() -> Stats,
    format: &dyn Fn(&Stats, &Stats, Duration) -> String,
    stopped: &mpsc::Receiver<()>,
) {
    let mut before = source();
    let mut at = Instant::now();
    let mut next = at + EVERY;
    loop {
        match stopped.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        let stats = source();
        println!("{}", format(&before, &stats, now.duration_since(at)));
        before = stats;
        at = now;
        // On schedule, but never a burst of catch-up lines after a stall.
        next = (next + EVERY).max(now + EVERY / 2);
    }
}

/// `stats: open N  accepted N  refused N  closed N  in R/s  out R/s  queued B  timeouts N
/// slow readers N`: totals since start, except the byte rates (over `elapsed` since
/// `before`, in binary units like the final stats) and the two gauges. With a job pool,
/// `  jobs N/s  outstanding N  pool queued N  running N` follows. With several
/// listeners, each one's share follows: ` | NAME: open N  accepted N  refused N  in R/s
/// out R/s`.
pub fn line(before: &Stats, now: &Stats, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let per_sec =
        |new: u64, old: u64| ByteSize((new.saturating_sub(old) as f64 / secs).round() as u64);
    let mut per_listener = String::new();
    if now.listeners.len() > 1 {
        for (i, l) in now.listeners.iter().enumerate() {
            let (old_in, old_out) = before
                .listeners
                .get(i)
                .map_or((0, 0), |b| (b.bytes_in, b.bytes_out));
            per_listener += &format!(
                " | {}: open {}  accepted {}  refused {}  in {}/s  out {}/s",
                l.name,
                l.open,
                l.accepted,
                l.refused,
                per_sec(l.bytes_in, old_in),
                per_sec(l.bytes_out, old_out),
            );
        }
    }
    let jobs = match &now.job_pool {
        Some(pool) => format!(
            "  jobs {}/s  outstanding {}  pool queued {}  running {}",
            (now.jobs_done.saturating_sub(before.jobs_done) as f64 / secs).round() as u64,
            now.jobs_outstanding,
            pool.queued,
            pool.running,
        ),
        None => String::new(),
    };
    format!(
        "stats: open {}  accepted {}  refused {}  closed {}  in {}/s  out {}/s  queued {}  \
         timeouts {}  slow readers {}{jobs}{per_listener}",
        now.open,
        now.accepted,
        now.refused,
        now.closed,
        per_sec(now.bytes_in, before.bytes_in),
        per_sec(now.bytes_out, before.bytes_out),
        ByteSize(now.queued_bytes),
        now.timeouts_fired,
        now.slow_readers,
    )
}

/// `udp: in N/s (R/s)  out N/s (R/s)  truncated N  dropped N  send errors N  receive errors
/// N`: datagrams and their bytes per second over `elapsed` since `before`, then totals
/// since start.
pub fn datagram_line(before: &Stats, now: &Stats, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let per_sec = |new: u64, old: u64| (new.saturating_sub(old) as f64 / secs).round() as u64;
    format!(
        "udp: in {}/s ({}/s)  out {}/s ({}/s)  truncated {}  dropped {}  send errors {}  \
         receive errors {}",
        per_sec(now.datagrams_in, before.datagrams_in),
        ByteSize(per_sec(now.datagram_bytes_in, before.datagram_bytes_in)),
        per_sec(now.datagrams_out, before.datagrams_out),
        ByteSize(per_sec(now.datagram_bytes_out, before.datagram_bytes_out)),
        now.datagrams_truncated,
        now.datagrams_dropped,
        now.datagram_send_errors,
        now.datagram_errors,
    )
}

/// `stats`' `Display`, every line indented by two spaces and ended by a newline (under a
/// heading line printed by the caller).
pub fn indented(stats: &Stats) -> String {
    stats
        .to_string()
        .lines()
        .map(|l| format!("  {l}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringport::ListenerStats;

    #[test]
    fn a_line_has_totals_and_rates() {
        // Stats is non-exhaustive: built by assignment outside its crate.
        let mut before = Stats::default();
        before.bytes_in = 1000;
        before.bytes_out = 500;
        let mut now = before.clone();
        now.open = 3;
        now.accepted = 10;
        now.refused = 2;
        now.closed = 7;
        now.bytes_in = 3000;
        now.bytes_out = 4500;
        now.queued_bytes = 64;
        now.timeouts_fired = 4;
        now.slow_readers = 1;
        assert_eq!(
            line(&before, &now, Duration::from_secs(2)),
            "stats: open 3  accepted 10  refused 2  closed 7  in 1000 B/s  out 2.0 KiB/s  \
             queued 64 B  timeouts 4  slow readers 1"
        );
    }

    #[test]
    fn several_listeners_add_their_shares() {
        let before = Stats::default();
        let mut now = Stats::default();
        for (name, accepted) in [("game", 5), ("admin", 1)] {
            let mut l = ListenerStats::default();
            l.name = name.to_string();
            l.open = accepted - 1;
            l.accepted = accepted;
            l.bytes_in = 100 * accepted;
            now.listeners.push(l);
        }
        let text = line(&before, &now, Duration::from_secs(1));
        assert!(
            text.ends_with(
                " | game: open 4  accepted 5  refused 0  in 500 B/s  out 0 B/s \
                 | admin: open 0  accepted 1  refused 0  in 100 B/s  out 0 B/s"
            ),
            "{text}"
        );
        now.listeners.pop();
        assert!(!line(&before, &now, Duration::from_secs(1)).contains('|'));
    }

    #[test]
    fn a_datagram_line_has_rates_and_anomalies() {
        let mut before = Stats::default();
        before.datagrams_in = 100;
        before.datagram_bytes_in = 1000;
        let mut now = before.clone();
        now.datagrams_in = 300;
        now.datagram_bytes_in = 5096;
        now.datagrams_out = 200;
        now.datagram_bytes_out = 4096;
        now.datagrams_truncated = 3;
        now.datagrams_dropped = 2;
        now.datagram_send_errors = 1;
        assert_eq!(
            datagram_line(&before, &now, Duration::from_secs(2)),
            "udp: in 100/s (2.0 KiB/s)  out 100/s (2.0 KiB/s)  truncated 3  dropped 2  \
             send errors 1  receive errors 0"
        );
    }

    #[test]
    fn a_stopped_ticker_returns_at_once() {
        let ticker = Ticker::start(Stats::default, line).unwrap();
        let t = Instant::now();
        ticker.stop();
        assert!(t.elapsed() < Duration::from_millis(500));
    }
}
