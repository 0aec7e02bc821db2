#![no_main]
//! Length-prefixed decoder: width, byte order, header counting, adjustment, discard mode
//! and maximum come from the first bytes of the input; then chunking and an exact-read plan.
use libfuzzer_sys::fuzz_target;
use ringport::codec::{Codec, Endian, LengthCodec};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((cfg, rest)) = common::split(data, 8) else {
        return;
    };
    let width = [1u8, 2, 4, 8][(cfg[0] & 3) as usize];
    let endian = if cfg[0] & 4 == 0 {
        Endian::Big
    } else {
        Endian::Little
    };
    let codec = LengthCodec::new(width, endian)
        .unwrap()
        .includes_header(cfg[0] & 8 != 0)
        .discard_oversized(cfg[0] & 16 != 0)
        .adjustment(cfg[1] as i8 as i64)
        .max_payload_len(u16::from_le_bytes([cfg[2], cfg[3]]) as usize);
    common::check(&Codec::Length(codec), rest, &cfg[4..6], &cfg[6..8]);
});
