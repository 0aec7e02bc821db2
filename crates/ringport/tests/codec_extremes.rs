//! Property tests of every codec at its extremes: every length width and byte order with
//! the largest maxima, every adjustment sign up to `i64::MIN`/`i64::MAX`, header counted
//! or not, length-field offsets and bytes to strip (small and up to `usize::MAX`),
//! delimiters and fixed sizes up to `usize::MAX`; random and adversarial headers,
//! random chunkings, exact reads asked from callbacks and from outside `feed`. The reader
//! must never panic and must give exactly what a plain reference model gives: the same
//! frames, the same typed error (or none), the same count of discarded frames. Where the
//! encoder accepts a payload, decoding gives it back.

use proptest::prelude::*;
use ringport::codec::{
    Codec, DelimitedCodec, Endian, Event, FixedCodec, FrameError, FrameReader, LengthCodec, Next,
};
use std::ops::Range;

/// A codec's settings, kept by the test so the model can read them.
#[derive(Debug, Clone)]
enum Spec {
    Raw,
    Length {
        width: u8,
        big: bool,
        includes: bool,
        adjustment: i64,
        max: usize,
        discard: bool,
        offset: usize,
        strip: Option<usize>,
    },
    Delimited {
        delim: Vec<u8>,
        lines: bool,
        crlf: bool,
        max: usize,
        discard: bool,
    },
    Fixed(usize),
}

impl Spec {
    fn codec(&self) -> Codec {
        match self {
            Spec::Raw => Codec::Raw,
            Spec::Length {
                width,
                big,
                includes,
                adjustment,
                max,
                discard,
                offset,
                strip,
            } => {
                let endian = if *big { Endian::Big } else { Endian::Little };
                let mut c = LengthCodec::new(*width, endian)
                    .unwrap()
                    .includes_header(*includes)
                    .adjustment(*adjustment)
                    .max_payload_len(*max)
                    .discard_oversized(*discard)
                    .length_field_offset(*offset);
                if let Some(strip) = strip {
                    c = c.initial_bytes_to_strip(*strip);
                }
                Codec::Length(c)
            }
            Spec::Delimited {
                delim,
                lines,
                crlf,
                max,
                discard,
            } => {
                let d = if *lines {
                    DelimitedCodec::lines().crlf(*crlf)
                } else {
                    DelimitedCodec::new(delim).unwrap()
                };
                Codec::Delimited(d.max_length(*max).discard_oversized(*discard))
            }
            Spec::Fixed(n) => Codec::Fixed(FixedCodec::new(*n).unwrap()),
        }
    }
}

/// What the model makes of the unconsumed input.
enum Step {
    Frame {
        consumed: usize,
        payload: Range<usize>,
    },
    Incomplete,
    Skip {
        len: usize,
        counted: bool,
    },
    Error(FrameError),
}

/// The reference: all received bytes in one buffer, decoded from the spec's definition
/// with `i128` arithmetic, after every received chunk.
struct Model {
    spec: Spec,
    buf: Vec<u8>,
    at: usize,
    exact: Option<usize>,
    skip_left: u128,
    discarding: bool,
    frames: Vec<Vec<u8>>,
    discarded: u64,
}

impl Model {
    fn new(spec: &Spec) -> Model {
        Model {
            spec: spec.clone(),
            buf: Vec::new(),
            at: 0,
            exact: None,
            skip_left: 0,
            discarding: false,
            frames: Vec::new(),
            discarded: 0,
        }
    }

    /// Asked from outside: replaces any exact read; the decoder forgets its progress.
    fn read_exact(&mut self, len: usize) {
        self.exact = Some(len);
        self.skip_left = 0;
        self.discarding = false;
    }

    /// Decode all that can be with the bytes in; `plan` says what to ask after frame k.
    fn run(&mut self, plan: &dyn Fn(usize) -> Option<usize>) -> Result<(), FrameError> {
        loop {
            let rest = &self.buf[self.at..];
            let step = match self.exact {
                Some(n) if rest.len() >= n => Step::Frame {
                    consumed: n,
                    payload: 0..n,
                },
                Some(_) => Step::Incomplete,
                None => self.step(),
            };
            match step {
                Step::Incomplete => return Ok(()),
                Step::Error(e) => return Err(e),
                Step::Skip { len, counted } => {
                    self.discarded += u64::from(counted);
                    self.at += len;
                }
                Step::Frame { consumed, payload } => {
                    let rest = &self.buf[self.at..];
                    self.frames.push(rest[payload].to_vec());
                    self.at += consumed;
                    self.exact = plan(self.frames.len() - 1);
                }
            }
        }
    }

