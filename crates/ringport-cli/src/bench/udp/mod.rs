//! `bench ADDR --udp`: a UDP echo load from `connections` client sockets, all on one
//! epoll loop in the calling thread (no engine, no thread per socket).
//!
//! Each socket is connected to the server (so only its answers come back) and either
//! keeps `pipeline` datagrams in flight (closed loop) or gets every `connections`-th
//! datagram of a schedule of `rate` datagrams per second (open loop; latency then counts
//! from the scheduled send time). Every datagram is tagged and checked byte for byte on
//! its way back (`datagram.rs`); what is not back within the loss timeout counts as lost
//! and frees its slot. Once sending stops the loop waits for the last echoes, at most one
//! loss timeout, so every datagram sent is accounted for in the report.

mod client;
mod datagram;
mod report;
mod sockets;

pub use report::UdpReport;

use super::poller::Poller;
use super::progress::Progress;
use client::{ClientState, Tally};
use datagram::Datagrams;
use sockets::{Sent, Sockets};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// How often in-flight datagrams are checked against the loss timeout.
const SWEEP: Duration = Duration::from_millis(10);
/// The longest one wait for echoes lasts.
const MAX_WAIT: Duration = Duration::from_millis(10);
/// Rate mode: sends per look at the schedule at most (a driver far behind still
/// receives and notices the end of the run).
const BATCH: u32 = 4096;

/// What to run.
#[derive(Debug, Clone)]
pub struct UdpOptions {
    pub addr: SocketAddr,
    /// Client sockets.
    pub connections: usize,
    /// Bytes per datagram, header included (16 to 65,507).
    pub size: usize,
    /// Closed loop: datagrams in flight per socket.
    pub pipeline: usize,
    /// Open loop: datagrams per second in total (closed loop if `None`).
    pub rate: Option<f64>,
    /// Open loop: datagrams in flight per socket beyond which a scheduled send is skipped
    /// (counted as behind).
    pub max_outstanding: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// A datagram not back within this long counts as lost.
    pub loss_timeout: Duration,
    /// Local source addresses to bind the sockets to, round robin (empty: any).
    pub sources: Vec<IpAddr>,
    /// Print a progress line to stderr every second.
    pub progress: bool,
}

/// Run the load and report. `Err` only if the run could not be carried out (no socket,
/// bad options); what the server did is in the report (see [`UdpReport::check`]).
pub fn run(opts: &UdpOptions) -> anyhow::Result<UdpReport> {
    anyhow::ensure!(opts.connections > 0, "need at least one socket");
    anyhow::ensure!(
        u32::try_from(opts.connections).is_ok(),
        "--connections {}: too many sockets",
        opts.connections
    );
    anyhow::ensure!(opts.pipeline > 0, "pipeline depth must be at least 1");
    anyhow::ensure!(
        opts.max_outstanding > 0,
        "--max-outstanding must be at least 1"
    );
    if let Some(rate) = opts.rate {
        anyhow::ensure!(
            rate.is_finite() && rate > 0.0,
            "--rate {rate}: must be a positive number of datagrams per second"
        );
    }
    for ip in &opts.sources {
        anyhow::ensure!(
            ip.is_ipv4() == opts.addr.is_ipv4(),
            "source address {ip} is not of the same family as {}",
            opts.addr
        );
    }
    let datagrams = Datagrams::new(opts.size)?;
    // Precise waits only matter to a schedule.
    let mut poller = match opts.rate {
        Some(_) => Poller::precise()?,
        None => Poller::new()?,
    };
    let mut sockets = Sockets::open(opts, &poller)?;
    let mut run = Run {
        opts,
        datagrams,
        clients: (0..opts.connections as u32).map(ClientState::new).collect(),
        tally: Tally::new(),
        t0: Instant::now(),
        sending: true,
        stuck: Vec::new(),
    };
    let elapsed = run.drive(&mut poller, &mut sockets)?;
    Ok(UdpReport::new(
        opts.connections,
        opts.size,
        opts.rate.is_none().then_some(opts.pipeline),
        opts.rate,
        elapsed.as_secs_f64(),
        opts.loss_timeout.as_secs_f64(),
        &run.tally,
    ))
}

/// One run in progress.
struct Run<'a> {
    opts: &'a UdpOptions,
    datagrams: Datagrams,
    clients: Vec<ClientState>,
    tally: Tally,
    /// The run's start: time zero of every timestamp.
    t0: Instant,
    /// Sending (false once the measured window is over: draining).
    sending: bool,
    /// Closed loop: sockets whose send buffer was full, to top up again soon.
    stuck: Vec<usize>,
}

