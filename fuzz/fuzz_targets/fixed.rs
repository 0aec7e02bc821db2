#![no_main]
//! Fixed-size decoder.
use libfuzzer_sys::fuzz_target;
use ringport::codec::{Codec, FixedCodec};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((cfg, rest)) = common::split(data, 5) else {
        return;
    };
    let codec = FixedCodec::new(cfg[0] as usize + 1).unwrap();
    common::check(&Codec::Fixed(codec), rest, &cfg[1..3], &cfg[3..5]);
});
