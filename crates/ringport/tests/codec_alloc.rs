//! A length header of 2^32-1 against a 1 MiB maximum: the decoder fails with
//! `FrameTooLong` having allocated nothing near the announced size. The test binary runs
//! under a capped, counting allocator (the `cap` crate) and holds this one test, so the
//! peak of live heap bytes during the test is the test's own.

use cap::Cap;
use ringport::codec::{Codec, Endian, Event, FrameError, FrameReader, LengthCodec, Next};
use std::alloc::System;

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

const MIB: usize = 1024 * 1024;

#[test]
fn a_huge_header_fails_before_any_allocation_above_the_maximum() {
    let codec = Codec::Length(
        LengthCodec::new(4, Endian::Big)
            .unwrap()
            .max_payload_len(MIB),
    );
    let mut reader = FrameReader::new(codec.decoder());
    let before = ALLOC.allocated();
    // The header arrives split over three chunks, then payload bytes follow.
    let mut result = Ok(());
    for chunk in [&[0xff, 0xff][..], &[0xff], &[0xff, 1, 2, 3]] {
        result = reader.feed(chunk, &mut |ev| {
            assert!(!matches!(ev, Event::Frame(_)), "no frame may come out");
            Next::Continue
        });
        if result.is_err() {
            break;
        }
    }
    let peak = ALLOC.max_allocated();
    assert_eq!(
        result,
        Err(FrameError::TooLong {
            len: u32::MAX as u64,
            max: MIB as u64
        })
    );
    assert!(
        peak <= before + MIB,
        "peak heap {peak} bytes, {before} before the test"
    );
    assert!(reader.capacity() < 16, "held {} bytes", reader.capacity());
}