impl Run<'_> {
    fn ns(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.t0).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The event loop, until every counted datagram is resolved; returns the measured
    /// window's length.
    fn drive(&mut self, poller: &mut Poller, sockets: &mut Sockets) -> anyhow::Result<Duration> {
        let opts = self.opts;
        let start = self.t0 + opts.warmup;
        let end = start + opts.duration;
        // Without a warm-up the very first datagrams count.
        let mut counting = opts.warmup.is_zero();
        if counting {
            self.clients
                .iter_mut()
                .for_each(ClientState::start_counting);
        }
        let mut stopped_at = end;
        let mut progress = Progress::new(opts.progress, "datagrams");
        let mut next_tick = start + Duration::from_secs(1);
        let mut next_sweep = self.t0 + SWEEP;
        // Rate mode: datagram `n` of the schedule is due at `t0 + n / rate`.
        let mut n: u64 = 0;
        let t0 = self.t0;
        let due_at = move |n: u64, rate: f64| {
            Duration::try_from_secs_f64(n as f64 / rate)
                .ok()
                .and_then(|d| t0.checked_add(d))
        };
        let mut ready = Vec::new();
        if opts.rate.is_none() {
            (0..self.clients.len()).for_each(|i| self.top_up(sockets, i));
        }
        loop {
            let now = Instant::now();
            if !counting && now >= start {
                counting = true;
                self.clients
                    .iter_mut()
                    .for_each(ClientState::start_counting);
            }
            if self.sending && now >= end {
                self.sending = false;
                stopped_at = now;
                progress.finish();
            }
            if !self.sending {
                let resolved = self.clients.iter().all(|c| c.in_flight() == 0);
                if resolved || now >= stopped_at + opts.loss_timeout + 2 * SWEEP {
                    break;
                }
            }
            if let Some(rate) = opts.rate.filter(|_| self.sending) {
                for _ in 0..BATCH {
                    let Some(due) = due_at(n, rate).filter(|&due| due <= now) else {
                        break;
                    };
                    let i = (n % self.clients.len() as u64) as usize;
                    self.send_scheduled(sockets, i, due, counting);
                    n += 1;
                }
            } else {
                self.retry_stuck(sockets);
            }
            if now >= next_sweep {
                self.sweep(sockets, now);
                next_sweep = now + SWEEP;
            }
            if self.sending && now >= next_tick {
                let errors = self.tally.lost + self.tally.corrupt;
                progress.tick(now - start, self.tally.received, errors);
                next_tick += Duration::from_secs(1);
            }
            let mut wake = next_sweep.min(now + MAX_WAIT);
            if self.sending {
                wake = wake.min(next_tick).min(end);
                if !counting {
                    wake = wake.min(start);
                }
                if let Some(due) = opts.rate.and_then(|rate| due_at(n, rate)) {
                    wake = wake.min(due);
                }
                if !self.stuck.is_empty() {
                    wake = wake.min(now + Duration::from_millis(1));
                }
            }
            poller.wait(wake.saturating_duration_since(Instant::now()), &mut ready)?;
            for &(token, _) in &ready {
                self.receive(sockets, token as usize);
            }
        }
        // Whatever is still in flight after the drain counts as lost.
        let now_ns = self.ns(Instant::now());
        for c in &mut self.clients {
            c.expire(now_ns, &mut self.tally);
        }
        Ok(stopped_at.saturating_duration_since(start))
    }

    /// Read what socket `i` has (bounded: the poller is level-triggered), check it, and
    /// in closed loop send one new datagram per slot freed.
    fn receive(&mut self, sockets: &mut Sockets, i: usize) {
        let mut freed = false;
        for _ in 0..64 {
            let Some(data) = sockets.recv(i, &mut self.tally) else {
                break;
            };
            let now_ns = self.ns(Instant::now());
            freed |= self.clients[i].echo(data, &self.datagrams, now_ns, &mut self.tally);
        }
        if freed && self.opts.rate.is_none() {
            self.top_up(sockets, i);
        }
    }

    /// Count as lost what has been in flight longer than the loss timeout (closed loop:
    /// and send in its place).
    fn sweep(&mut self, sockets: &mut Sockets, now: Instant) {
        let Some(sent_by) = now.checked_sub(self.opts.loss_timeout) else {
            return;
        };
        let sent_by_ns = self.ns(sent_by);
        if sent_by <= self.t0 {
            return;
        }
        for i in 0..self.clients.len() {
            let freed = self.clients[i].expire(sent_by_ns, &mut self.tally);
            if freed > 0 && self.opts.rate.is_none() {
                self.top_up(sockets, i);
            }
        }
    }

    /// Closed loop: send on socket `i` until it has `pipeline` datagrams in flight.
    fn top_up(&mut self, sockets: &mut Sockets, i: usize) {
        while self.sending && self.clients[i].in_flight() < self.opts.pipeline {
            let sent_ns = self.ns(Instant::now());
            match self.send(sockets, i, sent_ns) {
                Sent::Yes => {}
                Sent::Blocked | Sent::Failed => {
                    if !self.stuck.contains(&i) {
                        self.stuck.push(i);
                    }
                    return;
                }
            }
        }
    }

    fn retry_stuck(&mut self, sockets: &mut Sockets) {
        for i in std::mem::take(&mut self.stuck) {
            self.top_up(sockets, i);
        }
    }

    /// Open loop: send the datagram scheduled for `due` on socket `i`, unless it has too
    /// many in flight or its send buffer is full (then it is behind).
    fn send_scheduled(&mut self, sockets: &mut Sockets, i: usize, due: Instant, counting: bool) {
        let sent = if self.clients[i].in_flight() >= self.opts.max_outstanding {
            Sent::Blocked
        } else {
            self.send(sockets, i, self.ns(due))
        };
        if counting && !matches!(sent, Sent::Yes) {
            self.tally.behind += 1;
        }
    }

    /// Send the next datagram of socket `i`, stamped `sent_ns`.
    fn send(&mut self, sockets: &mut Sockets, i: usize, sent_ns: u64) -> Sent {
        let Some(header) = self.clients[i].next_header(sent_ns) else {
            return Sent::Failed;
        };
        let sent = sockets.send(i, header, &self.datagrams, &mut self.tally);
        if matches!(sent, Sent::Yes) {
            self.clients[i].sent(header, &mut self.tally);
        }
        sent
    }
}
