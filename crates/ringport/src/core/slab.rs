//! The connection table: slots with generations. A slot is freed only by the engine once
//! every operation of its connection has completed; freeing bumps the generation, so a
//! completion naming the old generation no longer finds anything. Generations are 24
//! bits (they travel in each operation's name) and may come round again after 2^24
//! reuses of one slot: enough for completions, which all arrive before their slot is
//! freed, but not for handles, which are checked by the connection's serial number
//! instead (see `ConnId`).

use crate::core::op_name::GEN_MASK;
use crate::core::ConnKey;

struct Entry<T> {
    gen: u32,
    /// The slab's stamp when the value was inserted. It sits beside `gen` in what would
    /// otherwise be padding, so it costs no memory.
    stamp: u32,
    value: Option<T>,
}

/// A slab of `T` addressed by [`ConnKey`] (slot and generation).
pub(crate) struct Slab<T> {
    entries: Vec<Entry<T>>,
    free: Vec<u32>,
    len: usize,
    /// Stamped on every value inserted (the worker keeps it at its clock's tick).
    stamp: u32,
    /// How far a freed slot's generation moves (1; tests set 2^24 to make a reused
    /// slot's generation come round at once, as after 2^24 reuses).
    generation_step: u32,
}

impl<T> Slab<T> {
    #[cfg(test)]
    pub(crate) fn new() -> Slab<T> {
        Slab::with_generation_step(1)
    }

    /// A slab whose freed slots advance their generation by `step` (tests of the wrap).
    pub(crate) fn with_generation_step(step: u32) -> Slab<T> {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
            stamp: 0,
            generation_step: step,
        }
    }

    /// Live values.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Store a value built from its key; returns the key.
    pub(crate) fn insert_with(&mut self, make: impl FnOnce(ConnKey) -> T) -> ConnKey {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.entries.push(Entry {
                    gen: 0,
                    stamp: 0,
                    value: None,
                });
                (self.entries.len() - 1) as u32
            }
        };
        let e = &mut self.entries[slot as usize];
        debug_assert!(e.value.is_none());
        let key = ConnKey { slot, gen: e.gen };
        e.value = Some(make(key));
        e.stamp = self.stamp;
        self.len += 1;
        key
    }

    /// The value under `key` if it is live (its slot holds that generation).
    pub(crate) fn get_mut(&mut self, key: ConnKey) -> Option<&mut T> {
        let e = self.entries.get_mut(key.slot as usize)?;
        if e.gen != key.gen {
            return None;
        }
        e.value.as_mut()
    }

    /// The live value in `slot`, whatever its generation, with its key.
    pub(crate) fn get_slot_mut(&mut self, slot: u32) -> Option<(ConnKey, &mut T)> {
        let e = self.entries.get_mut(slot as usize)?;
        let key = ConnKey { slot, gen: e.gen };
        e.value.as_mut().map(|v| (key, v))
    }

    /// Free the slot of `key` and return its value; the slot's next tenant gets a new
    /// generation.
    pub(crate) fn remove(&mut self, key: ConnKey) -> Option<T> {
        let e = self.entries.get_mut(key.slot as usize)?;
        if e.gen != key.gen {
            return None;
        }
        let v = e.value.take()?;
        e.gen = e.gen.wrapping_add(self.generation_step) & GEN_MASK;
        self.free.push(key.slot);
        self.len -= 1;
        Some(v)
    }

    /// Stamp values inserted from now on with `stamp`.
    pub(crate) fn set_stamp(&mut self, stamp: u32) {
        self.stamp = stamp;
    }

    /// Every live value with its key and insertion stamp.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (ConnKey, u32, &mut T)> {
        self.entries.iter_mut().enumerate().filter_map(|(i, e)| {
            let key = ConnKey {
                slot: i as u32,
                gen: e.gen,
            };
            Some((key, e.stamp, e.value.as_mut()?))
        })
    }

    /// The key of every live value.
    pub(crate) fn keys(&self) -> Vec<ConnKey> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.value.is_some())
            .map(|(i, e)| ConnKey {
                slot: i as u32,
                gen: e.gen,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reused_slot_gets_new_generation_and_old_name_misses() {
        let mut s = Slab::new();
        let old = s.insert_with(|_| "first");
        assert_eq!(s.remove(old), Some("first"));
        let new = s.insert_with(|_| "second");
        assert_eq!(new.slot, old.slot, "the freed slot is reused");
        assert_ne!(new.gen, old.gen);
        assert!(s.get_mut(old).is_none(), "a stale name finds nothing");
        assert_eq!(s.get_mut(new).copied(), Some("second"));
        assert!(s.remove(old).is_none(), "a stale name frees nothing");
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn a_generation_step_of_2_pow_24_brings_the_generation_round() {
        let mut s = Slab::with_generation_step(GEN_MASK + 1);
        let old = s.insert_with(|_| "first");
        s.remove(old);
        let new = s.insert_with(|_| "second");
        assert_eq!(new, old, "as after 2^24 reuses of the slot");
        assert_eq!(
            s.get_slot_mut(old.slot).map(|(k, v)| (k, *v)),
            Some((old, "second"))
        );
    }

    #[test]
    fn values_carry_the_stamp_of_their_insertion() {
        let mut s = Slab::new();
        s.set_stamp(7);
        let a = s.insert_with(|_| 'a');
        s.set_stamp(9);
        let b = s.insert_with(|_| 'b');
        let all: Vec<_> = s.iter_mut().map(|(k, t, v)| (k, t, *v)).collect();
        assert_eq!(all, vec![(a, 7, 'a'), (b, 9, 'b')]);
    }

    #[test]
    fn the_stamp_costs_no_memory() {
        // gen and stamp share the 8 bytes that gen alone padded to (for any value with
        // 8-byte alignment, as a connection's state has).
        struct Value(#[allow(dead_code)] [u64; 5]);
        let value = std::mem::size_of::<Option<Value>>();
        assert_eq!(std::mem::size_of::<Entry<Value>>(), value + 8);
    }

    #[test]
    fn keys_lists_live_entries_only() {
        let mut s = Slab::new();
        let a = s.insert_with(|_| 1);
        let b = s.insert_with(|_| 2);
        s.remove(a);
        assert_eq!(s.keys(), vec![b]);
    }
}
