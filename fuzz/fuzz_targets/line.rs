#![no_main]
//! Line decoder (`\n` and `\r\n`), with or without discard mode.
use libfuzzer_sys::fuzz_target;
use ringport::codec::{Codec, DelimitedCodec};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((cfg, rest)) = common::split(data, 6) else {
        return;
    };
    let codec = DelimitedCodec::lines()
        .discard_oversized(cfg[0] & 1 != 0)
        .max_length(cfg[1] as usize);
    common::check(&Codec::Delimited(codec), rest, &cfg[2..4], &cfg[4..6]);
});
