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
