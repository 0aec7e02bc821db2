//! `TimerWheel`: a hashed timing wheel of one-shot timers.
//!
//! Time after `start` is cut into ticks; a timer lives in the slot of the tick holding
//! its deadline (`tick % slots`), in a doubly linked list threaded through one arena of
//! nodes, so insert, cancel and reset are O(1) and allocate nothing once the arena has
//! grown. A slot may hold timers of later revolutions too: each node keeps its absolute
//! tick, and `poll` fires a node by comparing its deadline, not by position, so a deadline
//! any distance away works.
//!
//! `poll(now)` fires exactly the timers whose deadline is at or before `now`: never early,
//! and late only by however late the caller polls. It walks the slots of the ticks since
//! the previous poll (at most one revolution's worth). The wheel also keeps a lower bound
//! of the earliest deadline, exact after each poll that did work: `poll` returns at once
//! while `now` is below it, and [`TimerWheel::next_deadline`] hands it out as the worker's
//! wait timeout.

use std::time::{Duration, Instant};

/// "No node" in the links.
const NIL: u32 = u32::MAX;

/// Names one timer. Keys of fired or cancelled timers stay harmless: the node's generation
/// moves on when it is freed, so an old key no longer matches (until the same node has
/// been reused 2^32 times).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TimerKey {
    index: u32,
    generation: u32,
}

/// One arena entry: an armed timer when `value` is `Some`, else a free node whose `next`
/// links the free list.
#[derive(Debug)]
struct Node<T> {
    generation: u32,
    value: Option<T>,
    deadline: Instant,
    /// The tick the node is filed under (its deadline's, or a later one for a deadline
    /// already past when it was set).
    tick: u64,
    prev: u32,
    next: u32,
}

/// One-shot timers carrying a `T`, for one worker.
#[derive(Debug)]
pub(crate) struct TimerWheel<T> {
    start: Instant,
    #[cfg_attr(not(test), allow(dead_code))]
    tick: Duration,
    tick_nanos: u128,
    /// Head node of each slot's list.
    heads: Vec<u32>,
    nodes: Vec<Node<T>>,
    free_head: u32,
    len: usize,
    /// Every armed timer is filed under a tick >= this one; `poll` starts here.
    elapsed: u64,
    /// No armed deadline is earlier than this; `None` exactly when the wheel is empty.
    lower_bound: Option<Instant>,
}

impl<T> TimerWheel<T> {
    /// An empty wheel of `slots` slots, each `tick` long, counting ticks from `start`.
    /// One revolution (`tick * slots`) should cover the usual timeouts; longer ones work
    /// but are looked at once per revolution.
    ///
    /// # Panics
    /// If `tick` is zero or `slots` is zero or at least 2^32.
    pub(crate) fn new(tick: Duration, slots: usize, start: Instant) -> TimerWheel<T> {
        assert!(!tick.is_zero(), "timer wheel tick must be positive");
        assert!(
            slots > 0 && slots < NIL as usize,
            "timer wheel needs 1..2^32 slots"
        );
        TimerWheel {
            start,
            tick,
            tick_nanos: tick.as_nanos(),
            heads: vec![NIL; slots],
            nodes: Vec::new(),
            free_head: NIL,
            len: 0,
            elapsed: 0,
            lower_bound: None,
        }
    }

    // Used by the tests (and handy when debugging); the engine needs only next_wakeup.
    #[cfg_attr(not(test), allow(dead_code))]
    /// The tick length.
    pub(crate) fn tick(&self) -> Duration {
        self.tick
    }

