//! Bounded memory and resynchronisation on hostile input (the allocation bound of a huge
//! header is proved in `codec_alloc.rs`, a test binary of its own).

use ringport::codec::{
    Codec, DelimitedCodec, Endian, Event, FrameError, FrameReader, LengthCodec, Next,
};

const MIB: usize = 1024 * 1024;

fn frames_of(
    reader: &mut FrameReader<ringport::codec::FrameDecoder>,
    chunks: &[&[u8]],
) -> Result<Vec<Vec<u8>>, FrameError> {
    let mut out = Vec::new();
    for c in chunks {
        reader.feed(c, &mut |ev| {
            if let Event::Frame(f) = ev {
                out.push(f.to_vec());
            }
            Next::Continue
        })?;
    }
    Ok(out)
}

#[test]
fn a_spanning_frame_is_assembled_in_a_buffer_never_above_its_size_then_freed() {
    let codec = Codec::Length(
        LengthCodec::new(4, Endian::Big)
            .unwrap()
            .max_payload_len(MIB),
    );
    let mut reader = FrameReader::new(codec.decoder());
    let mut stream = Vec::new();
    codec.encode(&vec![9u8; MIB], &mut stream).unwrap();
    codec.encode(b"next", &mut stream).unwrap();
    let mut frames = Vec::new();
    for piece in stream.chunks(4096) {
        reader
            .feed(piece, &mut |ev| {
                if let Event::Frame(f) = ev {
                    frames.push(f.len());
                }
                Next::Continue
            })
            .unwrap();
        assert!(
            reader.capacity() <= MIB + 4,
            "capacity {}",
            reader.capacity()
        );
    }
    assert_eq!(frames, vec![MIB, 4]);
    assert_eq!(reader.capacity(), 0, "the assembly buffer is freed");
}

#[test]
fn a_long_line_fails_within_the_maximum() {
    let codec = Codec::Delimited(DelimitedCodec::lines().max_length(1000));
    let mut reader = FrameReader::new(codec.decoder());
    let junk = vec![b'x'; 64];
    let mut result = Ok(());
    for _ in 0..1000 {
        result = reader.feed(&junk, &mut |_| Next::Continue);
        assert!(reader.capacity() <= 4096, "capacity {}", reader.capacity());
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(FrameError::LineTooLong { max: 1000 }));
}

/// An oversized frame, then a valid one, split in two at every offset: the valid frame
/// arrives intact, and the oversized one is counted as discarded.
fn resync_at_every_offset(codec: &Codec, oversized: &[u8], valid_payload: &[u8]) {
    let mut stream = oversized.to_vec();
    codec.encode(valid_payload, &mut stream).unwrap();
    for split in 0..=stream.len() {
        let mut reader = FrameReader::new(codec.decoder());
        let (a, b) = stream.split_at(split);
        let frames = frames_of(&mut reader, &[a, b]).unwrap();
        assert_eq!(frames, vec![valid_payload.to_vec()], "split at {split}");
        assert_eq!(reader.discarded_frames(), 1, "split at {split}");
        assert_eq!(reader.buffered(), 0);
    }
}

#[test]
fn discard_mode_resynchronises_after_an_oversized_length_frame() {
    let codec = Codec::Length(
        LengthCodec::new(2, Endian::Big)
            .unwrap()
            .max_payload_len(16)
            .discard_oversized(true),
    );
    let mut oversized = vec![0, 40];
    oversized.extend(std::iter::repeat_n(0xAB, 40));
    resync_at_every_offset(&codec, &oversized, b"hello, world");
}

#[test]
fn discard_mode_resynchronises_after_an_overlong_line() {
    for codec in [
        DelimitedCodec::lines(),
        DelimitedCodec::new(b"\r\n\r\n").unwrap(),
    ] {
        let codec = Codec::Delimited(codec.max_length(16).discard_oversized(true));
        let mut oversized = vec![b'z'; 70];
        let mut trailer = Vec::new();
        codec.encode(b"", &mut trailer).unwrap();
        oversized.extend_from_slice(&trailer);
        resync_at_every_offset(&codec, &oversized, b"a good line");
    }
}

#[test]
fn malformed_lengths_and_unframeable_payloads_are_typed_errors() {
    let codec = Codec::Length(
        LengthCodec::new(1, Endian::Big)
            .unwrap()
            .includes_header(true),
    );
    let mut reader = FrameReader::new(codec.decoder());
    assert_eq!(
        frames_of(&mut reader, &[&[0]]),
        Err(FrameError::LengthBelowHeader {
            value: 0,
            header: 1
        })
    );
    assert_eq!(
        codec.encode(&[0; 300], &mut Vec::new()),
        Err(FrameError::TooLongForHeader { len: 300, width: 1 })
    );
    let lines = Codec::Delimited(DelimitedCodec::lines());
    assert_eq!(
        lines.encode(b"two\nlines", &mut Vec::new()),
        Err(FrameError::DelimiterInPayload)
    );
}
