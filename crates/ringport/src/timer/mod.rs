//! Timers for the workers: one [`TimerWheel`] per worker holds every connection's
//! timeouts (idle, first data, read, write, connect) with O(1) arm, cancel and reset.
//!
//! Sans-IO like the codecs: the wheel has no clock and no thread; the worker passes `now`
//! to `poll`, and sleeps at most until `next_deadline` (or `next_wakeup`, to batch a
//! tick's timers into one wake-up).
#![forbid(unsafe_code)]

mod wheel;

pub(crate) use wheel::{TimerKey, TimerWheel};

#[cfg(test)]
mod tests;
