//! Sans-IO framing: decoders that turn a byte stream into frames and encoders that do the
//! reverse. Nothing here touches a socket or a clock, so every decoder can be fed any
//! chunking of any input in a plain unit test (or a fuzzer).
//!
//! A [`Decoder`] looks at the unconsumed input and answers with a [`Decoded`]: a whole
//! frame, "need more", or bytes to skip. [`FrameReader`] drives a decoder over received
//! chunks: a frame that lies inside one chunk is handed out as a slice of it (no copy);
//! only a frame that spans chunks is assembled, in a buffer that grows with the bytes
//! received (never with the length a header announces) and is freed once it is
//! delivered. Every decoder has a maximum frame length, checked before any allocation.
//! No input makes a decoder panic or wrap a length: length arithmetic is exact for any
//! width, adjustment and maximum, and what cannot be framed is a typed [`FrameError`].
//!
//! [`Codec`] names a frame format: one of the built-in ones, or a user's own
//! ([`Codec::custom`]: any type implementing [`Decoder`] and [`Encoder`]). The server,
//! listener and client builders take one (`Server::builder().codec(..)`),
//! [`crate::Conn::send_frame`] encodes with it, and [`crate::Conn::set_codec`] switches a
//! connection to another mid-stream. The built-in formats are ordinary implementations of
//! the same traits; the engine asks a codec only what any codec can answer.
#![forbid(unsafe_code)]

mod custom;
mod delimited;
mod fixed;
mod length;
mod reader;

pub use custom::{CustomCodec, CustomDecoder};
pub use delimited::DelimitedCodec;
pub use fixed::{FixedCodec, RawDecoder};
pub use length::{Endian, LengthCodec};
pub use reader::{Event, FrameReader, Next};

use std::ops::Range;

/// Default maximum payload of a length-prefixed frame: 8 MiB.
pub const DEFAULT_MAX_FRAME: usize = 8 * 1024 * 1024;
/// Default maximum length of a line or delimited frame: 64 KiB.
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;
/// The longest exact read (`Conn::read_exact`) whatever the codec: `u32::MAX` bytes (a
/// connection stores the length of its pending exact read in 32 bits).
pub const MAX_EXACT_READ: usize = u32::MAX as usize;

/// Why a byte stream could not be framed (decoding) or a payload could not be (encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A header announced a payload longer than the maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    TooLong {
        /// The announced payload length (`u64::MAX` if an adjustment takes it beyond).
        len: u64,
        /// The decoder's maximum (for a length field, at most `usize::MAX` minus the
        /// header: the longest payload whose frame a `usize` can measure).
        max: u64,
    },
    /// A line or delimited frame ran past the maximum without its delimiter.
    #[error("no delimiter within the maximum frame length of {max} bytes")]
    LineTooLong {
        /// The decoder's maximum.
        max: u64,
    },
    /// A length field (after adjustment) is smaller than the header it says it includes.
    #[error("length field value {value} is smaller than the {header}-byte header")]
    LengthBelowHeader {
        /// The length field's value after adjustment (may be negative; saturated).
        value: i64,
        /// The header length (the bytes before the length field and the field).
        header: u64,
    },
    /// A length codec strips more bytes from the front of a frame than the frame has.
    #[error("cannot strip {strip} bytes from a {frame}-byte frame")]
    StripBeyondFrame {
        /// The codec's bytes to strip.
        strip: u64,
        /// The frame's length (header and payload).
        frame: u64,
    },
    /// A payload is shorter than the bytes the format puts before its length field
    /// (encoding with a length-field offset).
    #[error("a {len}-byte payload is shorter than the {min} bytes before the length field")]
    TooShort {
        /// The payload length.
        len: u64,
        /// The bytes needed.
        min: u64,
    },
    /// The input breaks the format in a way of a custom decoder's own (the text says
    /// how: "varint longer than 10 bytes").
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    /// The codec's frames are not a header and a trailer around the payload
    /// ([`Codec::parts`]); encode with [`Codec::encode`] instead.
    #[error("this codec does not frame a payload with a header and trailer only")]
    NoParts,
    /// A length field that does not count the header, plus a negative adjustment, gives a
    /// negative payload length.
    #[error("length field value {value} with adjustment {adjustment} is a negative length")]
    LengthUnderflow {
        /// The length field's value.
        value: u64,
        /// The codec's adjustment.
        adjustment: i64,
    },
    /// A payload is too long for the length field's width (encoding).
    #[error("a {len}-byte payload does not fit a {width}-byte length field")]
    TooLongForHeader {
        /// The payload length.
        len: u64,
        /// The length field's width in bytes.
        width: u8,
    },
    /// A payload for a fixed-size codec has the wrong length (encoding, or a read_exact of
    /// zero bytes).
    #[error("a frame must be {size} bytes, not {len}")]
    WrongSize {
        /// The payload length.
        len: u64,
        /// The required size.
        size: u64,
    },
    /// A length field must be 1, 2, 4 or 8 bytes wide (configuration).
    #[error("a length field of {width} bytes is not supported (1, 2, 4 or 8)")]
    UnsupportedWidth {
        /// The width asked for.
        width: u8,
    },
    /// A payload contains its codec's delimiter, so it cannot be framed (encoding).
    #[error("the payload contains the delimiter")]
    DelimiterInPayload,
}

