//! Shared by every fuzz target: feed the input to a decoder one-shot and in chunks, and
//! check what must hold for any input: no panic, the same frames (or the same error) in
//! both, frames never above the maximum, memory held within twice the bytes held and
//! never above the maximum frame; exact reads (asked from the frame callback, or from
//! outside `feed` and then delivered by an empty feed) come out at exactly their length,
//! and nothing deliverable is ever left waiting for the next receive.
#![allow(dead_code)]

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

/// The exact read asked after frame `k` by `plan` (a byte with bit 0 set asks one).
fn planned(plan: &[u8], k: usize) -> Option<usize> {
    let p = *plan.get(k % plan.len().max(1))?;
    (p & 1 == 1).then_some((p >> 1) as usize % 64 + 1)
}

/// The exact read asked from outside `feed` before chunk `i` (a byte with bit 7 set).
fn outside(plan: &[u8], i: usize) -> Option<usize> {
    let p = *plan.get((i + 1) % plan.len().max(1))?;
    (p & 0x80 != 0).then_some((p & 0x3f) as usize + 1)
}

/// Frames, the error that stopped the reader (if one did), bytes still held at the end.
type Outcome = (Vec<Vec<u8>>, Option<ringport::FrameError>, usize);

/// Feed `pieces`; exact reads per `plan` (from outside `feed` too if `from_outside`).
fn run(codec: &Codec, pieces: &[&[u8]], plan: &[u8], from_outside: bool) -> Outcome {
    let mut decoder = codec.decoder();
    let max = decoder.max_frame();
    decoder.reset();
    let exact_max = codec.max_exact_read();
    let mut reader = FrameReader::with_exact_max(codec.decoder(), exact_max);
    let mut frames = Vec::new();
    let expect: std::cell::Cell<Option<usize>> = std::cell::Cell::new(None);
    let count = std::cell::Cell::new(0usize);
    let mut on = |ev: Event<'_>| {
        let Event::Frame(f) = ev else {
            return Next::Continue;
        };
        count.set(count.get() + 1);
        match expect.take() {
            Some(n) => assert_eq!(f.len(), n, "an exact read of {n} gave {}", f.len()),
            None => assert!(
                f.len() <= max,
                "frame of {} above the maximum {max}",
                f.len()
            ),
        }
        frames.push(f.to_vec());
        match planned(plan, frames.len() - 1) {
            Some(len) => {
                expect.set(Some(len));
                Next::ReadExact {
                    len,
                    progress: len % 3 == 0,
                }
            }
            None => Next::Continue,
        }
    };
    for (i, p) in pieces.iter().enumerate() {
        if from_outside {
            if let Some(len) = outside(plan, i) {
                if reader.read_exact(len, len % 2 == 0).is_ok() {
                    expect.set(Some(len));
                    let (held, before) = (reader.buffered(), count.get());
                    if let Err(e) = reader.feed(&[], &mut on) {
                        return (frames, Some(e), 0);
                    }
                    // Held bytes enough for the read: it went out in the empty feed.
                    let delivered = count.get() > before;
                    assert!(held < len || delivered, "an exact read stalled");
                }
            }
        }
        let r = reader.feed(p, &mut on);
        let held = reader.buffered();
        assert!(held <= max.max(exact_max), "held {held} > {max}");
        assert!(
            reader.held_bytes() <= 2 * held + 64,
            "{} heap bytes for {held} held",
            reader.held_bytes()
        );
        if let Err(e) = r {
            return (frames, Some(e), 0);
        }
        // Everything deliverable was delivered: an empty feed finds nothing to do.
        let mut late = 0;
        let r = reader.feed(&[], &mut |_| {
            late += 1;
            Next::Continue
        });
        assert!(
            r.is_ok() && late == 0,
            "a delivery waited for the next receive"
        );
    }
    let held = reader.buffered();
    (frames, None, held)
}

/// The property every target checks; `plan` steers exact reads (may be empty).
pub fn check(codec: &Codec, stream: &[u8], cut_seed: &[u8], plan: &[u8]) {
    let pieces = chunks(stream, cut_seed);
    for plan in [&[][..], plan] {
        let (one, one_err, one_held) = run(codec, &[stream], plan, false);
        let (many, many_err, many_held) = run(codec, &pieces, plan, false);
        assert_eq!(
            one_err, many_err,
            "one-shot and chunked disagree on the error"
        );
        if *codec == Codec::Raw {
            // Raw deliveries (and so where an exact read starts) follow the chunking:
            // each run delivers a prefix of the stream and holds the rest.
            for (frames, held) in [(&one, one_held), (&many, many_held)] {
                let bytes = frames.concat();
                assert!(stream.starts_with(&bytes), "raw bytes out of order");
                assert_eq!(bytes.len() + held, stream.len(), "raw bytes lost");
            }
            continue;
        }
        if one_err.is_none() {
            assert_eq!(one, many, "one-shot and chunked frames differ");
        } else {
            // Up to the error, the frames agree.
            let n = one.len().min(many.len());
            assert_eq!(one[..n], many[..n]);
        }
        if plan.is_empty() {
            round_trip(codec, &one);
        }
    }
    // Exact reads asked between receives: only the invariants (where they land depends on
    // the chunking).
    run(codec, &pieces, plan, true);
}

/// Whatever decoded re-encodes and decodes to itself.
fn round_trip(codec: &Codec, frames: &[Vec<u8>]) {
    let mut wire = Vec::new();
    for f in frames {
        if codec.encode(f, &mut wire).is_err() {
            return; // e.g. a payload of a custom adjustment; not every frame re-encodes
        }
    }
    let (again, err, _) = run(codec, &[&wire], &[], false);
    assert!(err.is_none());
    assert_eq!(again, frames);
}