    fn step(&mut self) -> Step {
        let rest = &self.buf[self.at..];
        if self.skip_left > 0 {
            if rest.is_empty() {
                return Step::Incomplete;
            }
            let len = self.skip_left.min(rest.len() as u128) as usize;
            self.skip_left -= len as u128;
            return Step::Skip {
                len,
                counted: false,
            };
        }
        match &self.spec {
            Spec::Raw if rest.is_empty() => Step::Incomplete,
            Spec::Raw => Step::Frame {
                consumed: rest.len(),
                payload: 0..rest.len(),
            },
            Spec::Fixed(n) if rest.len() >= *n => Step::Frame {
                consumed: *n,
                payload: 0..*n,
            },
            Spec::Fixed(_) => Step::Incomplete,
            Spec::Length { .. } => self.length_step(),
            Spec::Delimited { .. } => self.delimited_step(),
        }
    }

    fn length_step(&mut self) -> Step {
        let Spec::Length {
            width,
            big,
            includes,
            adjustment,
            max,
            discard,
            offset,
            strip,
        } = self.spec.clone()
        else {
            unreachable!()
        };
        let rest = &self.buf[self.at..];
        let offset = offset.min(usize::MAX - 8);
        let w = offset + width as usize;
        if rest.len() < w {
            return Step::Incomplete;
        }
        let mut field = rest[offset..w].to_vec();
        if !big {
            field.reverse();
        }
        let value = field.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b));
        let counted = i128::from(value) + i128::from(adjustment);
        let len = if includes {
            if counted < w as i128 {
                let value = counted.max(i128::from(i64::MIN)) as i64;
                return Step::Error(FrameError::LengthBelowHeader {
                    value,
                    header: w as u64,
                });
            }
            counted - w as i128
        } else if counted < 0 {
            return Step::Error(FrameError::LengthUnderflow { value, adjustment });
        } else {
            counted
        };
        let limit = max.min(usize::MAX - w);
        if len > limit as i128 {
            if !discard {
                let len = len.min(i128::from(u64::MAX)) as u64;
                return Step::Error(FrameError::TooLong {
                    len,
                    max: limit as u64,
                });
            }
            self.skip_left = (len + w as i128) as u128;
            let len = self.skip_left.min(rest.len() as u128) as usize;
            self.skip_left -= len as u128;
            return Step::Skip { len, counted: true };
        }
        let total = w + len as usize;
        let strip = strip.unwrap_or(w);
        if strip > total {
            return Step::Error(FrameError::StripBeyondFrame {
                strip: strip as u64,
                frame: total as u64,
            });
        }
        if rest.len() < total {
            return Step::Incomplete;
        }
        Step::Frame {
            consumed: total,
            payload: strip..total,
        }
    }

    fn delimited_step(&mut self) -> Step {
        let Spec::Delimited {
            delim,
            lines,
            max,
            discard,
            ..
        } = self.spec.clone()
        else {
            unreachable!()
        };
        let d: &[u8] = if lines { b"\n" } else { &delim };
        let rest = &self.buf[self.at..];
        let keep = d.len() - 1;
        let first = rest.windows(d.len()).position(|x| x == d);
        if self.discarding {
            // Through the first delimiter; short of one, all but what may begin it.
            if let Some(i) = first {
                self.discarding = false;
                return Step::Skip {
                    len: i + d.len(),
                    counted: false,
                };
            }
            return match rest.len().saturating_sub(keep) {
                0 => Step::Incomplete,
                len => Step::Skip {
                    len,
                    counted: false,
                },
            };
        }
        let max_frame = max.saturating_add(d.len() + usize::from(lines));
        match first.filter(|i| i + d.len() <= max_frame) {
            Some(i) => {
                let mut end = i;
                if lines && end > 0 && rest[end - 1] == b'\r' {
                    end -= 1;
                }
                if end <= max {
                    Step::Frame {
                        consumed: i + d.len(),
                        payload: 0..end,
                    }
                } else if discard {
                    Step::Skip {
                        len: i + d.len(),
                        counted: true,
                    }
                } else {
                    Step::Error(FrameError::LineTooLong { max: max as u64 })
                }
            }
            None if rest.len() < max_frame => Step::Incomplete,
            None if discard => {
                self.discarding = true;
                Step::Skip {
                    len: max_frame - keep,
                    counted: true,
                }
            }
            None => Step::Error(FrameError::LineTooLong { max: max as u64 }),
        }
    }
}