/// A decoder's answer about the unconsumed input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A whole frame: it took the first `consumed` bytes of the input; the payload handed
    /// to the application is `payload` (a range inside those bytes).
    Frame {
        /// Input bytes the frame occupies (header and delimiter included).
        consumed: usize,
        /// Where the payload lies in the input.
        payload: Range<usize>,
    },
    /// Not enough input. `frame_len`, when known, is the length the input must reach
    /// before the decoder can say more: the whole frame once its header is read, or the
    /// header before that. [`FrameReader`] takes it as a bound for its buffer's growth,
    /// not as a reservation: a peer's header alone never allocates.
    NeedMore {
        /// Input length needed to progress, if known.
        frame_len: Option<usize>,
    },
    /// Drop the first `len` bytes of the input (at least 1, at most the input's length):
    /// part of an oversized frame being discarded.
    Skip {
        /// Bytes to drop.
        len: usize,
        /// Set on the first skip of a discarded frame: the length it announced (or the
        /// bytes seen so far, for a delimited frame).
        oversized: Option<u64>,
    },
}

/// A framing state machine.
///
/// Contract: `decode` gets the unconsumed input, starting right after the bytes the
/// previous `Frame` or `Skip` took. After `NeedMore`, the next call gets the same bytes
/// with more appended (unless `reset` came in between), so a decoder may remember how far
/// it has looked. A `Frame` or `Skip` takes at least one byte and at most the input, and a
/// payload lies inside its frame; [`FrameReader`] clamps an answer that breaks this rather
/// than panic, so a faulty decoder misframes but never takes a worker down.
///
/// Memory: [`Decoder::max_frame`] is enforced by [`FrameReader`], not only trusted: a
/// `NeedMore` announcing a longer frame, or still asking for more once the held bytes
/// reach the maximum, fails with [`FrameError::TooLong`]; an announced length is never
/// reserved, only used to bound growth. A user decoder is object-safe and needs `Send`
/// (it lives on a worker thread): see [`Codec::custom`].
pub trait Decoder {
    /// Examine the unconsumed input.
    fn decode(&mut self, buf: &[u8]) -> Result<Decoded, FrameError>;
    /// The longest frame (header or delimiter included) this decoder assembles.
    fn max_frame(&self) -> usize;
    /// Forget any partial progress (the input is about to be read another way).
    fn reset(&mut self) {}
}

/// The other direction: frames a payload for sending ([`crate::Conn::send_frame`]).
/// Object-safe; a codec's encoder is shared by every connection and worker, so it has no
/// per-connection state (`&self`) and must be `Send + Sync` to go in a [`Codec`].
pub trait Encoder {
    /// Append the framed `payload` to `dst`. A payload the format cannot carry is a typed
    /// error (through [`Codec`], nothing is appended then).
    fn encode(&self, payload: &[u8], dst: &mut Vec<u8>) -> Result<(), FrameError>;
}

impl<T: Decoder + ?Sized> Decoder for Box<T> {
    fn decode(&mut self, buf: &[u8]) -> Result<Decoded, FrameError> {
        (**self).decode(buf)
    }
    fn max_frame(&self) -> usize {
        (**self).max_frame()
    }
    fn reset(&mut self) {
        (**self).reset()
    }
}

