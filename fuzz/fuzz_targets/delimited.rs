#![no_main]
//! Custom-delimiter decoder: a 1 to 4-byte delimiter taken from the input.
use libfuzzer_sys::fuzz_target;
use ringport::codec::{Codec, DelimitedCodec};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((cfg, rest)) = common::split(data, 10) else {
        return;
    };
    let dlen = 1 + (cfg[0] & 3) as usize;
    let codec = DelimitedCodec::new(&cfg[4..4 + dlen])
        .unwrap()
        .discard_oversized(cfg[0] & 4 != 0)
        .max_length(cfg[1] as usize);
    common::check(&Codec::Delimited(codec), rest, &cfg[2..4], &cfg[8..10]);
});
