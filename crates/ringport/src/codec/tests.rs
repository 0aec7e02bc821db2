use super::*;

fn frames(codec: &Codec, chunks: &[&[u8]]) -> Result<Vec<Vec<u8>>, FrameError> {
    let mut reader = FrameReader::new(codec.decoder());
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
fn cli_spellings_parse_and_print_back() {
    for s in [
        "raw", "line", "length:1", "length:2", "length:4", "length:8", "fixed:16",
    ] {
        let codec: Codec = s.parse().unwrap();
        assert_eq!(codec.to_string(), s);
    }
    for bad in [
        "length:3", "length", "line:2", "fixed:0", "nope", "length:x",
    ] {
        assert!(bad.parse::<Codec>().is_err(), "{bad} parsed");
    }
}

#[test]
fn length_fields_encode_in_the_asked_byte_order_and_meaning() {
    let be = Codec::Length(LengthCodec::new(2, Endian::Big).unwrap());
    let mut v = Vec::new();
    be.encode(b"abc", &mut v).unwrap();
    assert_eq!(v, b"\x00\x03abc");
    let le = Codec::Length(
        LengthCodec::new(4, Endian::Little)
            .unwrap()
            .includes_header(true),
    );
    v.clear();
    le.encode(b"abc", &mut v).unwrap();
    assert_eq!(v, b"\x07\x00\x00\x00abc");
    // The field holds len - adjustment: with adjustment 2 a 3-byte payload says 1.
    let adj = Codec::Length(LengthCodec::new(1, Endian::Big).unwrap().adjustment(2));
    v.clear();
    adj.encode(b"abc", &mut v).unwrap();
    assert_eq!(v, b"\x01abc");
    assert_eq!(frames(&adj, &[&v]).unwrap(), vec![b"abc".to_vec()]);
}

#[test]
fn lines_accept_lf_and_crlf_and_strip_them() {
    let lines = Codec::Delimited(DelimitedCodec::lines());
    let got = frames(&lines, &[b"one\r\ntw", b"o\n\nthree\r", b"\n"]).unwrap();
    assert_eq!(
        got,
        vec![b"one".to_vec(), b"two".to_vec(), vec![], b"three".to_vec()]
    );
    let crlf = Codec::Delimited(DelimitedCodec::lines().crlf(true));
    let mut v = Vec::new();
    crlf.encode(b"x", &mut v).unwrap();
    assert_eq!(v, b"x\r\n");
}

#[test]
fn a_payload_that_would_end_early_is_refused_by_the_encoder() {
    // "xa" + "aa" would decode as "x" then garbage: the encoder must refuse it.
    let aa = Codec::Delimited(DelimitedCodec::new(b"aa").unwrap());
    assert_eq!(
        aa.encode(b"xa", &mut Vec::new()),
        Err(FrameError::DelimiterInPayload)
    );
    let mut v = Vec::new();
    aa.encode(b"xb", &mut v).unwrap();
    assert_eq!(frames(&aa, &[&v]).unwrap(), vec![b"xb".to_vec()]);
    let lines = Codec::Delimited(DelimitedCodec::lines());
    assert_eq!(
        lines.encode(b"cr\r", &mut Vec::new()),
        Err(FrameError::DelimiterInPayload)
    );
}

#[test]
fn a_line_one_byte_over_the_maximum_is_refused_even_with_its_delimiter() {
    let lines = Codec::Delimited(DelimitedCodec::lines().max_length(4));
    assert_eq!(
        frames(&lines, &[b"abcd\n"]).unwrap(),
        vec![b"abcd".to_vec()]
    );
    assert_eq!(
        frames(&lines, &[b"abcd\r\n"]).unwrap(),
        vec![b"abcd".to_vec()]
    );
    assert_eq!(
        frames(&lines, &[b"abcde\n"]),
        Err(FrameError::LineTooLong { max: 4 })
    );
    assert_eq!(
        frames(&lines, &[b"abc", b"de", b"f"]),
        Err(FrameError::LineTooLong { max: 4 })
    );
}

#[test]
fn fixed_frames_and_raw_chunks() {
    let fixed = Codec::Fixed(FixedCodec::new(3).unwrap());
    assert_eq!(
        frames(&fixed, &[b"ab", b"cdefg", b"h"]).unwrap(),
        vec![b"abc".to_vec(), b"def".to_vec()]
    );
    assert_eq!(
        fixed.encode(b"ab", &mut Vec::new()),
        Err(FrameError::WrongSize { len: 2, size: 3 })
    );
    assert_eq!(
        frames(&Codec::Raw, &[b"ab", b"c"]).unwrap(),
        vec![b"ab".to_vec(), b"c".to_vec()]
    );
}

#[test]
fn exact_reads_report_progress_and_then_the_codec_resumes() {
    let codec = Codec::Length(LengthCodec::new(1, Endian::Big).unwrap());
    let mut reader = FrameReader::new(codec.decoder());
    reader.read_exact(6, true).unwrap();
    let mut events = Vec::new();
    for chunk in [&b"ab"[..], b"cd", b"ef\x02hi"] {
        reader
            .feed(chunk, &mut |ev| {
                events.push(match ev {
                    Event::Frame(f) => format!("frame {}", String::from_utf8_lossy(f)),
                    Event::Progress { received, total } => format!("{received}/{total}"),
                });
                Next::Continue
            })
            .unwrap();
    }
    assert_eq!(events, ["2/6", "4/6", "6/6", "frame abcdef", "frame hi"]);
    assert_eq!(
        reader.read_exact(0, false),
        Err(FrameError::WrongSize { len: 0, size: 1 })
    );
}

#[test]
fn eight_ff_bytes_against_the_largest_maximum_are_too_long_not_a_panic() {
    // The reproduced crash: `--codec length:8 --max-frame 18446744073709551615`.
    let codec: Codec = "length:8".parse().unwrap();
    let codec = codec.with_max_frame(usize::MAX);
    for chunks in [&[&[0xff; 8][..], b"rest"][..], &[&[0xff; 5], &[0xff; 3]]] {
        let err = frames(&codec, chunks).unwrap_err();
        assert!(
            matches!(err, FrameError::TooLong { len: u64::MAX, .. }),
            "{err:?}"
        );
    }
}

#[test]
fn an_adjustment_never_wraps_a_length() {
    let le = |adjustment: i64, includes: bool| {
        Codec::Length(
            LengthCodec::new(8, Endian::Little)
                .unwrap()
                .includes_header(includes)
                .adjustment(adjustment)
                .max_payload_len(usize::MAX),
        )
    };
    // u64::MAX + 5 used to wrap to 4: a 4-byte frame out of a hostile header.
    assert!(matches!(
        frames(&le(5, false), &[&[0xff; 8], b"abcd"]),
        Err(FrameError::TooLong { len: u64::MAX, .. })
    ));
    assert!(matches!(
        frames(&le(i64::MAX, true), &[&[0xff; 8], b"abcd"]),
        Err(FrameError::TooLong { len: u64::MAX, .. })
    ));
    // A negative payload length is its own typed error, whatever the header counting.
    assert_eq!(
        frames(&le(-3, false), &[&[2, 0, 0, 0, 0, 0, 0, 0]]),
        Err(FrameError::LengthUnderflow {
            value: 2,
            adjustment: -3
        })
    );
    assert_eq!(
        frames(&le(i64::MIN, true), &[&[0; 8]]),
        Err(FrameError::LengthBelowHeader {
            value: i64::MIN,
            header: 8
        })
    );
    // The extremes encode and decode back where the field can hold them.
    for adjustment in [i64::MIN, -1, 0, 1, i64::MAX] {
        for includes in [false, true] {
            let codec = le(adjustment, includes);
            let mut wire = Vec::new();
            match codec.encode(b"xyz", &mut wire) {
                Ok(()) => assert_eq!(frames(&codec, &[&wire]).unwrap(), vec![b"xyz".to_vec()]),
                Err(e) => assert!(matches!(e, FrameError::TooLongForHeader { .. }), "{e}"),
            }
        }
    }
}

#[test]
fn configurations_are_checked_not_wrapped() {
    // 260 as u8 is 4: this used to parse as length:4.
    assert!("length:260".parse::<Codec>().is_err());
    assert!("fixed:99999999999999999999999".parse::<Codec>().is_err());
    // Exact reads fit the connection's 32-bit exact-read length, whatever the maximum.
    for codec in [
        Codec::Length(LengthCodec::new(8, Endian::Big).unwrap()).with_max_frame(usize::MAX),
        Codec::Delimited(DelimitedCodec::lines().max_length(usize::MAX)),
        Codec::Fixed(FixedCodec::new(usize::MAX).unwrap()),
    ] {
        assert_eq!(codec.max_exact_read(), MAX_EXACT_READ, "{codec}");
    }
    assert_eq!(Codec::Raw.max_exact_read(), DEFAULT_MAX_FRAME);
    // A zero maximum frames only empty payloads.
    let zero = Codec::Length(LengthCodec::new(2, Endian::Big).unwrap().max_payload_len(0));
    let mut wire = Vec::new();
    zero.encode(b"", &mut wire).unwrap();
    assert_eq!(frames(&zero, &[&wire]).unwrap(), vec![Vec::<u8>::new()]);
    assert_eq!(
        zero.encode(b"a", &mut wire),
        Err(FrameError::TooLong { len: 1, max: 0 })
    );
}
