#![no_main]
//! Exact reads interleaved with a length-prefixed codec: after each frame the input says
//! whether the next delivery is an exact read and how long. Checks that exact reads come
//! out at exactly their length and that nothing is held above the bounds.
use libfuzzer_sys::fuzz_target;
use ringport::codec::{Codec, Endian, Event, FrameReader, LengthCodec, Next};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (plan, stream) = data.split_at(8);
    let codec = Codec::Length(LengthCodec::new(2, Endian::Big).unwrap().max_payload_len(1000));
    let mut reader = FrameReader::new(codec.decoder());
    let mut step = 0usize;
    let mut expect_exact: Option<usize> = None;
    let cut = (plan[7] as usize).max(1);
    for piece in stream.chunks(cut) {
        let r = reader.feed(piece, &mut |ev| {
            if let Event::Frame(f) = ev {
                if let Some(n) = expect_exact.take() {
                    assert_eq!(f.len(), n, "an exact read of {n} gave {}", f.len());
                }
                step += 1;
                let p = plan[step % 7];
                if p & 1 == 1 {
                    let len = (p >> 1) as usize + 1;
                    expect_exact = Some(len);
                    return Next::ReadExact { len, progress: p & 2 != 0 };
                }
            }
            Next::Continue
        });
        assert!(reader.buffered() <= 1002);
        if r.is_err() {
            return;
        }
    }
});
