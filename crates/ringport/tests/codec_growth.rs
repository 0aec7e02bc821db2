//! Frame assembly memory follows the bytes that arrived, measured with a counting
//! allocator (the `cap` crate): a header announcing 8 MiB followed by 4 KiB costs about
//! 4 KiB, and a whole 8 MiB frame in 4 KiB chunks is assembled with allocations in total
//! under three times its size (doubling growth, no quadratic copying). One test in this
//! binary, so the allocator's figures during it are the test's own.

use cap::Cap;
use ringport::codec::{Codec, Endian, Event, FrameReader, LengthCodec, Next};
use std::alloc::System;

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

const MIB: usize = 1024 * 1024;
const CHUNK: usize = 4096;
/// Allocator slack beyond the assembly buffer (the reader itself is on the stack; the
/// test harness's own threads may allocate a little meanwhile).
const SLACK: usize = 1024;

#[test]
fn assembly_memory_grows_with_what_arrived() {
    let codec = Codec::Length(
        LengthCodec::new(4, Endian::Big)
            .unwrap()
            .max_payload_len(16 * MIB),
    );
    let header = (8 * MIB as u32).to_be_bytes();
    let chunk = vec![0x5a; CHUNK];
    let mut first = header.to_vec();
    first.extend_from_slice(&chunk);

    // 1. The header and 4 KiB: live heap grows by ~4 KiB, not by 8 MiB.
    let mut reader = FrameReader::new(codec.decoder());
    let before = ALLOC.allocated();
    let mut frames = 0usize;
    let mut sum = 0u64;
    let mut on = |ev: Event<'_>| {
        if let Event::Frame(f) = ev {
            frames += 1;
            sum += f.iter().map(|&b| u64::from(b)).sum::<u64>() + f.len() as u64;
        }
        Next::Continue
    };
    reader.feed(&first, &mut on).unwrap();
    let grown = ALLOC.allocated() - before;
    assert!(
        grown <= 2 * CHUNK + SLACK && reader.held_bytes() <= 2 * CHUNK + SLACK,
        "header of 8 MiB + 4 KiB: heap +{grown} B, reader holds {} B",
        reader.held_bytes()
    );
    // More arrives: memory follows, within twice what is in hand.
    for _ in 0..15 {
        reader.feed(&chunk, &mut on).unwrap();
        let held = reader.buffered();
        let grown = ALLOC.allocated() - before;
        assert!(
            grown <= 2 * held + SLACK,
            "{held} B in hand, heap +{grown} B"
        );
    }
    drop(reader);

    // 2. A whole 8 MiB frame (and a small one behind it) in 4 KiB chunks.
    let mut stream = header.to_vec();
    stream.resize(4 + 8 * MIB, 0x5a);
    stream.extend_from_slice(&[0, 0, 0, 2, 1, 2]);
    let mut reader = FrameReader::new(codec.decoder());
    let total_before = ALLOC.total_allocated();
    let live_before = ALLOC.allocated();
    frames = 0;
    sum = 0;
    let mut on = |ev: Event<'_>| {
        if let Event::Frame(f) = ev {
            frames += 1;
            sum += f.iter().map(|&b| u64::from(b)).sum::<u64>() + f.len() as u64;
        }
        Next::Continue
    };
    for piece in stream.chunks(CHUNK) {
        reader.feed(piece, &mut on).unwrap();
    }
    let total = ALLOC.total_allocated() - total_before;
    assert_eq!(frames, 2);
    assert_eq!(sum, (0x5a + 1) * 8 * MIB as u64 + 3 + 2);
    assert!(
        total < 3 * 8 * MIB,
        "assembling 8 MiB allocated {total} B in total"
    );
    assert_eq!(reader.held_bytes(), 0, "freed after delivery");
    let kept = ALLOC.allocated().saturating_sub(live_before);
    assert!(kept <= SLACK, "{kept} B of heap kept after delivery");
}
