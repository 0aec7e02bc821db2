//! A hash map for integer keys the engine makes up itself (operation names, sequence
//! numbers): no attacker picks them, so SipHash's protection buys nothing, and one
//! multiply spreads them over the table (hashbrown reads the top bits).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Multiplies the key by the 64-bit golden ratio (Fibonacci hashing).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A `HashMap` keyed by engine-made integers.
pub(crate) type IntMap<K, V> = HashMap<K, V, BuildHasherDefault<IntHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_is_a_map() {
        let mut m: IntMap<u64, u32> = IntMap::default();
        for i in 0..10_000u64 {
            m.insert(i << 32 | 7, i as u32);
        }
        assert!((0..10_000u64).all(|i| m.get(&(i << 32 | 7)) == Some(&(i as u32))));
        assert_eq!(m.len(), 10_000);
    }
}
