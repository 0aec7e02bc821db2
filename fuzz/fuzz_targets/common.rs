//! Shared by every fuzz target: feed the input to a decoder one-shot and in chunks, and
//! check what must hold for any input: no panic, the same frames (or the same error) in
//! both, frames never above the maximum, nothing held above the maximum frame.

use ringport::codec::{Codec, Decoder, Event, FrameReader, Next};

/// Split `data` into a few config bytes and the stream.
pub fn split(data: &[u8], n: usize) -> Option<(&[u8], &[u8])> {
    (data.len() >= n).then(|| data.split_at(n))
}

/// Chunk boundaries from `seed` bytes: each byte is a chunk length (0 → 1).
fn chunks<'a>(stream: &'a [u8], seed: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < stream.len() {
        let n = seed.get(i % seed.len().max(1)).copied().unwrap_or(7).max(1) as usize;
        let end = (at + n).min(stream.len());
        out.push(&stream[at..end]);
        at = end;
        i += 1;
    }
    out
}

fn run(codec: &Codec, pieces: &[&[u8]]) -> (Vec<Vec<u8>>, Option<ringport::FrameError>) {
    let mut decoder = codec.decoder();
    let max = decoder.max_frame();
    decoder.reset();
    let mut reader = FrameReader::new(codec.decoder());
    let mut frames = Vec::new();
    for p in pieces {
        let r = reader.feed(p, &mut |ev| {
            if let Event::Frame(f) = ev {
                assert!(f.len() <= max, "frame of {} above the maximum {max}", f.len());
                frames.push(f.to_vec());
            }
            Next::Continue
        });
        assert!(reader.buffered() <= max, "held {} > {max}", reader.buffered());
        if let Err(e) = r {
            return (frames, Some(e));
        }
    }
    (frames, None)
}

/// The property every target checks.
pub fn check(codec: &Codec, stream: &[u8], cut_seed: &[u8]) {
    let (one, one_err) = run(codec, &[stream]);
    let (many, many_err) = run(codec, &chunks(stream, cut_seed));
    assert_eq!(one_err, many_err, "one-shot and chunked disagree on the error");
    if one_err.is_none() {
        assert_eq!(one, many, "one-shot and chunked frames differ");
    } else {
        // Up to the error, the frames agree (the chunked run may stop earlier or later
        // within the bad frame, never with different frames before it).
        let n = one.len().min(many.len());
        assert_eq!(one[..n], many[..n]);
    }
    // Round trip: whatever decoded re-encodes and decodes to itself.
    let mut wire = Vec::new();
    for f in &one {
        if codec.encode(f, &mut wire).is_err() {
            return; // e.g. a payload of a custom adjustment; not every frame re-encodes
        }
    }
    let (again, err) = run(codec, &[&wire]);
    assert!(err.is_none());
    assert_eq!(again, one);
}
