//! A level-triggered epoll loop over plain non-blocking sockets, in the calling thread:
//! the attacks' TCP sockets and the UDP load's client sockets.
//!
//! epoll_wait counts its timeout in whole milliseconds (rounded up). A [`Poller::precise`]
//! one also arms a timerfd for each wait, so a wait of 0.3 ms ends after 0.3 ms: the UDP
//! load's open loop sends on a schedule finer than that.

use anyhow::Context;
use rustix::buffer::spare_capacity;
use rustix::event::epoll::{self, CreateFlags, EventData, EventFlags};
use rustix::event::Timespec;
use rustix::io::Errno;
use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

/// Events returned by one wait, at most.
const MAX_EVENTS: usize = 1024;
/// The token of a precise poller's timer (never a socket's).
const TIMER: u64 = u64::MAX;

/// A level-triggered epoll instance. Sockets are registered with a `u64` token; closing a
/// socket removes it, so events of a batch may name a socket closed earlier in the same
/// batch: callers put a generation in the token where slots are reused.
pub struct Poller {
    epoll: OwnedFd,
    events: Vec<epoll::Event>,
    /// A precise poller's timer (non-blocking, registered under [`TIMER`]).
    timer: Option<OwnedFd>,
}

impl Poller {
    pub fn new() -> anyhow::Result<Poller> {
        let epoll = epoll::create(CreateFlags::CLOEXEC).context("epoll_create")?;
        Ok(Poller {
            epoll,
            events: Vec::with_capacity(MAX_EVENTS),
            timer: None,
        })
    }

    /// A poller whose waits end on time to the microsecond, not the millisecond.
    pub fn precise() -> anyhow::Result<Poller> {
        let mut poller = Poller::new()?;
        let timer = rustix::time::timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )
        .context("timerfd_create")?;
        epoll::add(
            &poller.epoll,
            &timer,
            EventData::new_u64(TIMER),
            EventFlags::IN,
        )
        .context("registering the timer with epoll")?;
        poller.timer = Some(timer);
        Ok(poller)
    }

    pub fn add(&self, socket: &impl AsFd, token: u64, interest: EventFlags) -> anyhow::Result<()> {
        epoll::add(&self.epoll, socket, EventData::new_u64(token), interest)
            .context("registering a socket with epoll")
    }

    pub fn modify(
        &self,
        socket: &impl AsFd,
        token: u64,
        interest: EventFlags,
    ) -> anyhow::Result<()> {
        epoll::modify(&self.epoll, socket, EventData::new_u64(token), interest)
            .context("changing a socket's epoll interest")
    }

    /// Wait up to `timeout` for events; `ready` gets the (token, flags) pairs.
    pub fn wait(
        &mut self,
        timeout: Duration,
        ready: &mut Vec<(u64, EventFlags)>,
    ) -> anyhow::Result<()> {
        ready.clear();
        self.events.clear();
        let ts = timespec(timeout);
        if let Some(timer) = self.timer.as_ref().filter(|_| !timeout.is_zero()) {
            // Replaces the previous wait's setting; a leftover expiry only wakes early.
            let at = Itimerspec {
                it_interval: timespec(Duration::ZERO),
                it_value: ts,
            };
            rustix::time::timerfd_settime(timer, TimerfdTimerFlags::empty(), &at)
                .context("timerfd_settime")?;
        }
        match epoll::wait(&self.epoll, spare_capacity(&mut self.events), Some(&ts)) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(io::Error::from(e)).context("epoll_wait"),
        }
        for e in &self.events {
            // `Event` is packed on x86-64: copy the fields out before using them.
            let (flags, data) = (e.flags, e.data);
            match (data.u64(), &self.timer) {
                (TIMER, Some(timer)) => {
                    // Read the expiry count so the timer stops being readable.
                    let _ = rustix::io::read(timer, &mut [0u8; 8]);
                }
                (token, _) => ready.push((token, flags)),
            }
        }
        Ok(())
    }
}

fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: d.subsec_nanos().into(),
    }
}
