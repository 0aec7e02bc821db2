//! Length-prefixed frames: a 1, 2, 4 or 8-byte length field, big or little endian, that
//! counts the payload or the payload and the header, optionally off by a fixed adjustment,
//! optionally after a fixed number of other header bytes, with the bytes delivered
//! starting where the codec says (Netty's `LengthFieldBasedFrameDecoder` parameters:
//! `lengthFieldOffset`, `lengthFieldLength`, `lengthAdjustment`, `initialBytesToStrip`).

use super::{Decoded, Decoder, Encoder, FrameError, FrameParts, DEFAULT_MAX_FRAME};

/// Byte order of a length field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    /// Most significant byte first (network order).
    Big,
    /// Least significant byte first.
    Little,
}

/// Settings of a length-prefixed format. The frame is `header | payload`, where the header
/// is `offset` bytes of the application's (0 by default) followed by the length field,
/// whose value is `payload_len + (header_len if includes_header) - adjustment`. A decoded
/// frame is delivered from byte `strip` on (by default the whole header is stripped: the
/// payload alone).
///
/// ```
/// use ringport::codec::{Codec, Endian, LengthCodec};
///
/// // A 1-byte message type, then a 2-byte length of what follows; deliver the type too.
/// let codec = LengthCodec::new(2, Endian::Big)?
///     .length_field_offset(1)
///     .initial_bytes_to_strip(0);
/// let mut out = Vec::new();
/// Codec::Length(codec).encode(b"Thello", &mut out)?; // type 'T', payload "hello"
/// assert_eq!(out, b"T\x00\x05hello");
/// # Ok::<(), ringport::FrameError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LengthCodec {
    width: u8,
    endian: Endian,
    includes_header: bool,
    adjustment: i64,
    max_payload: usize,
    discard: bool,
    /// Bytes before the length field (at most `usize::MAX - 8`, so the header length
    /// `offset + width` always fits a `usize`).
    offset: usize,
    /// Bytes dropped from the front of each delivered frame; `None`: the whole header.
    strip: Option<usize>,
}

impl LengthCodec {
    /// A `width`-byte length field (1, 2, 4 or 8) counting the payload only; maximum payload
    /// [`DEFAULT_MAX_FRAME`] (capped by what the field can express).
    pub fn new(width: u8, endian: Endian) -> Result<LengthCodec, FrameError> {
        if !matches!(width, 1 | 2 | 4 | 8) {
            return Err(FrameError::UnsupportedWidth { width });
        }
        Ok(LengthCodec {
            width,
            endian,
            includes_header: false,
            adjustment: 0,
            max_payload: DEFAULT_MAX_FRAME.min(field_max(width).min(usize::MAX as u64) as usize),
            discard: false,
            offset: 0,
            strip: None,
        })
    }

    /// `offset` bytes come before the length field (Netty's `lengthFieldOffset`): they
    /// are part of the header. Encoding then takes them as the first `offset` bytes of the
    /// payload given to it and puts the length field after them. Offsets above
    /// `usize::MAX - 8` are taken as that (no frame could hold one anyway).
    pub fn length_field_offset(mut self, offset: usize) -> LengthCodec {
        self.offset = offset.min(usize::MAX - 8);
        self
    }

    /// Drop the first `strip` bytes of every decoded frame (Netty's
    /// `initialBytesToStrip`): 0 delivers the whole frame, header included. By default the
    /// whole header is stripped (the payload after the length field is delivered). A frame
    /// shorter than `strip` is an error ([`FrameError::StripBeyondFrame`]). Encoding does
    /// not depend on it.
    pub fn initial_bytes_to_strip(mut self, strip: usize) -> LengthCodec {
        self.strip = Some(strip);
        self
    }

    /// The bytes before the length field.
    pub fn field_offset(&self) -> usize {
        self.offset
    }

    /// The bytes dropped from the front of each decoded frame.
    pub fn bytes_to_strip(&self) -> usize {
        self.strip.unwrap_or(self.header_len())
    }