/// Append header, payload and trailer to `dst` (one reservation).
pub(crate) fn put_parts(parts: &FrameParts<'_>, payload: &[u8], dst: &mut Vec<u8>) {
    let framed = (parts.header().len())
        .saturating_add(payload.len())
        .saturating_add(parts.trailer().len());
    dst.reserve(framed);
    dst.extend_from_slice(parts.header());
    dst.extend_from_slice(payload);
    dst.extend_from_slice(parts.trailer());
}

/// The bytes an encoder puts around a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameParts<'a> {
    header: [u8; 8],
    header_len: u8,
    trailer: &'a [u8],
}

impl<'a> FrameParts<'a> {
    fn new(header: &[u8], trailer: &'a [u8]) -> FrameParts<'a> {
        let mut h = [0; 8];
        h[..header.len()].copy_from_slice(header);
        FrameParts {
            header: h,
            header_len: header.len() as u8,
            trailer,
        }
    }

    /// The bytes before the payload.
    pub fn header(&self) -> &[u8] {
        &self.header[..self.header_len as usize]
    }

    /// The bytes after the payload.
    pub fn trailer(&self) -> &'a [u8] {
        self.trailer
    }
}

/// A frame format, with its settings: a built-in one, or a user's own
/// ([`Codec::Custom`], made with [`Codec::custom`]). Cheap to clone.
///
/// An enum rather than a trait object so the built-in formats keep their names
/// (`Codec::Length(..)`, parsed from the CLI, printed) and their static dispatch; a user
/// format is one more variant holding a shared factory, and the engine treats every
/// variant alike through the methods below. Non-exhaustive: more built-in formats may
/// come, so a `match` on a codec needs a `_` arm.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Codec {
    /// No framing: every received chunk is delivered as it came.
    #[default]
    Raw,
    /// A length field before each payload.
    Length(LengthCodec),
    /// Frames ended by a delimiter (lines are `DelimitedCodec::lines()`).
    Delimited(DelimitedCodec),
    /// Every frame has the same size.
    Fixed(FixedCodec),
    /// A user-written format (see [`Codec::custom`]).
    Custom(CustomCodec),
}

impl Codec {
    /// A user format from a value that decodes and encodes: every connection decodes with
    /// a clone of `codec` (its fresh state), and every `send_frame` encodes with it.
    ///
    /// ```
    /// use ringport::codec::{Codec, Decoded, Decoder, Encoder, FrameError};
    ///
    /// /// Frames of one length byte and that many payload bytes.
    /// #[derive(Clone, Default)]
    /// struct Tiny;
    ///
    /// impl Decoder for Tiny {
    ///     fn decode(&mut self, buf: &[u8]) -> Result<Decoded, FrameError> {
    ///         let Some(&len) = buf.first() else {
    ///             return Ok(Decoded::NeedMore { frame_len: Some(1) });
    ///         };
    ///         let total = 1 + len as usize;
    ///         if buf.len() < total {
    ///             return Ok(Decoded::NeedMore { frame_len: Some(total) });
    ///         }
    ///         Ok(Decoded::Frame { consumed: total, payload: 1..total })
    ///     }
    ///     fn max_frame(&self) -> usize {
    ///         256
    ///     }
    /// }
    ///
    /// impl Encoder for Tiny {
    ///     fn encode(&self, payload: &[u8], dst: &mut Vec<u8>) -> Result<(), FrameError> {
    ///         let len = u8::try_from(payload.len())
    ///             .map_err(|_| FrameError::TooLongForHeader { len: payload.len() as u64, width: 1 })?;
    ///         dst.push(len);
    ///         dst.extend_from_slice(payload);
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let codec = Codec::custom(Tiny);
    /// let mut out = Vec::new();
    /// codec.encode(b"hi", &mut out)?;
    /// assert_eq!(out, b"\x02hi");
    /// # Ok::<(), FrameError>(())
    /// ```
    pub fn custom<C>(codec: C) -> Codec
    where
        C: Decoder + Encoder + Clone + Send + Sync + 'static,
    {
        Codec::Custom(CustomCodec::from_codec(codec))
    }