    // Used by the tests (and handy when debugging); the engine needs only next_wakeup.
    #[cfg_attr(not(test), allow(dead_code))]
    /// Armed timers.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether no timer is armed.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Arms a timer that fires `value` at the first `poll` with `now >= deadline`
    /// (a deadline already past fires at the next poll). O(1).
    ///
    /// # Panics
    /// If 2^32 - 1 timers are armed at once.
    pub(crate) fn insert(&mut self, deadline: Instant, value: T) -> TimerKey {
        let index = match self.free_head {
            NIL => {
                let index = u32::try_from(self.nodes.len())
                    .ok()
                    .filter(|&i| i != NIL)
                    .expect("more than 2^32 - 1 timers armed at once");
                self.nodes.push(Node {
                    generation: 0,
                    value: None,
                    deadline,
                    tick: 0,
                    prev: NIL,
                    next: NIL,
                });
                index
            }
            free => {
                self.free_head = self.nodes[free as usize].next;
                free
            }
        };
        let node = &mut self.nodes[index as usize];
        node.value = Some(value);
        let generation = node.generation;
        self.len += 1;
        self.file(index, deadline);
        TimerKey { index, generation }
    }

    /// Disarms the timer and returns its value; `None` if `key` is stale (the timer
    /// fired or was cancelled). O(1).
    pub(crate) fn cancel(&mut self, key: TimerKey) -> Option<T> {
        let index = self.armed(key)?;
        self.unlink(index);
        let value = self.release(index);
        if self.len == 0 {
            self.lower_bound = None;
        }
        value
    }

    /// Whether `key` names a timer still armed (not fired, not cancelled).
    pub(crate) fn is_armed(&self, key: TimerKey) -> bool {
        self.armed(key).is_some()
    }

    /// Moves an armed timer to `deadline`, keeping its key; false if `key` is stale.
    /// O(1).
    pub(crate) fn reset(&mut self, key: TimerKey, deadline: Instant) -> bool {
        let Some(index) = self.armed(key) else {
            return false;
        };
        self.unlink(index);
        self.file(index, deadline);
        true
    }

    // Used by the tests (and handy when debugging); the engine needs only next_wakeup.
    #[cfg_attr(not(test), allow(dead_code))]
    /// The deadline of an armed timer.
    pub(crate) fn deadline(&self, key: TimerKey) -> Option<Instant> {
        self.armed(key).map(|i| self.nodes[i as usize].deadline)
    }