    /// The header's length: the bytes before the length field and the field.
    pub fn header_len(&self) -> usize {
        // offset <= usize::MAX - 8 and width <= 8: no overflow.
        self.offset + self.width as usize
    }

    /// The length field counts the header too (the bytes before it included).
    pub fn includes_header(mut self, yes: bool) -> LengthCodec {
        self.includes_header = yes;
        self
    }

    /// A constant added to the payload length to get the field's value (netty's
    /// `lengthAdjustment`, with the sign the other way round: the field holds
    /// `len - adjustment`).
    pub fn adjustment(mut self, adjustment: i64) -> LengthCodec {
        self.adjustment = adjustment;
        self
    }

    /// The longest payload accepted (decoding and encoding). Any value is valid: a payload
    /// the length field cannot express is refused by the encoder
    /// ([`FrameError::TooLongForHeader`]), and a header announcing more than the maximum
    /// (or a frame beyond `usize::MAX` bytes) by the decoder ([`FrameError::TooLong`]).
    pub fn max_payload_len(mut self, max: usize) -> LengthCodec {
        self.max_payload = max;
        self
    }

    /// Skip an oversized frame and go on with the next one instead of failing.
    pub fn discard_oversized(mut self, discard: bool) -> LengthCodec {
        self.discard = discard;
        self
    }

    /// The maximum payload length.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// The length field's byte order.
    pub fn endian(&self) -> Endian {
        self.endian
    }

    /// The length field's width.
    pub fn width(&self) -> u8 {
        self.width
    }

    pub(super) fn decoder(&self) -> LengthDecoder {
        LengthDecoder {
            codec: self.clone(),
            skipping: 0,
        }
    }

    /// The header of a `len`-byte payload; [`FrameError::NoParts`] with a length-field
    /// offset (the field goes inside the payload given to [`Encoder::encode`]).
    pub(super) fn parts(&self, len: usize) -> Result<FrameParts<'static>, FrameError> {
        if self.offset > 0 {
            return Err(FrameError::NoParts);
        }
        self.field(len)
    }

    /// The length field for `len` payload bytes after it. All arithmetic is in `i128`,
    /// which holds every `usize` and `u64` plus any `i64` adjustment: nothing wraps.
    fn field(&self, len: usize) -> Result<FrameParts<'static>, FrameError> {
        let len64 = u64::try_from(len).unwrap_or(u64::MAX);
        let header = if self.includes_header {
            self.header_len() as i128
        } else {
            0
        };
        let value = len as i128 + header - i128::from(self.adjustment);
        let value = u64::try_from(value)
            .ok()
            .filter(|&v| v <= field_max(self.width))
            .ok_or(FrameError::TooLongForHeader {
                len: len64,
                width: self.width,
            })?;
        if len > self.max_payload {
            return Err(FrameError::TooLong {
                len: len64,
                max: self.max_payload as u64,
            });
        }
        let w = self.width as usize;
        let field = match self.endian {
            Endian::Big => &value.to_be_bytes()[8 - w..],
            Endian::Little => &value.to_le_bytes()[..w],
        };
        Ok(FrameParts::new(field, &[]))
    }

    /// The payload length a header announces, as `i128` (exact: it may be negative or
    /// above `u64::MAX` with an adjustment), or the typed error of a negative one.
    fn payload_len(&self, field: &[u8]) -> Result<i128, FrameError> {
        let mut b = [0u8; 8];
        let w = self.width as usize;
        let header = self.header_len();
        let value = match self.endian {
            Endian::Big => {
                b[8 - w..].copy_from_slice(field);
                u64::from_be_bytes(b)
            }
            Endian::Little => {
                b[..w].copy_from_slice(field);
                u64::from_le_bytes(b)
            }
        };
        let adjusted = i128::from(value) + i128::from(self.adjustment);
        if !self.includes_header {
            if adjusted < 0 {
                return Err(FrameError::LengthUnderflow {
                    value,
                    adjustment: self.adjustment,
                });
            }
            return Ok(adjusted);
        }
        if adjusted < header as i128 {
            return Err(FrameError::LengthBelowHeader {
                value: adjusted.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
                header: header as u64,
            });
        }
        Ok(adjusted - header as i128)
    }

    /// The longest payload the decoder accepts: the maximum, and less if the whole frame
    /// would not fit a `usize` (with a maximum near `usize::MAX`).
    fn payload_limit(&self) -> usize {
        self.max_payload.min(usize::MAX - self.header_len())
    }
}

