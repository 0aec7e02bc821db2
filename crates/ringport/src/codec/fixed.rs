//! Fixed-size frames, and the raw pass-through decoder.

use super::{put_parts, Decoded, Decoder, Encoder, FrameError, FrameParts};

/// Every frame is exactly `size` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedCodec {
    size: usize,
}

impl FixedCodec {
    /// Frames of `size` bytes (at least 1).
    pub fn new(size: usize) -> Result<FixedCodec, FrameError> {
        if size == 0 {
            return Err(FrameError::WrongSize { len: 0, size: 1 });
        }
        Ok(FixedCodec { size })
    }

    /// The frame size.
    pub fn size(&self) -> usize {
        self.size
    }

    pub(super) fn parts(&self, len: usize) -> Result<FrameParts<'static>, FrameError> {
        if len != self.size {
            return Err(FrameError::WrongSize {
                len: len as u64,
                size: self.size as u64,
            });
        }
        Ok(FrameParts::new(&[], &[]))
    }
}

impl Encoder for FixedCodec {
    fn encode(&self, payload: &[u8], dst: &mut Vec<u8>) -> Result<(), FrameError> {
        put_parts(&self.parts(payload.len())?, payload, dst);
        Ok(())
    }
}

impl Decoder for FixedCodec {
    fn decode(&mut self, buf: &[u8]) -> Result<Decoded, FrameError> {
        if buf.len() < self.size {
            return Ok(Decoded::NeedMore {
                frame_len: Some(self.size),
            });
        }
        Ok(Decoded::Frame {
            consumed: self.size,
            payload: 0..self.size,
        })
    }

    fn max_frame(&self) -> usize {
        self.size
    }
}

/// No framing: whatever has arrived is one delivery (and encoding appends the payload as
/// it is).
#[derive(Debug, Clone, Copy, Default)]
pub struct RawDecoder;

impl Decoder for RawDecoder {
    #[inline]
    fn decode(&mut self, buf: &[u8]) -> Result<Decoded, FrameError> {
        if buf.is_empty() {
            return Ok(Decoded::NeedMore { frame_len: None });
        }
        Ok(Decoded::Frame {
            consumed: buf.len(),
            payload: 0..buf.len(),
        })
    }

    fn max_frame(&self) -> usize {
        usize::MAX
    }
}

impl Encoder for RawDecoder {
    fn encode(&self, payload: &[u8], dst: &mut Vec<u8>) -> Result<(), FrameError> {
        dst.extend_from_slice(payload);
        Ok(())
    }
}
