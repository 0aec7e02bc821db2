//! The send operations of one worker, by key (the connection's slot), with a bounded
//! free list of finished ones (both backends keep their sends here).
//!
//! An operation lives in a box: the kernel may hold pointers into it (io_uring's header
//! and iovecs), and a box does not move when the table grows. A finished box goes to the
//! free list so a busy worker does not allocate per send; the list is bounded in boxes
//! and in the capacity the boxes keep (their chunk and iovec vectors), so a burst of
//! 10,000 connections each sending a large gathered reply does not leave memory sized
//! by the burst behind. An idle key holds an empty slot (8 bytes) and nothing else; the
//! slot vector itself is trimmed back when mostly empty, amortized over the sends since
//! it last was.

/// What an operation keeps between uses: vectors whose capacity the free list bounds.
pub(crate) trait Reusable: Default {
    /// Capacity kept, in entries (chunks; io_uring: chunks and their iovecs).
    fn room(&self) -> usize;
    /// Give back capacity above `max` entries (the vectors are empty).
    fn shrink_room(&mut self, max: usize);
}

/// Most finished operations kept for reuse (a few hundred bytes each when small).
const SPARES_MAX: usize = 512;
/// Capacity all spares together keep beyond [`SMALL_ROOM`] each, in entries: a few
/// gathered sends' worth (an entry is a chunk of 40 bytes, plus a 16-byte iovec on
/// io_uring).
const SPARE_ROOM_MAX: usize = 4096;
/// Capacity a spare may always keep, whatever the budget: what a send of a few chunks
/// needs, so the common small send never reallocates.
const SMALL_ROOM: usize = 4;
/// The slot vector is never trimmed below this many slots.
const KEEP_SLOTS: usize = 1024;

/// Send operations by key, and the spares.
pub(crate) struct SendTable<T> {
    slots: Vec<Option<Box<T>>>,
    /// Slots holding an operation.
    live: usize,
    /// Operations finished since the slot vector was last trimmed.
    since_trim: usize,
    #[allow(clippy::vec_box)] // the boxes are reused as they are
    spares: Vec<Box<T>>,
    /// The room the spares keep, summed.
    spare_room: usize,
}

impl<T> Default for SendTable<T> {
    fn default() -> Self {
        SendTable {
            slots: Vec::new(),
            live: 0,
            since_trim: 0,
            spares: Vec::new(),
            spare_room: 0,
        }
    }
}

impl<T: Reusable> SendTable<T> {
    /// Put an operation (a spare if there is one) under `key` and return it.
    ///
    /// # Panics
    /// If `key` already has one (one send in flight per key).
    pub(crate) fn start(&mut self, key: u32) -> &mut T {
        let k = key as usize;
        if self.slots.len() <= k {
            self.slots.resize_with(k + 1, || None);
        }
        assert!(self.slots[k].is_none(), "one send in flight per key");
        let op = match self.spares.pop() {
            Some(op) => {
                self.spare_room -= op.room();
                op
            }
            None => Box::default(),
        };
        self.live += 1;
        self.slots[k].insert(op)
    }

    /// The operation under `key`, if any.
    pub(crate) fn get_mut(&mut self, key: u32) -> Option<&mut T> {
        self.slots.get_mut(key as usize)?.as_deref_mut()
    }

    /// Take the operation under `key` out, let `empty` empty its vectors, and keep it as
    /// a spare if the free list has room (its capacity cut to what the budget allows).
    /// Returns false if `key` had no operation.
    pub(crate) fn finish(&mut self, key: u32, empty: impl FnOnce(&mut T)) -> bool {
        let Some(mut op) = self.slots.get_mut(key as usize).and_then(Option::take) else {
            return false;
        };
        self.live -= 1;
        empty(&mut op);
        self.recycle(op);
        self.since_trim += 1;
        if 4 * self.since_trim >= self.slots.len() && self.slots.len() > KEEP_SLOTS {
            self.trim_slots();
        }
        true
    }

    fn recycle(&mut self, mut op: Box<T>) {
        if self.spares.len() >= SPARES_MAX {
            return;
        }
        let budget = SPARE_ROOM_MAX
            .saturating_sub(self.spare_room)
            .max(SMALL_ROOM);
        if op.room() > budget {
            op.shrink_room(budget);
        }
        self.spare_room += op.room();
        self.spares.push(op);
    }