    /// A user format from a decoder factory (called once per connection) and an encoder,
    /// for a decoder that is not `Clone` or not `Sync`.
    pub fn custom_with<F, D, E>(make_decoder: F, encoder: E) -> Codec
    where
        F: Fn() -> D + Send + Sync + 'static,
        D: Decoder + Send + 'static,
        E: Encoder + Send + Sync + 'static,
    {
        Codec::Custom(CustomCodec::from_parts(make_decoder, encoder))
    }

    /// True for a codec that does not frame at all ([`Codec::Raw`]): received chunks may
    /// go to the handler as they came, without a frame reader, and a read timeout counts
    /// silence rather than unfinished frames.
    pub fn is_passthrough(&self) -> bool {
        matches!(self, Codec::Raw)
    }

    /// A fresh decoder for one connection.
    pub fn decoder(&self) -> FrameDecoder {
        match self {
            Codec::Raw => FrameDecoder::Raw(RawDecoder),
            Codec::Length(c) => FrameDecoder::Length(c.decoder()),
            Codec::Delimited(c) => FrameDecoder::Delimited(c.decoder()),
            Codec::Fixed(c) => FrameDecoder::Fixed(c.clone()),
            Codec::Custom(c) => FrameDecoder::Custom(c.decoder()),
        }
    }

    /// The header and trailer that frame a payload of `len` bytes; `payload` is looked at
    /// only by codecs that must check it (a delimiter inside a delimited payload).
    /// [`FrameError::NoParts`] for a format that is not a header and trailer around the
    /// payload (a length field after an offset, a custom codec): use [`Codec::encode`].
    pub fn parts(&self, payload: &[u8]) -> Result<FrameParts<'_>, FrameError> {
        match self {
            Codec::Raw => Ok(FrameParts::new(&[], &[])),
            Codec::Length(c) => c.parts(payload.len()),
            Codec::Delimited(c) => c.parts(payload),
            Codec::Fixed(c) => c.parts(payload.len()),
            Codec::Custom(_) => Err(FrameError::NoParts),
        }
    }

    /// Append the framed `payload` to `dst`. On error nothing is appended.
    pub fn encode(&self, payload: &[u8], dst: &mut Vec<u8>) -> Result<(), FrameError> {
        match self {
            Codec::Raw => RawDecoder.encode(payload, dst),
            Codec::Length(c) => c.encode(payload, dst),
            Codec::Delimited(c) => c.encode(payload, dst),
            Codec::Fixed(c) => c.encode(payload, dst),
            Codec::Custom(c) => c.encode(payload, dst),
        }
    }

    /// The longest exact read (`Conn::read_exact`) on a connection with this codec: the
    /// codec's maximum frame, and at least [`DEFAULT_MAX_FRAME`] (a line protocol may
    /// read a large blob), at most [`MAX_EXACT_READ`]. The reader's memory for it grows
    /// with the bytes that arrive, not with this maximum.
    pub fn max_exact_read(&self) -> usize {
        let frame = match self {
            Codec::Raw => 0,
            Codec::Length(c) => c.max_payload(),
            Codec::Delimited(c) => c.max_len(),
            Codec::Fixed(c) => c.size(),
            Codec::Custom(c) => c.max_frame(),
        };
        frame.clamp(DEFAULT_MAX_FRAME, MAX_EXACT_READ)
    }
}

impl Encoder for Codec {
    fn encode(&self, payload: &[u8], dst: &mut Vec<u8>) -> Result<(), FrameError> {
        Codec::encode(self, payload, dst)
    }
}

/// The decoder of a [`Codec`] (static dispatch over the built-in decoders, dynamic for a
/// custom one). Non-exhaustive, as [`Codec`] is.
#[derive(Debug)]
#[non_exhaustive]
pub enum FrameDecoder {
    /// See [`Codec::Raw`].
    Raw(RawDecoder),
    /// See [`Codec::Length`].
    Length(length::LengthDecoder),
    /// See [`Codec::Delimited`].
    Delimited(delimited::DelimitedDecoder),
    /// See [`Codec::Fixed`].
    Fixed(FixedCodec),
    /// See [`Codec::Custom`].
    Custom(CustomDecoder),
}