/// The exact read asked after frame `k`, by a plan of bytes (odd: ask one).
fn planned(plan: &[u8], k: usize) -> Option<usize> {
    let p = *plan.get(k % plan.len().max(1))?;
    (p & 1 == 1).then_some(usize::from(p >> 1) % 48 + 1)
}

/// What the reader gave: frames, then the error that stopped it, if one did.
type Outcome = (Vec<Vec<u8>>, Option<FrameError>, u64);

/// Feed `stream` cut at `cuts`; before chunk `i`, `outside[i]` (if any) is an exact read
/// asked from outside `feed`, followed by an empty feed. The model runs alongside.
fn run_both(
    spec: &Spec,
    stream: &[u8],
    cuts: &[usize],
    plan: &[u8],
    outside: &[Option<usize>],
) -> (Outcome, Outcome) {
    let codec = spec.codec();
    let mut reader = FrameReader::with_exact_max(codec.decoder(), 1 << 20);
    let mut model = Model::new(spec);
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut err = None;
    let mut model_err = None;
    let mut at = 0;
    let ends = cuts.iter().copied().chain(std::iter::once(stream.len()));
    for (i, cut) in ends.enumerate() {
        let cut = cut.clamp(at, stream.len());
        let mut on = |ev: Event<'_>| {
            let Event::Frame(f) = ev else {
                return Next::Continue;
            };
            frames.push(f.to_vec());
            match planned(plan, frames.len() - 1) {
                Some(len) => Next::ReadExact {
                    len,
                    progress: false,
                },
                None => Next::Continue,
            }
        };
        let mut result = Ok(());
        if let Some(len) = outside.get(i).copied().flatten() {
            reader.read_exact(len, false).unwrap();
            result = reader.feed(&[], &mut on);
            model.read_exact(len);
            model_err = model.run(&|k| planned(plan, k)).err();
        }
        if result.is_ok() && model_err.is_none() {
            result = reader.feed(&stream[at..cut], &mut on);
            model.buf.extend_from_slice(&stream[at..cut]);
            model_err = model.run(&|k| planned(plan, k)).err();
        }
        if let Err(e) = result {
            // Unframeable: nothing is held any more.
            assert_eq!((reader.buffered(), reader.held_bytes()), (0, 0));
            err = Some(e);
            break;
        }
        assert!(reader.held_bytes() <= 2 * reader.buffered() + 64);
        if model_err.is_some() {
            break;
        }
        at = cut;
    }
    let got = (frames, err, reader.discarded_frames());
    (got, (model.frames, model_err, model.discarded))
}

fn max_choice(small: Range<usize>) -> impl Strategy<Value = usize> {
    prop_oneof![
        small,
        prop::sample::select(vec![
            0,
            1,
            255,
            65_535,
            u32::MAX as usize,
            usize::MAX - 9,
            usize::MAX - 8,
            usize::MAX - 1,
            usize::MAX,
        ]),
    ]
}

fn adjustment() -> impl Strategy<Value = i64> {
    prop_oneof![
        -10i64..10,
        prop::sample::select(vec![
            i64::MIN,
            i64::MIN + 1,
            -256,
            256,
            i64::MAX - 1,
            i64::MAX
        ]),
        any::<i64>(),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        Just(Spec::Raw),
        (
            prop::sample::select(vec![1u8, 2, 4, 8]),
            any::<bool>(),
            any::<bool>(),
            adjustment(),
            max_choice(0..300),
            any::<bool>(),
            prop_oneof![
                4 => Just(0usize),
                4 => 1usize..4,
                1 => prop::sample::select(vec![usize::MAX - 9, usize::MAX - 8, usize::MAX]),
            ],
            prop_oneof![
                4 => Just(None),
                4 => (0usize..12).prop_map(Some),
                1 => Just(Some(usize::MAX)),
            ],
        )
            .prop_map(
                |(width, big, includes, adjustment, max, discard, offset, strip)| Spec::Length {
                    width,
                    big,
                    includes,
                    adjustment,
                    max,
                    discard,
                    offset,
                    strip,
                }
            ),
        (
            prop::collection::vec(any::<u8>(), 1..4),
            any::<bool>(),
            any::<bool>(),
            max_choice(0..100),
            any::<bool>(),
        )
            .prop_map(|(delim, lines, crlf, max, discard)| Spec::Delimited {
                delim,
                lines,
                crlf,
                max,
                discard
            }),
        prop_oneof![1usize..40, Just(usize::MAX)].prop_map(Spec::Fixed),
    ]
}