    /// Drop the empty slots at the end and capacity well above what is left. Called once
    /// per a quarter as many finished sends as there are slots, so trimming, and
    /// regrowing after a trim, cost each send O(1), however the keys come.
    fn trim_slots(&mut self) {
        self.since_trim = 0;
        while self.slots.last().is_some_and(Option::is_none) {
            self.slots.pop();
        }
        let keep = self.slots.len().max(KEEP_SLOTS);
        if self.slots.capacity() > 2 * keep {
            self.slots.shrink_to(keep);
        }
    }

    /// Operations still under a key (in flight, or finished but not yet given back).
    pub(crate) fn in_flight(&self) -> usize {
        self.live
    }

    /// Forget every operation without freeing it: the kernel may still hold pointers
    /// into them (a ring dropped with sends in flight).
    pub(crate) fn leak(&mut self) {
        std::mem::forget(std::mem::take(&mut self.slots));
        self.live = 0;
    }

    /// (spares, room they keep, slot vector capacity), for tests.
    #[cfg(test)]
    pub(crate) fn footprint(&self) -> (usize, usize, usize) {
        (self.spares.len(), self.spare_room, self.slots.capacity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in operation: one vector.
    #[derive(Default)]
    struct Op {
        v: Vec<u64>,
    }

    impl Reusable for Op {
        fn room(&self) -> usize {
            self.v.capacity()
        }
        fn shrink_room(&mut self, max: usize) {
            self.v.shrink_to(max);
        }
    }

    #[test]
    fn a_burst_leaves_a_bounded_free_list_and_trimmed_slots() {
        let mut t = SendTable::<Op>::default();
        let burst = 10_000u32;
        for key in 0..burst {
            t.start(key).v.extend(0..1024); // a large gathered send on every key
        }
        assert_eq!(t.in_flight(), burst as usize);
        for key in 0..burst {
            assert!(t.finish(key, |op| op.v.clear()));
        }
        let (spares, room, slots) = t.footprint();
        assert_eq!(t.in_flight(), 0);
        assert!(spares <= SPARES_MAX, "{spares} spares");
        assert!(
            room <= SPARE_ROOM_MAX + SPARES_MAX * SMALL_ROOM,
            "spares keep {room} entries"
        );
        assert!(slots <= 2 * KEEP_SLOTS, "{slots} slots kept");
        assert!(!t.finish(0, |_| {}), "nothing left under a key");
    }

    #[test]
    fn steady_small_sends_reuse_their_boxes_and_capacity() {
        let mut t = SendTable::<Op>::default();
        // Warm up with 100 concurrent sends of a few chunks.
        for key in 0..100 {
            t.start(key).v.extend(0..3);
        }
        for key in 0..100 {
            t.finish(key, |op| op.v.clear());
        }
        let before = t.footprint();
        assert_eq!(before.0, 100);
        for _ in 0..10 {
            for key in 0..100 {
                let op = t.start(key);
                assert!(op.v.capacity() >= 3, "a spare comes with its capacity");
                op.v.extend(0..3);
            }
            for key in 0..100 {
                t.finish(key, |op| op.v.clear());
            }
        }
        assert_eq!(
            t.footprint(),
            before,
            "nothing made or dropped in steady state"
        );
    }

    #[test]
    fn a_busy_high_key_does_not_regrow_the_slots_every_send() {
        let mut t = SendTable::<Op>::default();
        for key in 0..5000 {
            t.start(key);
        }
        for key in 0..5000 {
            t.finish(key, |_| {});
        }
        let after_burst = t.footprint().2;
        assert!(after_burst <= 2 * KEEP_SLOTS);
        // One connection on the burst's last key: the vector regrows once, then stays
        // until a quarter as many sends as slots have finished.
        let mut grows = 0;
        let mut cap = after_burst;
        for _ in 0..20_000 {
            t.start(4999);
            t.finish(4999, |_| {});
            if t.footprint().2 != cap {
                grows += 1;
                cap = t.footprint().2;
            }
        }
        assert!(grows <= 2 * (20_000 / (5000 / 4) + 1), "{grows} resizes");
    }
}
