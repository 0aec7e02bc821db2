#![no_main]
//! Exact reads interleaved with every codec family: the first byte picks the codec (raw,
//! length 2, line, a 2-byte delimiter, fixed 3, or fixed usize::MAX), the next ones the
//! chunking and a plan of exact reads asked from the frame callback and from outside
//! `feed` (then delivered by an empty feed). Checks exact lengths, no stall, bounds.
use libfuzzer_sys::fuzz_target;
use ringport::codec::{Codec, DelimitedCodec, Endian, FixedCodec, LengthCodec};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((cfg, rest)) = common::split(data, 8) else {
        return;
    };
    let codec = match cfg[0] % 6 {
        0 => Codec::Raw,
        1 => Codec::Length(
            LengthCodec::new(2, Endian::Big)
                .unwrap()
                .max_payload_len(1000),
        ),
        2 => Codec::Delimited(DelimitedCodec::lines().max_length(100)),
        3 => Codec::Delimited(DelimitedCodec::new(&cfg[1..3]).unwrap().max_length(50)),
        4 => Codec::Fixed(FixedCodec::new(3).unwrap()),
        _ => Codec::Fixed(FixedCodec::new(usize::MAX).unwrap()),
    };
    common::check(&codec, rest, &cfg[3..5], &cfg[5..8]);
});
