//! Property tests of the sans-IO codecs: any chunking of a valid frame stream decodes to
//! exactly the frames one-shot decoding gives; encode then decode gives the payloads back.

use proptest::prelude::*;
use ringport::codec::{
    Codec, DelimitedCodec, Endian, Event, FixedCodec, FrameReader, LengthCodec, Next,
};

/// Decode `stream` fed in pieces cut at `cuts` (sorted offsets); the frames, in order.
fn decode_chunked(codec: &Codec, stream: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut reader = FrameReader::new(codec.decoder());
    let mut frames = Vec::new();
    let mut at = 0;
    for &cut in cuts.iter().chain(std::iter::once(&stream.len())) {
        let cut = cut.clamp(at, stream.len());
        reader
            .feed(&stream[at..cut], &mut |ev| {
                if let Event::Frame(f) = ev {
                    frames.push(f.to_vec());
                }
                Next::Continue
            })
            .expect("a valid stream decodes");
        at = cut;
    }
    assert_eq!(reader.buffered(), 0, "nothing left over after whole frames");
    frames
}

fn length_codec() -> impl Strategy<Value = Codec> {
    (
        prop::sample::select(vec![1u8, 2, 4, 8]),
        any::<bool>(),
        any::<bool>(),
        -3i64..4,
    )
        .prop_map(|(width, big, includes, adjustment)| {
            let endian = if big { Endian::Big } else { Endian::Little };
            Codec::Length(
                LengthCodec::new(width, endian)
                    .unwrap()
                    .includes_header(includes)
                    .adjustment(adjustment)
                    .max_payload_len(200),
            )
        })
}

fn delimited_codec() -> impl Strategy<Value = Codec> {
    prop_oneof![
        any::<bool>()
            .prop_map(|crlf| Codec::Delimited(DelimitedCodec::lines().crlf(crlf).max_length(300))),
        prop::collection::vec(any::<u8>(), 1..4)
            .prop_map(|d| Codec::Delimited(DelimitedCodec::new(&d).unwrap().max_length(300))),
    ]
}

fn any_codec() -> impl Strategy<Value = Codec> {
    prop_oneof![
        length_codec(),
        delimited_codec(),
        (1usize..40).prop_map(|n| Codec::Fixed(FixedCodec::new(n).unwrap())),
    ]
}

/// Payloads the codec can frame (fixed size; no delimiter inside; fits the field).
fn frameable(codec: &Codec, raw: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    raw.into_iter()
        .map(|mut p| {
            if let Codec::Fixed(f) = codec {
                p.resize(f.size(), 7);
            }
            p
        })
        .filter(|p| codec.parts(p).is_ok())
        .collect()
}

fn encode_all(codec: &Codec, payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut stream = Vec::new();
    for p in payloads {
        codec.encode(p, &mut stream).unwrap();
    }
    stream
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn any_chunking_gives_the_one_shot_frames(
        codec in any_codec(),
        raw in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..120), 0..12),
        mut cuts in prop::collection::vec(0usize..3000, 0..40),
    ) {
        let payloads = frameable(&codec, raw);
        let stream = encode_all(&codec, &payloads);
        let one_shot = decode_chunked(&codec, &stream, &[]);
        cuts.sort_unstable();
        prop_assert_eq!(&decode_chunked(&codec, &stream, &cuts), &one_shot);
        // Byte by byte, too.
        let every: Vec<usize> = (0..stream.len()).collect();
        prop_assert_eq!(&decode_chunked(&codec, &stream, &every), &one_shot);
    }

    #[test]
    fn encode_then_decode_round_trips(
        codec in any_codec(),
        raw in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..120), 0..12),
    ) {
        let payloads = frameable(&codec, raw);
        let stream = encode_all(&codec, &payloads);
        prop_assert_eq!(decode_chunked(&codec, &stream, &[]), payloads);
    }

    #[test]
    fn exact_reads_cut_the_stream_where_asked(
        data in prop::collection::vec(any::<u8>(), 1..400),
        lens in prop::collection::vec(1usize..50, 1..10),
        mut cuts in prop::collection::vec(0usize..400, 0..20),
    ) {
        cuts.sort_unstable();
        let mut reader = FrameReader::new(Codec::Raw.decoder());
        reader.read_exact(lens[0], false).unwrap();
        let mut got = Vec::new();
        let mut i = 0;
        let mut at = 0;
        for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
            let cut = cut.clamp(at, data.len());
            reader.feed(&data[at..cut], &mut |ev| {
                let Event::Frame(f) = ev else { return Next::Continue };
                got.push(f.to_vec());
                i += 1;
                match lens.get(i) {
                    Some(&len) if got.len() <= lens.len() => Next::ReadExact { len, progress: false },
                    _ => Next::Continue,
                }
            }).unwrap();
            at = cut;
        }
        // The exact reads come out at exactly their lengths, in order, from the stream's start.
        let mut off = 0;
        for (k, f) in got.iter().enumerate().take(lens.len()) {
            prop_assert_eq!(f.len(), lens[k]);
            prop_assert_eq!(&f[..], &data[off..off + lens[k]]);
            off += lens[k];
        }
        let joined: Vec<u8> = got.concat();
        prop_assert_eq!(&joined[..], &data[..joined.len()]);
    }
}