/// A length field of `width` bytes holding `value` (truncated to the width), after the
/// codec's offset bytes (a few of them only, for a huge offset).
fn field(spec: &Spec, value: u64) -> Vec<u8> {
    let Spec::Length {
        width, big, offset, ..
    } = spec
    else {
        return Vec::new();
    };
    let w = *width as usize;
    let mut out = vec![0xA5; (*offset).min(16)];
    if *big {
        out.extend_from_slice(&value.to_be_bytes()[8 - w..]);
    } else {
        out.extend_from_slice(&value.to_le_bytes()[..w]);
    }
    out
}

/// One piece of a hostile stream: a valid frame, an adversarial header, or noise.
fn piece(spec: &Spec, kind: u8, arg: u64, bytes: &[u8]) -> Vec<u8> {
    let codec = spec.codec();
    let mut out = Vec::new();
    match kind % 6 {
        0 | 1 => {
            let _ = codec.encode(bytes, &mut out);
        }
        2 => out = field(spec, u64::MAX),
        3 => out = field(spec, 0),
        4 => {
            // Just over, at and under the maximum, as the field counts it.
            if let Spec::Length {
                width,
                includes,
                adjustment,
                max,
                offset,
                ..
            } = spec
            {
                let hdr = (*offset).min(usize::MAX - 8) as i128 + i128::from(*width);
                let header = if *includes { hdr } else { 0 };
                let v = *max as i128 + header - i128::from(*adjustment) + (arg % 3) as i128 - 1;
                out = field(spec, v.clamp(0, i128::from(u64::MAX)) as u64);
            }
        }
        _ => out = field(spec, arg),
    }
    out.extend_from_slice(bytes);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn hostile_streams_decode_as_the_model_says(
        spec in spec(),
        pieces in prop::collection::vec(
            (any::<u8>(), any::<u64>(), prop::collection::vec(any::<u8>(), 0..40)), 0..8),
        mut cuts in prop::collection::vec(0usize..400, 0..12),
        plan in prop::collection::vec(any::<u8>(), 0..4),
        outside in prop::collection::vec(prop::option::weighted(0.2, 1usize..40), 0..12),
    ) {
        let stream: Vec<u8> = pieces
            .iter()
            .flat_map(|(k, a, b)| piece(&spec, *k, *a, b))
            .collect();
        cuts.sort_unstable();
        let (got, want) = run_both(&spec, &stream, &cuts, &plan, &outside);
        if let Spec::Raw = spec {
            // Raw cuts where the chunks fall; only the bytes and the exact reads are fixed.
            prop_assert_eq!(got.0.concat(), want.0.concat());
            prop_assert_eq!(got.1, None);
        } else {
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn what_encodes_decodes_back_at_the_extremes(
        spec in spec(),
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..60), 0..8),
        mut cuts in prop::collection::vec(0usize..500, 0..12),
    ) {
        let codec = spec.codec();
        let mut wire = Vec::new();
        let mut sent = Vec::new();
        for p in payloads {
            let mut p = p;
            if let Spec::Fixed(n) = spec {
                if n < 100 { p.resize(n, 3) }
            }
            let before = wire.len();
            match codec.encode(&p, &mut wire) {
                // What a length codec delivers starts `bytes_to_strip` into the frame.
                Ok(()) => match &codec {
                    Codec::Length(c) => {
                        let strip = c.bytes_to_strip();
                        if wire.len() - before < strip {
                            wire.truncate(before); // would not decode: not sent
                        } else {
                            sent.push(wire[before + strip..].to_vec());
                        }
                    }
                    _ => sent.push(p),
                },
                Err(_) => prop_assert_eq!(wire.len(), before, "nothing appended on error"),
            }
        }
        cuts.sort_unstable();
        let (got, _) = run_both(&spec, &wire, &cuts, &[], &[]);
        prop_assert_eq!(got.1, None);
        if let Spec::Raw = spec {
            prop_assert_eq!(got.0.concat(), sent.concat());
        } else {
            prop_assert_eq!(got.0, sent);
        }
    }
}
