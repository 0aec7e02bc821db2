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

    /// The longest payload accepted (decoding and encoding).
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

    /// The header of a `len`-byte payload.
    pub(super) fn parts(&self, len: usize) -> Result<FrameParts<'static>, FrameError> {
        let too_long = FrameError::TooLongForHeader {
            len: len as u64,
            width: self.width,
        };
        let header = if self.includes_header {
            self.width as i128
        } else {
            0
        };
        let value = len as i128 + header - self.adjustment as i128;
        if value < 0 || value > field_max(self.width) as i128 {
            return Err(too_long);
        }
        if len > self.max_payload {
            return Err(FrameError::TooLong {
                len: len as u64,
                max: self.max_payload as u64,
            });
        }
        let bytes = match self.endian {
            Endian::Big => (value as u64).to_be_bytes(),
            Endian::Little => (value as u64).to_le_bytes(),
        };
        let w = self.width as usize;
        let field = match self.endian {
            Endian::Big => &bytes[8 - w..],
            Endian::Little => &bytes[..w],
        };
        Ok(FrameParts::new(field, &[]))
    }

    /// The payload length a header announces.
    fn payload_len(&self, header: &[u8]) -> Result<u64, FrameError> {
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
        let header_len = if self.includes_header { w as i128 } else { 0 };
        let len = value as i128 + self.adjustment as i128 - header_len;
        if len < 0 {
            return Err(FrameError::LengthBelowHeader {
                value: (value as i128 + self.adjustment as i128)
                    .clamp(i64::MIN as i128, i64::MAX as i128) as i64,
                header: self.width,
            });
        }
        Ok(len as u64)
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
    /// Bytes of a discarded frame still to skip.
    skipping: u64,
}

impl LengthDecoder {
    fn skip(&mut self, available: usize, oversized: Option<u64>) -> Decoded {
        let len = (self.skipping.min(available as u64)) as usize;
        self.skipping -= len as u64;
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
        if len > self.codec.max_payload as u64 {
            if !self.codec.discard {
                return Err(FrameError::TooLong {
                    len,
                    max: self.codec.max_payload as u64,
                });
            }
            self.skipping = len.saturating_add(w as u64);
            return Ok(self.skip(buf.len(), Some(len)));
        }
        // len <= max_payload, a usize, so this cannot overflow.
        let total = w + len as usize;
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