    // Used by the tests (and handy when debugging); the engine needs only next_wakeup.
    #[cfg_attr(not(test), allow(dead_code))]
    /// A time no later than the earliest armed deadline (`None` if no timer is armed), for
    /// the worker's wait: exact after a `poll` that did work, and possibly earlier after a
    /// timer was cancelled or moved later (the next poll then does the work and corrects
    /// it). After any `poll(now)` it is later than `now`.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.lower_bound
    }

    /// [`next_deadline`](Self::next_deadline) rounded up to the end of its tick: waiting
    /// for this instead fires each timer at most one tick late and wakes the worker at
    /// most once per tick, however many distinct deadlines there are.
    pub(crate) fn next_wakeup(&self) -> Option<Instant> {
        let bound = self.lower_bound?;
        let end = self.tick_start(self.tick_of(bound).saturating_add(1));
        Some(end.unwrap_or(bound))
    }

    /// Fires every armed timer whose deadline is at or before `now`, passing each value to
    /// `fire` (in tick order; within one tick in no particular order), and returns how many
    /// fired. Returns at once while `now` is before [`next_deadline`](Self::next_deadline).
    pub(crate) fn poll(&mut self, now: Instant, mut fire: impl FnMut(T)) -> usize {
        match self.lower_bound {
            Some(bound) if bound <= now => {}
            _ => return 0,
        }
        let first = self.elapsed;
        // A `now` before an earlier poll's still looks at the current tick, where
        // deadlines set in the past were filed.
        let last = self.tick_of(now).max(first);
        let ticks = (last - first)
            .saturating_add(1)
            .min(self.heads.len() as u64);
        let mut fired = 0;
        for tick in first..first + ticks {
            let mut index = self.heads[self.slot_of(tick)];
            while index != NIL {
                let node = &self.nodes[index as usize];
                let next = node.next;
                if node.deadline <= now {
                    self.unlink(index);
                    if let Some(value) = self.release(index) {
                        fired += 1;
                        fire(value);
                    }
                }
                index = next;
            }
        }
        self.elapsed = last;
        self.refresh_lower_bound();
        fired
    }

    /// Files node `index` (armed, unlinked) under `deadline`.
    fn file(&mut self, index: u32, deadline: Instant) {
        let tick = self.tick_of(deadline).max(self.elapsed);
        let slot = self.slot_of(tick);
        let head = self.heads[slot];
        let node = &mut self.nodes[index as usize];
        node.deadline = deadline;
        node.tick = tick;
        node.prev = NIL;
        node.next = head;
        if head != NIL {
            self.nodes[head as usize].prev = index;
        }
        self.heads[slot] = index;
        self.lower_bound = Some(self.lower_bound.map_or(deadline, |b| b.min(deadline)));
    }

    /// Takes node `index` out of its slot's list.
    fn unlink(&mut self, index: u32) {
        let node = &self.nodes[index as usize];
        let (prev, next, slot) = (node.prev, node.next, self.slot_of(node.tick));
        if prev == NIL {
            self.heads[slot] = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        }
    }

    /// Frees unlinked node `index`, invalidating its keys, and returns its value.
    fn release(&mut self, index: u32) -> Option<T> {
        let node = &mut self.nodes[index as usize];
        let value = node.value.take();
        node.generation = node.generation.wrapping_add(1);
        node.prev = NIL;
        node.next = self.free_head;
        self.free_head = index;
        self.len -= 1;
        value
    }

    /// The node index of `key` if it names an armed timer.
    fn armed(&self, key: TimerKey) -> Option<u32> {
        let node = self.nodes.get(key.index as usize)?;
        (node.generation == key.generation && node.value.is_some()).then_some(key.index)
    }

    /// Recomputes `lower_bound` from `elapsed`: the earliest deadline among the timers of
    /// the first tick (within one revolution) that has any, else the start of the next
    /// revolution, before which nothing can be due.
    fn refresh_lower_bound(&mut self) {
        if self.len == 0 {
            self.lower_bound = None;
            return;
        }
        let slots = self.heads.len() as u64;
        for tick in self.elapsed..self.elapsed.saturating_add(slots) {
            let mut earliest: Option<Instant> = None;
            let mut index = self.heads[self.slot_of(tick)];
            while index != NIL {
                let node = &self.nodes[index as usize];
                if node.tick == tick {
                    earliest = Some(earliest.map_or(node.deadline, |e| e.min(node.deadline)));
                }
                index = node.next;
            }
            if earliest.is_some() {
                self.lower_bound = earliest;
                return;
            }
        }
        // Every timer is filed at least a revolution ahead, so its deadline is no earlier
        // than that revolution's start (should that overflow `Instant`, take the true
        // minimum the slow way).
        self.lower_bound = self
            .tick_start(self.elapsed.saturating_add(slots))
            .or_else(|| {
                self.nodes
                    .iter()
                    .filter(|n| n.value.is_some())
                    .map(|n| n.deadline)
                    .min()
            });
    }

    fn slot_of(&self, tick: u64) -> usize {
        (tick % self.heads.len() as u64) as usize
    }

    /// The tick holding `t` (tick 0 for anything before `start`).
    fn tick_of(&self, t: Instant) -> u64 {
        let ticks = t.saturating_duration_since(self.start).as_nanos() / self.tick_nanos;
        u64::try_from(ticks).unwrap_or(u64::MAX)
    }

    /// When `tick` begins, if `Instant` can say.
    fn tick_start(&self, tick: u64) -> Option<Instant> {
        let nanos = self.tick_nanos.checked_mul(u128::from(tick))?;
        let secs = u64::try_from(nanos / 1_000_000_000).ok()?;
        // The remainder is below 10^9, so it fits.
        let offset = Duration::new(secs, (nanos % 1_000_000_000) as u32);
        self.start.checked_add(offset)
    }
}
