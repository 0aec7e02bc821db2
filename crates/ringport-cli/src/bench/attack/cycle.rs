//! The attacks that cycle connections through a fixed number of slots:
//!
//! - flood: every slot connects as fast as it can and holds the connection (reading and
//!   discarding) until the server ends it, then connects again; counted second by second;
//! - reset: every slot connects, writes part of a message, and closes with SO_LINGER 0
//!   (RST instead of FIN), then connects again.
//!
//! A slot whose connect fails tries again at once (after a short pause when this side
//! ran out of local ports).

use super::net::{self, Dialed, Dialer, Fail, Poller, Wrote};
use super::report::{AttackReport, Second, Tally};
use super::{Attack, Ticker, CONNECT_SCAN};
use rustix::event::epoll::EventFlags;
use socket2::Socket;
use std::time::{Duration, Instant};

/// Pause before a slot retries after this side had no local port or address free.
const LOCAL_BACKOFF: Duration = Duration::from_millis(10);

/// What the slots do.
pub struct Plan {
    pub attack: Attack,
    pub connections: usize,
    pub duration: Duration,
    pub connect_timeout: Duration,
    /// Reset: the partial message written before the RST.
    pub partial: Vec<u8>,
    pub progress: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Connecting,
    Open,
}

struct Slot {
    socket: Option<Socket>,
    state: State,
    since: Instant,
    /// Bytes received on the current connection.
    received: u64,
    /// Bumped each time the slot gets a new socket; part of the epoll token, so an event
    /// for the slot's previous socket in the same batch is recognized and skipped.
    generation: u32,
}

struct Run<'a> {
    plan: &'a Plan,
    poller: Poller,
    dialer: Dialer,
    slots: Vec<Slot>,
    tally: Tally,
    start: Instant,
    seconds: Vec<Second>,
    /// Index of the run's last second (a 2.5 s run has 3).
    last_second: usize,
    /// Slots to connect on the next turn of the loop.
    queue: Vec<usize>,
    /// Slots waiting out [`LOCAL_BACKOFF`].
    backoff: Vec<(Instant, usize)>,
    cycles: u64,
    write_errors: u64,
    open: u64,
    pending: u64,
    buf: Vec<u8>,
}

fn token(slot: usize, generation: u32) -> u64 {
    (u64::from(generation) << 32) | slot as u64
}

pub fn run(plan: &Plan, mut dialer: Dialer, target: String) -> anyhow::Result<AttackReport> {
    dialer.abortive_close = plan.attack == Attack::Reset;
    let start = Instant::now();
    let mut run = Run {
        plan,
        poller: Poller::new()?,
        dialer,
        slots: (0..plan.connections)
            .map(|_| Slot {
                socket: None,
                state: State::Idle,
                since: start,
                received: 0,
                generation: 0,
            })
            .collect(),
        tally: Tally::default(),
        start,
        seconds: Vec::new(),
        last_second: (plan.duration.as_secs_f64().ceil() as usize).max(1) - 1,
        queue: (0..plan.connections).collect(),
        backoff: Vec::new(),
        cycles: 0,
        write_errors: 0,
        open: 0,
        pending: 0,
        buf: vec![0; 16 * 1024],
    };
    let end = start + plan.duration;
    let mut ticker = Ticker::new(plan.progress, start);
    let mut next_scan = start + CONNECT_SCAN;
    let mut ready = Vec::new();
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        for slot in std::mem::take(&mut run.queue) {
            run.dial(slot)?;
        }
        let mut wake = end.min(next_scan).min(ticker.next());
        if let Some(&(t, _)) = run.backoff.iter().min_by_key(|(t, _)| *t) {
            wake = wake.min(t);
        }
        let timeout = if run.queue.is_empty() {
            wake.saturating_duration_since(Instant::now())
        } else {
            Duration::ZERO
        };
        run.poller.wait(timeout, &mut ready)?;
        let now = Instant::now();
        for &(token, flags) in &ready {
            run.event(token, flags, now)?;
        }
        if !run.backoff.is_empty() {
            let queue = &mut run.queue;
            run.backoff.retain(|&(t, slot)| {
                let due = t <= now;
                if due {
                    queue.push(slot);
                }
                !due
            });
        }
        if now >= next_scan {
            run.expire_connects(now);
            next_scan = now + CONNECT_SCAN;
        }
        if ticker.due(now) {
            let line = match plan.attack {
                Attack::Reset => format!(
                    "cycles {}  refused {}  write errors {}",
                    run.cycles,
                    run.tally.refused(),
                    run.write_errors
                ),
                _ => format!(
                    "attempted {}  succeeded {}  refused {}  closed {}  open {}",
                    run.tally.attempted,
                    run.tally.connected,
                    run.tally.refused(),
                    run.tally.closes.total(),
                    run.open
                ),
            };
            ticker.print(now, &line);
        }
    }
    ticker.finish();
    Ok(run.finish(target))
}

