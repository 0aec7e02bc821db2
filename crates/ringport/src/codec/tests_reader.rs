//! `FrameReader` unit tests: memory that follows what arrived, and deliveries that never
//! wait for a receive once their bytes are held.

use super::*;

const MIB: usize = 1024 * 1024;
const KIB4: usize = 4096;

/// Feed `data`, collecting the frames (as text where that reads better in a failure).
fn feed(reader: &mut FrameReader<FrameDecoder>, data: &[u8]) -> Result<Vec<Vec<u8>>, FrameError> {
    let mut out = Vec::new();
    reader.feed(data, &mut |ev| {
        if let Event::Frame(f) = ev {
            out.push(f.to_vec());
        }
        Next::Continue
    })?;
    Ok(out)
}

fn length4(max: usize) -> Codec {
    Codec::Length(
        LengthCodec::new(4, Endian::Big)
            .unwrap()
            .max_payload_len(max),
    )
}

#[test]
fn a_header_announcing_8_mib_holds_only_what_arrived() {
    let codec = length4(16 * MIB);
    let mut reader = FrameReader::new(codec.decoder());
    let mut first = (8 * MIB as u32).to_be_bytes().to_vec();
    first.extend(vec![1u8; KIB4]);
    assert!(feed(&mut reader, &first).unwrap().is_empty());
    assert!(
        reader.held_bytes() <= 2 * KIB4 + 64,
        "a header of 8 MiB and 4 KiB of payload: {} bytes held",
        reader.held_bytes()
    );
    // Memory grows with what arrives, never far ahead of it.
    let mut received = first.len();
    let mut frames = Vec::new();
    while received < 4 + 8 * MIB {
        let n = KIB4.min(4 + 8 * MIB - received);
        frames.extend(feed(&mut reader, &vec![1u8; n]).unwrap());
        received += n;
        if frames.is_empty() {
            assert!(reader.buffered() == received);
            assert!(
                reader.held_bytes() <= 2 * received + 64,
                "{} held after {received} bytes",
                reader.held_bytes()
            );
        }
    }
    assert_eq!(frames.len(), 1);
    assert!(frames[0].len() == 8 * MIB && frames[0].iter().all(|&b| b == 1));
    assert_eq!(reader.held_bytes(), 0, "freed after delivery");
}

#[test]
fn a_fixed_codec_of_the_largest_size_holds_only_what_arrived() {
    let codec = Codec::Fixed(FixedCodec::new(usize::MAX).unwrap());
    let mut reader = FrameReader::new(codec.decoder());
    assert!(feed(&mut reader, &[7; 100]).unwrap().is_empty());
    assert!(feed(&mut reader, &[7; 100]).unwrap().is_empty());
    assert_eq!(reader.buffered(), 200);
    assert!(reader.held_bytes() <= 400, "{}", reader.held_bytes());
}

#[test]
fn an_exact_read_is_satisfied_from_buffered_bytes_without_a_receive() {
    let codec = Codec::Delimited(DelimitedCodec::lines());
    let mut reader = FrameReader::new(codec.decoder());
    assert!(feed(&mut reader, b"abcdef").unwrap().is_empty());
    // Asked from outside `feed` (an on_timer, say): an empty feed delivers it.
    reader.read_exact(4, false).unwrap();
    assert_eq!(feed(&mut reader, &[]).unwrap(), vec![b"abcd".to_vec()]);
    assert_eq!(reader.buffered(), 2);
    assert_eq!(feed(&mut reader, b"g\n").unwrap(), vec![b"efg".to_vec()]);
    assert_eq!(reader.held_bytes(), 0);
}

#[test]
fn frames_held_behind_an_exact_read_come_out_with_it() {
    let codec = Codec::Delimited(DelimitedCodec::lines());
    let mut reader = FrameReader::new(codec.decoder());
    reader.read_exact(10, false).unwrap();
    assert!(feed(&mut reader, b"x\ny\nz").unwrap().is_empty());
    // The handler shortens the read: the exact frame, then the lines behind it, at once.
    reader.read_exact(1, false).unwrap();
    assert_eq!(
        feed(&mut reader, &[]).unwrap(),
        vec![b"x".to_vec(), b"".to_vec(), b"y".to_vec()]
    );
    assert_eq!(reader.buffered(), 1);
    // The same from inside a callback, the held bytes then holding whole frames.
    let mut reader = FrameReader::new(codec.decoder());
    reader.read_exact(8, false).unwrap();
    assert!(feed(&mut reader, b"01234").unwrap().is_empty());
    let mut got = Vec::new();
    reader
        .feed(b"567a\nb\n", &mut |ev| {
            let Event::Frame(f) = ev else {
                return Next::Continue;
            };
            got.push(f.to_vec());
            if got.len() == 1 {
                Next::ReadExact {
                    len: 1,
                    progress: false,
                }
            } else {
                Next::Continue
            }
        })
        .unwrap();
    let want: Vec<&[u8]> = vec![b"01234567", b"a", b"", b"b"];
    assert_eq!(got, want);
    assert_eq!(reader.buffered(), 0);
}

#[test]
fn a_short_exact_read_over_held_bytes_delivers_the_rest_in_the_same_feed() {
    // Before: the bytes behind a short exact read waited for the next receive.
    let codec = Codec::Fixed(FixedCodec::new(2).unwrap());
    let mut reader = FrameReader::with_exact_max(codec.decoder(), 100);
    reader.read_exact(7, false).unwrap();
    assert!(feed(&mut reader, b"abcde").unwrap().is_empty());
    reader.read_exact(1, false).unwrap();
    let got = feed(&mut reader, b"f").unwrap();
    let want: Vec<&[u8]> = vec![b"a", b"bc", b"de"];
    assert_eq!(got, want);
    assert_eq!(reader.buffered(), 1);
}

#[test]
fn an_empty_feed_with_nothing_buffered_is_a_no_op() {
    for codec in [
        Codec::Raw,
        length4(100),
        Codec::Delimited(DelimitedCodec::lines()),
        Codec::Fixed(FixedCodec::new(3).unwrap()),
    ] {
        let mut reader = FrameReader::new(codec.decoder());
        let mut calls = 0;
        reader
            .feed(&[], &mut |_| {
                calls += 1;
                Next::Continue
            })
            .unwrap();
        assert_eq!((calls, reader.buffered(), reader.held_bytes()), (0, 0, 0));
        // A partial frame held: an empty feed delivers nothing and keeps it.
        if codec != Codec::Raw {
            assert!(feed(&mut reader, &[0, 0]).unwrap().is_empty());
            assert!(feed(&mut reader, &[]).unwrap().is_empty());
            assert_eq!(reader.buffered(), 2, "{codec}");
        }
    }
}

#[test]
fn after_an_error_on_held_bytes_nothing_is_held() {
    // An error found in held bytes (a short exact read, then a line too long behind it)
    // used to leave the delivered offset behind: `buffered` wrapped to usize::MAX.
    let codec = Codec::Delimited(DelimitedCodec::lines().max_length(2));
    let mut reader = FrameReader::with_exact_max(codec.decoder(), 100);
    reader.read_exact(10, false).unwrap();
    assert!(feed(&mut reader, b"abcdefg").unwrap().is_empty());
    reader.read_exact(1, false).unwrap();
    assert_eq!(
        feed(&mut reader, &[]),
        Err(FrameError::LineTooLong { max: 2 })
    );
    assert_eq!((reader.buffered(), reader.held_bytes()), (0, 0));
}
