//! Connection timeouts and handler timers on the worker's timing wheel.
//!
//! Each connection with a timeout configured has at most one wheel entry (its "watch"),
//! set for the earliest of its deadlines. Activity does not touch the wheel: reads and
//! writes only stamp times in the connection's `ConnTiming`. When a watch fires, the
//! deadlines are computed again from the stamps; if one has really passed the
//! connection closes with that timeout as its reason, else the watch is set again. A
//! deadline that moves earlier (a frame starts, data queues up) resets the watch.

use super::conn_state::ConnState;
use super::worker::Worker;
use crate::config::Timeouts;
use crate::core::ConnKey;
use crate::error::{CloseReason, Timeout};
use crate::handler::Handler;
use crate::sys::Driver;
use crate::timer::TimerKey;
use std::time::{Duration, Instant};

/// What a wheel entry is for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TimerEntry {
    /// Check the connection's timeouts.
    Watch(ConnKey),
    /// A timer the handler set with `Conn::set_timer`, for the connection with this
    /// serial number in the slot (see `ConnId`).
    User { slot: u32, serial: u64, token: u64 },
}

/// A connection's activity stamps, in microseconds since its worker started.
#[derive(Debug, Default, Clone)]
pub(crate) struct ConnTiming {
    pub opened: u64,
    pub last_read: u64,
    pub last_write: u64,
    /// A byte has arrived.
    pub got_data: bool,
    /// A frame has been partly received since then (framing codecs).
    pub partial_since: Option<u64>,
    /// Bytes have been waiting to go out, without progress, since then.
    pub write_since: Option<u64>,
    /// Heartbeat pings sent since the last byte received.
    pub pings: u32,
    /// The wheel entry and the deadline it is set for.
    pub watch: Option<(TimerKey, u64)>,
}

/// Microseconds, rounded up: stamps and deadlines must never come out early.
fn us(d: Duration) -> u64 {
    // No 128-bit arithmetic: this runs on every receive and send while timeouts are on.
    d.as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(d.subsec_nanos().div_ceil(1000) as u64)
}

/// The earliest deadline among the configured timeouts, and which one it is.
/// `pinging`: the heartbeat applies (not once the write side is shut: no ping can go).
fn earliest(t: &ConnTiming, c: &Timeouts, framed: bool, pinging: bool) -> Option<(u64, Timeout)> {
    let mut best: Option<(u64, Timeout)> = None;
    // Sums saturate; a deadline a hundred years or more after the worker started is
    // never (a timeout of `Duration::MAX` is off, not overflowed into the past).
    let never = us(crate::deadline::NEVER);
    let mut consider = |at: u64, kind| {
        if at < never && best.map_or(true, |(b, _)| at < b) {
            best = Some((at, kind));
        }
    };
    if let (Some(d), false) = (c.first_data, t.got_data) {
        consider(t.opened.saturating_add(us(d)), Timeout::FirstData);
    }
    if let Some(d) = c.idle {
        consider(
            t.last_read.max(t.last_write).saturating_add(us(d)),
            Timeout::Idle,
        );
    }
    if let Some(d) = c.read {
        // With a framing codec: a started frame must finish in time (slowloris). Raw
        // bytes have no frames: then nothing may be received for that long.
        let since = if framed {
            t.partial_since
        } else {
            Some(t.last_read)
        };
        if let Some(s) = since {
            consider(s.saturating_add(us(d)), Timeout::Read);
        }
    }
    if let (Some(d), Some(s)) = (c.write, t.write_since) {
        consider(s.saturating_add(us(d)), Timeout::Write);
    }
    if let (Some(h), true) = (c.heartbeat, pinging) {
        // The next ping (or, after `misses` of them, the close) is due one period after
        // the last byte received plus one period per ping already sent.
        let periods = us(h.every).saturating_mul(u64::from(t.pings) + 1);
        consider(t.last_read.saturating_add(periods), Timeout::Heartbeat);
    }
    best
}

impl<H: Handler, D: Driver> Worker<H, D> {
    /// Microseconds since the worker started, as of the current loop iteration.
    pub(super) fn now_us(&self) -> u64 {
        us(self.now.saturating_duration_since(self.epoch))
    }

    /// The stamp for activity seen in this loop iteration: `now_us`, or 0 (no clock
    /// arithmetic on the receive/send path) when no timeout is configured.
    pub(super) fn activity_stamp(&self) -> u64 {
        if self.config.timeouts.any() {
            self.now_us()
        } else {
            0
        }
    }

    /// Stamp a newly opened connection and watch it.
    pub(super) fn timing_opened(&mut self, key: ConnKey) {
        if !self.config.timeouts.any() {
            return;
        }
        // A fresh reading, not the loop's: the loop's time can precede this connection's
        // accept, and a timeout must never fire early.
        let now = us(Instant::now().saturating_duration_since(self.epoch));
        let Some(st) = self.conns.get_mut(key) else {
            return;
        };
        st.timing = Some(Box::new(ConnTiming {
            opened: now,
            last_read: now,
            last_write: now,
            ..ConnTiming::default()
        }));
        self.watch(key);
    }

    /// Set or move the connection's watch to its earliest deadline if that is earlier
    /// than the one set (never later: a watch firing early just sets itself again).
    pub(super) fn watch(&mut self, key: ConnKey) {
        if !self.config.timeouts.any() {
            return;
        }
        let Some(st) = self.conns.get_mut(key) else {
            return;
        };
        let framed = !st.conn.ctx.codec.is_passthrough();
        let pinging = !st.conn.shutdown_write;
        let Some(t) = st.timing.as_deref_mut() else {
            return;
        };
        let Some((at, _)) = earliest(t, &self.config.timeouts, framed, pinging) else {
            return;
        };
        match t.watch {
            Some((_, set_for)) if set_for <= at => {}
            Some((key, _)) => {
                let when = self.epoch + Duration::from_micros(at);
                self.wheel.reset(key, when);
                t.watch = Some((key, at));
            }
            None => {
                let when = self.epoch + Duration::from_micros(at);
                let key = self.wheel.insert(when, TimerEntry::Watch(key));
                t.watch = Some((key, at));
            }
        }
    }