impl Encoder for LengthCodec {
    /// With a length-field offset, the first `offset` bytes of `payload` go before the
    /// field and the rest after it (and count as the payload); otherwise the field, then
    /// `payload`. Nothing is appended on error.
    fn encode(&self, payload: &[u8], dst: &mut Vec<u8>) -> Result<(), FrameError> {
        if payload.len() < self.offset {
            return Err(FrameError::TooShort {
                len: payload.len() as u64,
                min: self.offset as u64,
            });
        }
        let (before, after) = payload.split_at(self.offset);
        let field = self.field(after.len())?;
        dst.reserve(payload.len().saturating_add(field.header().len()));
        dst.extend_from_slice(before);
        dst.extend_from_slice(field.header());
        dst.extend_from_slice(after);
        Ok(())
    }
}

/// The largest value a `width`-byte field holds.
fn field_max(width: u8) -> u64 {
    if width >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * width as u32)) - 1
    }
}

/// The decoding state of one connection.
#[derive(Debug, Clone)]
pub struct LengthDecoder {
    codec: LengthCodec,
    /// Bytes of a discarded frame still to skip (header and payload: up to
    /// `u64::MAX + i64::MAX + 8`, exact in a `u128`).
    skipping: u128,
}

impl LengthDecoder {
    fn skip(&mut self, available: usize, oversized: Option<u64>) -> Decoded {
        // `min` with a usize: the result fits one.
        let len = self.skipping.min(available as u128) as usize;
        self.skipping -= len as u128;
        Decoded::Skip { len, oversized }
    }
}

impl Decoder for LengthDecoder {
    fn decode(&mut self, buf: &[u8]) -> Result<Decoded, FrameError> {
        if self.skipping > 0 {
            if buf.is_empty() {
                return Ok(Decoded::NeedMore { frame_len: None });
            }
            return Ok(self.skip(buf.len(), None));
        }
        let c = &self.codec;
        let w = c.header_len();
        if buf.len() < w {
            // The header first; its value then tells the whole frame's length.
            return Ok(Decoded::NeedMore { frame_len: Some(w) });
        }
        let len = c.payload_len(&buf[c.offset..w])?;
        let limit = self.codec.payload_limit();
        let Some(len) = usize::try_from(len).ok().filter(|&l| l <= limit) else {
            // Above the maximum (or above what any length type here holds).
            let announced = u64::try_from(len).unwrap_or(u64::MAX);
            if !self.codec.discard {
                return Err(FrameError::TooLong {
                    len: announced,
                    max: limit as u64,
                });
            }
            // `len` is at most u64::MAX + i64::MAX: no overflow in a u128.
            self.skipping = len as u128 + w as u128;
            return Ok(self.skip(buf.len(), Some(announced)));
        };
        // len <= usize::MAX - w (payload_limit), so this cannot overflow.
        let total = w + len;
        let strip = self.codec.bytes_to_strip();
        if strip > total {
            return Err(FrameError::StripBeyondFrame {
                strip: strip as u64,
                frame: total as u64,
            });
        }
        if buf.len() < total {
            return Ok(Decoded::NeedMore {
                frame_len: Some(total),
            });
        }
        Ok(Decoded::Frame {
            consumed: total,
            payload: strip..total,
        })
    }

    fn max_frame(&self) -> usize {
        self.codec
            .max_payload
            .saturating_add(self.codec.header_len())
    }

    fn reset(&mut self) {
        self.skipping = 0;
    }
}
