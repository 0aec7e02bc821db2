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
#[cfg(test)]
fn matches(seed: u64, offset: usize, data: &[u8]) -> bool {
    matches_mapped(seed, offset, data, false)
}

/// As [`matches`], against the printable mapping of the message when `printable`.
fn matches_mapped(seed: u64, offset: usize, data: &[u8], printable_body: bool) -> bool {
    let mut pos = offset;
    let mut rest = data;
    while !rest.is_empty() {
        let mut w = word(seed, (pos / 8) as u64);
        if printable_body {
            w = w.map(printable);
        }
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

/// A printable ASCII byte (never `\n` or `\r`) standing for `b`, for line framing.
fn printable(b: u8) -> u8 {
    b'!' + b % 94
}

/// How each message looks on the wire: the pattern body of `body` bytes between a header
/// and a trailer (a codec's framing; both empty for raw). Every message has the same
/// length, so the header is the same for all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    header: Vec<u8>,
    body: usize,
    trailer: Vec<u8>,
    /// Map body bytes to printable ASCII (line framing).
    printable: bool,
}

impl Shape {
    /// Unframed messages of `size` bytes.
    #[cfg(test)]
    pub fn raw(size: usize) -> Shape {
        Shape {
            header: Vec::new(),
            body: size,
            trailer: Vec::new(),
            printable: false,
        }
    }

    /// Messages with a `body`-byte payload framed by `codec`.
    pub fn framed(codec: &ringport::Codec, body: usize) -> anyhow::Result<Shape> {
        let printable = matches!(codec, ringport::Codec::Delimited(_));
        let sample = vec![b'a'; body];
        let parts = codec
            .parts(&sample)
            .map_err(|e| anyhow::anyhow!("cannot frame {body}-byte messages: {e}"))?;
        Ok(Shape {
            header: parts.header().to_vec(),
            body,
            trailer: parts.trailer().to_vec(),
            printable,
        })
    }

    /// Bytes of one message on the wire.
    pub fn len(&self) -> usize {
        self.header.len() + self.body + self.trailer.len()
    }

    /// Fill `buf` (`len()` bytes) with the message of `seed`.
    pub fn fill(&self, seed: u64, buf: &mut [u8]) {
        let (h, rest) = buf.split_at_mut(self.header.len());
        h.copy_from_slice(&self.header);
        let (body, t) = rest.split_at_mut(self.body);
        fill(seed, body);
        if self.printable {
            body.iter_mut().for_each(|b| *b = printable(*b));
        }
        t.copy_from_slice(&self.trailer);
    }

    /// True if `data` equals the message of `seed` from byte `offset` on.
    pub fn matches(&self, seed: u64, offset: usize, data: &[u8]) -> bool {
        let (h, b) = (self.header.len(), self.body);
        let mut pos = offset;
        let mut rest = data;
        while !rest.is_empty() {
            let ok = if pos < h {
                let n = (h - pos).min(rest.len());
                let ok = rest[..n] == self.header[pos..pos + n];
                (pos, rest) = (pos + n, &rest[n..]);
                ok
            } else if pos < h + b {
                let n = (h + b - pos).min(rest.len());
                let ok = matches_mapped(seed, pos - h, &rest[..n], self.printable);
                (pos, rest) = (pos + n, &rest[n..]);
                ok
            } else {
                let at = pos - h - b;
                let n = (self.trailer.len() - at).min(rest.len());
                let ok = rest[..n] == self.trailer[at..at + n];
                (pos, rest) = (pos + n, &rest[n..]);
                ok
            };
            if !ok {
                return false;
            }
        }
        true
    }
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

    #[test]
    fn framed_shapes_match_in_any_chunking_and_catch_a_flipped_byte() {
        let codecs = [
            ringport::Codec::Raw,
            "length:4".parse().unwrap(),
            "line".parse().unwrap(),
        ];
        for codec in codecs {
            let shape = Shape::framed(&codec, 37).unwrap();
            let s = seed(5, 9);
            let mut msg = vec![0u8; shape.len()];
            shape.fill(s, &mut msg);
            for split in 0..=msg.len() {
                assert!(shape.matches(s, 0, &msg[..split]), "{codec:?} at {split}");
                assert!(
                    shape.matches(s, split, &msg[split..]),
                    "{codec:?} at {split}"
                );
            }
            for i in 0..msg.len() {
                let mut bad = msg.clone();
                bad[i] ^= 0x40;
                assert!(!shape.matches(s, 0, &bad), "{codec:?} flip at {i}");
            }
            if matches!(codec, ringport::Codec::Delimited(_)) {
                assert!(!msg[..msg.len() - 1].contains(&b'\n'));
            }
        }
    }
}
