//! Deterministic message content: byte `i` of message `seq` on connection `token` is a
//! pure function of `(token, seq, i)`, so an echo can be checked as it arrives, in any
//! chunking, without keeping a copy of what was sent.

/// The SplitMix64 finalizer: a cheap, well-mixed 64-bit hash.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// The seed of one message.
pub fn seed(token: u64, seq: u64) -> u64 {
    mix(mix(token.wrapping_add(GOLDEN)) ^ seq.wrapping_mul(GOLDEN))
}

/// The 8 bytes at word `k` (bytes `8k..8k+8`) of the message with `seed`.
fn word(seed: u64, k: u64) -> [u8; 8] {
    mix(seed.wrapping_add(k.wrapping_mul(GOLDEN))).to_le_bytes()
}

/// Fill `buf` with the whole message (from byte 0) of `seed`.
pub fn fill(seed: u64, buf: &mut [u8]) {
    for (k, chunk) in buf.chunks_mut(8).enumerate() {
        let w = word(seed, k as u64);
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
}

/// True if `data` equals the message of `seed` from byte `offset` on.
pub fn matches(seed: u64, offset: usize, data: &[u8]) -> bool {
    let mut pos = offset;
    let mut rest = data;
    while !rest.is_empty() {
        let w = word(seed, (pos / 8) as u64);
        let start = pos % 8;
        let n = (8 - start).min(rest.len());
        if w[start..start + n] != rest[..n] {
            return false;
        }
        pos += n;
        rest = &rest[n..];
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_chunking_matches_the_filled_message() {
        let s = seed(3, 17);
        let mut msg = vec![0u8; 1000];
        fill(s, &mut msg);
        for split in [0, 1, 7, 8, 9, 500, 999, 1000] {
            assert!(matches(s, 0, &msg[..split]));
            assert!(matches(s, split, &msg[split..]));
        }
    }

    #[test]
    fn a_flipped_byte_or_another_message_does_not_match() {
        let s = seed(3, 17);
        let mut msg = vec![0u8; 100];
        fill(s, &mut msg);
        let mut bad = msg.clone();
        bad[42] ^= 1;
        assert!(!matches(s, 0, &bad));
        assert!(!matches(seed(3, 18), 0, &msg));
        assert!(!matches(seed(4, 17), 0, &msg));
        // A shifted (duplicated or dropped byte) stream does not match either.
        assert!(!matches(s, 1, &msg[..99]));
    }
}