impl Run<'_> {
    /// The counters of the second `now` falls in (the last second of the run for
    /// anything seen just past its end).
    fn second(&mut self, now: Instant) -> &mut Second {
        let secs = now.saturating_duration_since(self.start).as_secs();
        let i = usize::try_from(secs).map_or(self.last_second, |i| i.min(self.last_second));
        while self.seconds.len() <= i {
            let second = self.seconds.len() as u64 + 1;
            self.seconds.push(Second {
                second,
                ..Second::default()
            });
        }
        &mut self.seconds[i]
    }

    fn refused(&mut self, slot: usize, fail: Fail, e: Option<&std::io::Error>, now: Instant) {
        self.tally.connect_failed(fail, e);
        if fail == Fail::Local {
            self.backoff.push((now + LOCAL_BACKOFF, slot));
        } else {
            self.second(now).refused += 1;
            self.queue.push(slot);
        }
    }

    fn dial(&mut self, i: usize) -> anyhow::Result<()> {
        let now = Instant::now();
        self.tally.attempted += 1;
        self.second(now).attempted += 1;
        let slot = &mut self.slots[i];
        slot.generation = slot.generation.wrapping_add(1);
        slot.since = now;
        slot.received = 0;
        let token = token(i, slot.generation);
        match self.dialer.dial()? {
            Dialed::Pending(socket) => {
                self.poller.add(&socket, token, net::CONNECTING)?;
                slot.socket = Some(socket);
                slot.state = State::Connecting;
                self.pending += 1;
            }
            Dialed::Connected(socket) => {
                self.poller.add(&socket, token, net::CONNECTING)?;
                slot.socket = Some(socket);
                self.connected(i, now)?;
            }
            Dialed::Failed(fail, e) => self.refused(i, fail, Some(&e), now),
        }
        Ok(())
    }

    /// Slot `i` completed its connect.
    fn connected(&mut self, i: usize, now: Instant) -> anyhow::Result<()> {
        self.tally.connected += 1;
        self.second(now).succeeded += 1;
        let slot = &mut self.slots[i];
        slot.since = now;
        let Some(socket) = slot.socket.take() else {
            return Ok(());
        };
        if self.plan.attack == Attack::Reset {
            // Part of a message, then RST (SO_LINGER 0 was set before the connect).
            match net::write_some(&socket, &self.plan.partial) {
                Wrote::Bytes(n) => {
                    self.tally.bytes_sent += n as u64;
                    self.cycles += 1;
                }
                Wrote::Blocked | Wrote::Ended(_) => self.write_errors += 1,
            }
            drop(socket);
            slot.state = State::Idle;
            self.queue.push(i);
        } else {
            self.poller
                .modify(&socket, token(i, slot.generation), net::READABLE)?;
            slot.socket = Some(socket);
            slot.state = State::Open;
            self.open += 1;
        }
        Ok(())
    }

    fn event(&mut self, token: u64, _flags: EventFlags, now: Instant) -> anyhow::Result<()> {
        let i = (token & u64::from(u32::MAX)) as usize;
        let generation = (token >> 32) as u32;
        let Some(slot) = self.slots.get(i) else {
            return Ok(());
        };
        if slot.generation != generation {
            return Ok(());
        }
        let Some(socket) = &slot.socket else {
            return Ok(());
        };
        match slot.state {
            State::Idle => {}
            State::Connecting => {
                let result = net::finish_connect(socket);
                self.pending -= 1;
                match result {
                    Ok(()) => self.connected(i, now)?,
                    Err(e) => {
                        self.slots[i].socket = None;
                        self.slots[i].state = State::Idle;
                        self.refused(i, Fail::of(&e), Some(&e), now);
                    }
                }
            }
            State::Open => {
                let mut got = 0;
                let end = net::drain(socket, &mut self.buf, &mut got);
                self.tally.bytes_received += got;
                let slot = &mut self.slots[i];
                slot.received += got;
                if let Some(how) = end {
                    let lived = now.saturating_duration_since(slot.since);
                    let moved = slot.received > 0;
                    slot.socket = None;
                    slot.state = State::Idle;
                    self.open -= 1;
                    if self.tally.ended(how, lived, moved) {
                        self.second(now).closed += 1;
                    } else {
                        self.second(now).refused += 1;
                    }
                    self.queue.push(i);
                }
            }
        }
        Ok(())
    }

    /// Give up connects older than the connect timeout; their slots try again.
    fn expire_connects(&mut self, now: Instant) {
        let limit = self.plan.connect_timeout;
        for i in 0..self.slots.len() {
            let slot = &mut self.slots[i];
            if slot.state == State::Connecting && now - slot.since >= limit {
                slot.socket = None;
                slot.state = State::Idle;
                self.pending -= 1;
                self.refused(i, Fail::Timeout, None, now);
            }
        }
    }

    fn finish(mut self, target: String) -> AttackReport {
        let now = Instant::now();
        let elapsed = now - self.start;
        // Quiet seconds at the end are seconds of the run too.
        self.second(self.start + Duration::from_secs(self.last_second as u64));
        let (open, pending) = (self.open, self.pending);
        // Close every socket before the report is made (the end of the run).
        self.slots.clear();
        let secs = elapsed.as_secs_f64().max(1e-9);
        let (attempted, succeeded) = (self.tally.attempted, self.tally.connected);
        let refused = self.tally.refused();
        let mut report = self.tally.into_report(self.plan.attack, target, elapsed);
        report.open_at_end = open;
        report.pending_at_end = pending;
        match self.plan.attack {
            Attack::Reset => {
                report.cycles = Some(self.cycles);
                report.cycles_per_sec = Some(self.cycles as f64 / secs);
                report.write_errors = Some(self.write_errors);
            }
            _ => {
                report.per_second = Some(self.seconds);
                report.attempted_per_sec = Some(attempted as f64 / secs);
                report.succeeded_per_sec = Some(succeeded as f64 / secs);
                report.refused_per_sec = Some(refused as f64 / secs);
            }
        }
        report
    }
}
