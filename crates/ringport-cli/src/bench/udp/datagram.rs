//! What the UDP load sends: a 16-byte header — the client's index (u32), its sequence
//! number on that client (u32) and its send time in nanoseconds since the run's start
//! (u64), all little-endian — then padding up to the datagram's size. The padding is a
//! slice of one fixed pseudo-random block at an offset derived from (client, seq), so a
//! datagram is built with one copy and its echo checked byte for byte with one compare,
//! without keeping what was sent.

use crate::pattern;

/// Bytes of the header, the smallest datagram.
pub const HEADER: usize = 16;
/// The largest datagram: the most payload an IPv4 UDP datagram carries.
pub const MAX_SIZE: usize = 65_507;
/// Padding offsets into the block: (client, seq) picks one of these.
const OFFSETS: usize = 4096;
/// Seed of the padding block (any constant; both ends of the check are this process).
const BLOCK_SEED: u64 = 0x5544_5020_6c6f_6164;

/// A datagram's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub client: u32,
    pub seq: u32,
    /// Send time (rate mode: scheduled send time), ns since the run's start.
    pub sent_ns: u64,
}

impl Header {
    /// The header at the start of `data`; `None` if `data` is shorter than one.
    pub fn parse(data: &[u8]) -> Option<Header> {
        let h = data.get(..HEADER)?;
        let u32_at = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().expect("4 bytes"));
        Some(Header {
            client: u32_at(0),
            seq: u32_at(4),
            sent_ns: u64::from_le_bytes(h[8..16].try_into().expect("8 bytes")),
        })
    }

    fn write(&self, buf: &mut [u8]) {
        buf[0..4].copy_from_slice(&self.client.to_le_bytes());
        buf[4..8].copy_from_slice(&self.seq.to_le_bytes());
        buf[8..16].copy_from_slice(&self.sent_ns.to_le_bytes());
    }
}

/// Builds and checks the datagrams of one run (all of one size).
pub struct Datagrams {
    size: usize,
    /// Padding source: `size - HEADER + OFFSETS` pseudo-random bytes.
    block: Vec<u8>,
}

impl Datagrams {
    /// Datagrams of `size` bytes, header included (16 to 65,507).
    pub fn new(size: usize) -> anyhow::Result<Datagrams> {
        anyhow::ensure!(
            (HEADER..=MAX_SIZE).contains(&size),
            "--size {size}: a UDP datagram of the load is {HEADER} (its header) to {MAX_SIZE} bytes"
        );
        let mut block = vec![0; size - HEADER + OFFSETS];
        pattern::fill(BLOCK_SEED, &mut block);
        Ok(Datagrams { size, block })
    }

    /// The padding of datagram `seq` of `client`.
    fn padding(&self, client: u32, seq: u32) -> &[u8] {
        let offset = (pattern::seed(client.into(), seq.into()) % OFFSETS as u64) as usize;
        &self.block[offset..offset + self.size - HEADER]
    }

    /// Write the datagram of `header` into `buf` (resized to the datagram's size).
    pub fn build(&self, header: Header, buf: &mut Vec<u8>) {
        buf.resize(self.size, 0);
        header.write(&mut buf[..HEADER]);
        buf[HEADER..].copy_from_slice(self.padding(header.client, header.seq));
    }

    /// True if `data` is exactly the datagram of `header` (its size, its header, its
    /// padding).
    pub fn is_intact(&self, header: Header, data: &[u8]) -> bool {
        data.len() == self.size
            && Header::parse(data) == Some(header)
            && data[HEADER..] == *self.padding(header.client, header.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Header = Header {
        client: 7,
        seq: 42,
        sent_ns: 123_456_789,
    };

    #[test]
    fn a_datagram_round_trips_and_any_change_is_caught() {
        let d = Datagrams::new(1200).unwrap();
        let mut buf = Vec::new();
        d.build(H, &mut buf);
        assert_eq!(buf.len(), 1200);
        assert_eq!(Header::parse(&buf), Some(H));
        assert!(d.is_intact(H, &buf));
        for i in [0, 5, 9, HEADER, 600, 1199] {
            let mut bad = buf.clone();
            bad[i] ^= 1;
            assert!(!d.is_intact(H, &bad), "a flipped byte {i} went unnoticed");
        }
        assert!(!d.is_intact(H, &buf[..1199]));
        let mut longer = buf.clone();
        longer.push(0);
        assert!(!d.is_intact(H, &longer));
    }

    #[test]
    fn padding_depends_on_client_and_seq() {
        let d = Datagrams::new(64).unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        d.build(H, &mut a);
        d.build(Header { seq: 43, ..H }, &mut b);
        assert_ne!(a[HEADER..], b[HEADER..]);
        d.build(Header { client: 8, ..H }, &mut b);
        assert_ne!(a[HEADER..], b[HEADER..]);
    }

    #[test]
    fn sizes_are_bounded_by_the_header_and_udp() {
        assert!(Datagrams::new(15).is_err());
        assert!(Datagrams::new(MAX_SIZE + 1).is_err());
        let d = Datagrams::new(HEADER).unwrap();
        let mut buf = Vec::new();
        d.build(H, &mut buf);
        assert!(d.is_intact(H, &buf));
        assert!(Datagrams::new(MAX_SIZE).is_ok());
        assert_eq!(Header::parse(&buf[..HEADER - 1]), None);
    }
}
