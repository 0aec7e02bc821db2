#![no_main]
//! Length-prefixed decoder at its extremes: the first bytes choose width, byte order,
//! header counting, discard mode, an adjustment (0, ±1, minus the width, i64::MIN/MAX, a
//! small one or any i64) and a maximum (0, 1, a u16, the field's largest value, u32::MAX,
//! usize::MAX and just under it); then chunking and an exact-read plan.
use libfuzzer_sys::fuzz_target;
use ringport::codec::{Codec, Endian, LengthCodec};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((cfg, rest)) = common::split(data, 16) else {
        return;
    };
    let width = [1u8, 2, 4, 8][(cfg[0] & 3) as usize];
    let endian = if cfg[0] & 4 == 0 {
        Endian::Big
    } else {
        Endian::Little
    };
    let raw = i64::from_le_bytes(cfg[1..9].try_into().unwrap());
    let adjustment = match cfg[0] >> 5 {
        0 => 0,
        1 => -1,
        2 => 1,
        3 => i64::MIN,
        4 => i64::MAX,
        5 => -i64::from(width),
        6 => i64::from(cfg[1] as i8),
        _ => raw,
    };
    let small = u16::from_le_bytes([cfg[10], cfg[11]]) as usize;
    let field_max = if width == 8 {
        usize::MAX
    } else {
        (1usize << (8 * width)) - 1
    };
    let max = match cfg[9] & 7 {
        0 => usize::MAX,
        1 => usize::MAX - 1,
        2 => usize::MAX - width as usize,
        3 => u32::MAX as usize,
        4 => 0,
        5 => 1,
        6 => field_max,
        _ => small,
    };
    let codec = LengthCodec::new(width, endian)
        .unwrap()
        .includes_header(cfg[0] & 8 != 0)
        .discard_oversized(cfg[0] & 16 != 0)
        .adjustment(adjustment)
        .max_payload_len(max);
    common::check(&Codec::Length(codec), rest, &cfg[12..14], &cfg[14..16]);
});
