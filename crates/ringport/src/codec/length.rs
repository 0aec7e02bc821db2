//! Length-prefixed frames: a 1, 2, 4 or 8-byte length field, big or little endian, that
//! counts the payload or the payload and the header, optionally off by a fixed adjustment.

use super::{Decoded, Decoder, FrameError, FrameParts, DEFAULT_MAX_FRAME};

/// Byte order of a length field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    /// Most significant byte first (network order).
    Big,
    /// Least significant byte first.
    Little,
}

/// Settings of a length-prefixed format. The frame is `header | payload`, where the header
/// is the length field and its value is
/// `payload_len + (header_len if includes_header) - adjustment`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LengthCodec {
    width: u8,
    endian: Endian,
    includes_header: bool,
    adjustment: i64,
    max_payload: usize,
    discard: bool,
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
        })
    }

    /// The length field counts the header too.
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

    /// The header of a `len`-byte payload. All arithmetic is in `i128`, which holds every
    /// `usize` and `u64` plus any `i64` adjustment: nothing wraps.
    pub(super) fn parts(&self, len: usize) -> Result<FrameParts<'static>, FrameError> {
        let len64 = u64::try_from(len).unwrap_or(u64::MAX);
        let header = if self.includes_header {
            i128::from(self.width)
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
    fn payload_len(&self, header: &[u8]) -> Result<i128, FrameError> {
        let mut b = [0u8; 8];
        let w = self.width as usize;
        let value = match self.endian {
            Endian::Big => {
                b[8 - w..].copy_from_slice(header);
                u64::from_be_bytes(b)
            }
            Endian::Little => {
                b[..w].copy_from_slice(header);
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
        if adjusted < w as i128 {
            return Err(FrameError::LengthBelowHeader {
                // Below the header (at most 8), so only a negative one can saturate.
                value: adjusted.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
                header: self.width,
            });
        }
        Ok(adjusted - w as i128)
    }

    /// The longest payload the decoder accepts: the maximum, and less if the whole frame
    /// would not fit a `usize` (with a maximum near `usize::MAX`).
    fn payload_limit(&self) -> usize {
        self.max_payload.min(usize::MAX - self.width as usize)
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
        let w = self.codec.width as usize;
        if buf.len() < w {
            // The header first; its value then tells the whole frame's length.
            return Ok(Decoded::NeedMore { frame_len: Some(w) });
        }
        let len = self.codec.payload_len(&buf[..w])?;
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
        if buf.len() < total {
            return Ok(Decoded::NeedMore {
                frame_len: Some(total),
            });
        }
        Ok(Decoded::Frame {
            consumed: total,
            payload: w..total,
        })
    }

    fn max_frame(&self) -> usize {
        self.codec
            .max_payload
            .saturating_add(self.codec.width as usize)
    }

    fn reset(&mut self) {
        self.skipping = 0;
    }
}