    /// Keep the write stamps in step with the queue (after callbacks and sends).
    pub(super) fn stamp_queue(st: &mut ConnState<H::Session>, now: u64) {
        // Bytes or a file not yet all sent: the write timeout runs.
        let unsent = st.conn.has_unsent();
        let Some(t) = st.timing.as_deref_mut() else {
            return;
        };
        if !unsent {
            t.write_since = None;
        } else if t.write_since.is_none() {
            t.write_since = Some(now);
        }
    }

    /// Fire due timers: timeouts close their connection; handler timers call `on_timer`.
    pub(super) fn poll_wheel(&mut self) {
        let mut fired = std::mem::take(&mut self.fired);
        self.wheel.poll(self.now, |e| fired.push(e));
        for e in fired.drain(..) {
            match e {
                TimerEntry::Watch(key) => self.on_watch(key),
                TimerEntry::User {
                    slot,
                    serial,
                    token,
                } => self.on_user_timer(slot, serial, token),
            }
        }
        self.fired = fired;
    }

    fn on_watch(&mut self, key: ConnKey) {
        let now = self.now_us();
        let Some(st) = self.conns.get_mut(key) else {
            return;
        };
        let framed = !st.conn.ctx.codec.is_passthrough();
        let pinging = !st.conn.shutdown_write;
        let Some(t) = st.timing.as_deref_mut() else {
            return;
        };
        t.watch = None;
        if !st.is_open() {
            return;
        }
        let t = st.timing.as_deref_mut().expect("checked");
        match earliest(t, &self.config.timeouts, framed, pinging) {
            // A heartbeat with pings left to send: ping; after the last, close below.
            Some((at, Timeout::Heartbeat))
                if at <= now
                    && self
                        .config
                        .timeouts
                        .heartbeat
                        .is_some_and(|hb| t.pings < hb.misses) =>
            {
                t.pings += 1;
                let ping = self.config.timeouts.heartbeat.expect("checked").ping;
                if let Err(crate::SendError::Unframeable(e)) = st.conn.send_frame(ping) {
                    tracing::warn!(error = %e, "the heartbeat ping cannot be framed");
                }
                self.mark_dirty(key);
                self.watch(key);
            }
            Some((at, kind)) if at <= now => {
                crate::stats::bump(&self.stats.timeouts_fired, 1);
                st.conn.fail(CloseReason::Timeout(kind));
                self.mark_dirty(key);
            }
            Some(_) => self.watch(key),
            None => {}
        }
    }

    /// Arm the timers the handler asked for during its callbacks.
    pub(super) fn arm_user_timers(&mut self, key: ConnKey) {
        let Some(st) = self.conns.get_mut(key) else {
            return;
        };
        let serial = st.conn.id().serial();
        let Some(timers) = st.conn.timers_mut() else {
            return;
        };
        for (after, token) in std::mem::take(&mut timers.asked) {
            // A delay too long for an `Instant` is "never": nothing to arm.
            if let Some(when) = crate::deadline::after(self.now, after) {
                let key = self.wheel.insert(
                    when,
                    TimerEntry::User {
                        slot: key.slot,
                        serial,
                        token,
                    },
                );
                timers.armed.push(key);
            }
        }
        if timers.armed.is_empty() {
            st.conn.trim_extras();
        }
    }

    fn on_user_timer(&mut self, slot: u32, serial: u64, token: u64) {
        let Some((key, st)) = self.conns.get_slot_mut(slot) else {
            return;
        };
        if st.conn.id().serial() != serial {
            return; // cancelled at close; never another tenant's
        }
        if let Some(t) = st.conn.timers_mut() {
            // The fired key is no longer valid: forget it (a handful are armed at most,
            // usually one).
            t.armed.retain(|k| self.wheel.is_armed(*k));
            st.conn.trim_extras();
        }
        // A connection flushing before a graceful close still gets its timers (a handler
        // may bound that flush with one); one closing now does not.
        if !st.is_open() || st.conn.closing_now() {
            return;
        }
        crate::stats::bump(&self.stats.timers_fired, 1);
        if let Some(session) = st.session.as_mut() {
            let (handler, conn) = (&self.handler, &mut st.conn);
            if super::callbacks::guard(&self.stats, || handler.on_timer(session, conn, token))
                .is_none()
            {
                st.conn.panicked();
            }
        }
        self.mark_dirty(key);
    }

    /// Cancel a closing connection's handler timers (their wheel nodes are freed now, not
    /// when they would have fired).
    pub(super) fn cancel_user_timers(&mut self, key: ConnKey) {
        let Some(st) = self.conns.get_mut(key) else {
            return;
        };
        if let Some(timers) = st.conn.timers_mut() {
            let timers = std::mem::take(timers);
            for key in timers.armed {
                self.wheel.cancel(key);
            }
        }
    }

    /// Drop a closing connection's watch.
    pub(super) fn unwatch(&mut self, key: ConnKey) {
        if let Some(st) = self.conns.get_mut(key) {
            if let Some((key, _)) = st.timing.as_deref_mut().and_then(|t| t.watch.take()) {
                self.wheel.cancel(key);
            }
        }
    }

    /// The next instant a timer is due, for the wait's timeout.
    pub(super) fn wheel_wakeup(&self) -> Option<Instant> {
        self.wheel.next_wakeup()
    }
}
