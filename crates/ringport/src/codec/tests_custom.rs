//! The open seam: a user decoder's maximum is enforced by the reader whatever it answers,
//! `Next::Hold` plus `set_decoder` re-frames held bytes, and custom codecs encode
//! atomically.

use super::*;

/// A hostile decoder: always "need more", announcing `announce` (or nothing).
#[derive(Clone)]
struct Greedy {
    announce: Option<usize>,
    max: usize,
}

impl Decoder for Greedy {
    fn decode(&mut self, _buf: &[u8]) -> Result<Decoded, FrameError> {
        Ok(Decoded::NeedMore {
            frame_len: self.announce,
        })
    }
    fn max_frame(&self) -> usize {
        self.max
    }
}

impl Encoder for Greedy {
    fn encode(&self, payload: &[u8], dst: &mut Vec<u8>) -> Result<(), FrameError> {
        dst.extend_from_slice(payload); // then fails: the codec must cut it off
        Err(FrameError::Malformed("never encodes"))
    }
}

fn frames(reader: &mut FrameReader<FrameDecoder>, data: &[u8]) -> Result<usize, FrameError> {
    let mut n = 0;
    reader.feed(data, &mut |_| {
        n += 1;
        Next::Continue
    })?;
    Ok(n)
}

#[test]
fn an_announcement_beyond_the_maximum_fails_before_any_memory_is_held() {
    let codec = Codec::custom(Greedy {
        announce: Some(usize::MAX),
        max: 1000,
    });
    let mut reader = FrameReader::new(codec.decoder());
    assert_eq!(
        frames(&mut reader, b"abc"),
        Err(FrameError::TooLong {
            len: usize::MAX as u64,
            max: 1000
        })
    );
    assert_eq!(reader.held_bytes(), 0);
}

#[test]
fn a_decoder_that_never_frames_is_stopped_at_its_maximum() {
    let codec = Codec::custom(Greedy {
        announce: None,
        max: 1000,
    });
    let mut reader = FrameReader::new(codec.decoder());
    let mut result = Ok(0);
    for _ in 0..100 {
        result = frames(&mut reader, &[7u8; 64]);
        assert!(reader.held_bytes() <= 2 * 1000);
        if result.is_err() {
            break;
        }
    }
    assert!(matches!(result, Err(FrameError::TooLong { max: 1000, .. })));
    assert_eq!(reader.held_bytes(), 0);
}

#[test]
fn a_failed_custom_encoding_appends_nothing() {
    let codec = Codec::custom(Greedy {
        announce: None,
        max: 10,
    });
    let mut out = b"kept".to_vec();
    assert_eq!(
        codec.encode(b"payload", &mut out),
        Err(FrameError::Malformed("never encodes"))
    );
    assert_eq!(out, b"kept");
    assert_eq!(codec.parts(b"x"), Err(FrameError::NoParts));
    assert!(!codec.is_passthrough() && Codec::Raw.is_passthrough());
    assert_eq!(codec, codec.clone());
    assert_ne!(
        codec,
        Codec::custom(Greedy {
            announce: None,
            max: 10
        })
    );
}

#[test]
fn hold_then_set_decoder_reframes_the_rest_of_the_chunk() {
    let lines = Codec::Delimited(DelimitedCodec::lines());
    let length = Codec::Length(LengthCodec::new(2, Endian::Big).unwrap());
    let mut stream = b"HELLO\n".to_vec();
    length.encode(b"one\n", &mut stream).unwrap();
    length.encode(b"two", &mut stream).unwrap();
    // Every split of the stream into two chunks.
    for cut in 0..=stream.len() {
        let mut reader = FrameReader::new(lines.decoder());
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut switch = false;
        for chunk in [&stream[..cut], &stream[cut..]] {
            let mut data = chunk;
            loop {
                if std::mem::take(&mut switch) {
                    reader.set_decoder(length.decoder(), length.max_exact_read());
                }
                reader
                    .feed(data, &mut |ev| {
                        let Event::Frame(f) = ev else {
                            return Next::Continue;
                        };
                        got.push(f.to_vec());
                        if f == b"HELLO" {
                            switch = true;
                            return Next::Hold;
                        }
                        Next::Continue
                    })
                    .unwrap();
                if !switch {
                    break;
                }
                data = &[];
            }
        }
        assert_eq!(got, [&b"HELLO"[..], b"one\n", b"two"], "cut at {cut}");
        assert_eq!((reader.buffered(), reader.held_bytes()), (0, 0));
    }
}

/// One length byte, then the payload.
#[derive(Clone)]
struct Tiny;

impl Decoder for Tiny {
    fn decode(&mut self, buf: &[u8]) -> Result<Decoded, FrameError> {
        let Some(&len) = buf.first() else {
            return Ok(Decoded::NeedMore { frame_len: Some(1) });
        };
        let total = 1 + len as usize;
        if buf.len() < total {
            return Ok(Decoded::NeedMore {
                frame_len: Some(total),
            });
        }
        Ok(Decoded::Frame {
            consumed: total,
            payload: 1..total,
        })
    }
    fn max_frame(&self) -> usize {
        256
    }
}

impl Encoder for Tiny {
    fn encode(&self, payload: &[u8], dst: &mut Vec<u8>) -> Result<(), FrameError> {
        dst.push(payload.len() as u8);
        dst.extend_from_slice(payload);
        Ok(())
    }
}

#[test]
fn a_custom_frame_inside_one_chunk_is_handed_over_without_a_copy() {
    let codec = Codec::custom(Tiny);
    let mut reader = FrameReader::new(codec.decoder());
    let chunk = b"\x03abc\x02de\x04fg";
    let range = chunk.as_ptr_range();
    let mut got = Vec::new();
    reader
        .feed(chunk, &mut |ev| {
            if let Event::Frame(f) = ev {
                assert!(range.contains(&f.as_ptr()), "a slice of the chunk");
                got.push(f.to_vec());
            }
            Next::Continue
        })
        .unwrap();
    assert_eq!(got, [&b"abc"[..], b"de"]);
    assert_eq!(reader.buffered(), 3); // "\x04fg" held for the rest
}