impl Decoder for FrameDecoder {
    #[inline]
    fn decode(&mut self, buf: &[u8]) -> Result<Decoded, FrameError> {
        match self {
            FrameDecoder::Raw(d) => d.decode(buf),
            FrameDecoder::Length(d) => d.decode(buf),
            FrameDecoder::Delimited(d) => d.decode(buf),
            FrameDecoder::Fixed(d) => d.decode(buf),
            FrameDecoder::Custom(d) => d.decode(buf),
        }
    }

    fn max_frame(&self) -> usize {
        match self {
            FrameDecoder::Raw(d) => d.max_frame(),
            FrameDecoder::Length(d) => d.max_frame(),
            FrameDecoder::Delimited(d) => d.max_frame(),
            FrameDecoder::Fixed(d) => d.max_frame(),
            FrameDecoder::Custom(d) => d.max_frame(),
        }
    }

    fn reset(&mut self) {
        match self {
            FrameDecoder::Raw(d) => d.reset(),
            FrameDecoder::Length(d) => d.reset(),
            FrameDecoder::Delimited(d) => d.reset(),
            FrameDecoder::Fixed(d) => d.reset(),
            FrameDecoder::Custom(d) => d.reset(),
        }
    }
}

impl std::str::FromStr for Codec {
    type Err = String;

    /// `raw`, `line`, `length:N` (N-byte big-endian length prefix, N in 1, 2, 4, 8),
    /// `fixed:N`.
    fn from_str(s: &str) -> Result<Codec, String> {
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        let num = |a: Option<&str>| -> Result<usize, String> {
            a.ok_or_else(|| format!("codec {name} needs a size, as in {name}:4"))?
                .parse()
                .map_err(|e| format!("bad size in codec {s:?}: {e}"))
        };
        // A width that does not fit a u8 is refused, not truncated (260 is not 4).
        let width = |n: usize| u8::try_from(n).map_err(|_| format!("bad width in codec {s:?}"));
        match name {
            "raw" if arg.is_none() => Ok(Codec::Raw),
            "line" if arg.is_none() => Ok(Codec::Delimited(DelimitedCodec::lines())),
            "length" => LengthCodec::new(width(num(arg)?)?, Endian::Big)
                .map(Codec::Length)
                .map_err(|e| e.to_string()),
            "fixed" => FixedCodec::new(num(arg)?)
                .map(Codec::Fixed)
                .map_err(|e| e.to_string()),
            _ => Err(format!(
                "unknown codec {s:?} (raw, line, length:N, fixed:N)"
            )),
        }
    }
}

impl std::fmt::Display for Codec {
    /// The CLI spelling where there is one (`raw`, `line`, `length:4`, `fixed:16`);
    /// `length:4le` for a little-endian field; `delimited` for other delimiters; `custom`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Codec::Raw => f.write_str("raw"),
            Codec::Length(c) => {
                let le = if c.endian() == Endian::Little {
                    "le"
                } else {
                    ""
                };
                write!(f, "length:{}{le}", c.width())
            }
            Codec::Delimited(c) if c.is_lines() => f.write_str("line"),
            Codec::Delimited(_) => f.write_str("delimited"),
            Codec::Fixed(c) => write!(f, "fixed:{}", c.size()),
            Codec::Custom(_) => f.write_str("custom"),
        }
    }
}

impl Codec {
    /// The same codec with its maximum frame length (payload bytes) set to `max`; ignored
    /// by `Raw`, `Fixed` and `Custom` (a custom decoder states its own maximum).
    pub fn with_max_frame(self, max: usize) -> Codec {
        match self {
            Codec::Length(c) => Codec::Length(c.max_payload_len(max)),
            Codec::Delimited(c) => Codec::Delimited(c.max_length(max)),
            other => other,
        }
    }

    /// The same codec, discarding oversized frames and reading on from the next one
    /// instead of failing (where the format allows it: `Length` and `Delimited`; a custom
    /// decoder discards with [`Decoded::Skip`] itself).
    pub fn with_discard_oversized(self, discard: bool) -> Codec {
        match self {
            Codec::Length(c) => Codec::Length(c.discard_oversized(discard)),
            Codec::Delimited(c) => Codec::Delimited(c.discard_oversized(discard)),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_custom;
#[cfg(test)]
mod tests_reader;
