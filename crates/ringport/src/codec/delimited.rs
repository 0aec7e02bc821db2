//! Frames ended by a delimiter: lines (`\n`, with an optional `\r` before it) or any byte
//! string.

use super::{put_parts, Decoded, Decoder, Encoder, FrameError, FrameParts, DEFAULT_MAX_LINE};
use std::sync::Arc;

/// Settings of a delimited format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelimitedCodec {
    delimiter: Arc<[u8]>,
    /// Lines: also strip a `\r` before the `\n`, and encode with `\r\n` if `crlf_out`.
    lines: bool,
    crlf_out: bool,
    max_len: usize,
    discard: bool,
}

impl DelimitedCodec {
    /// Lines ended by `\n`; a `\r` right before it is stripped too (so `\r\n` works), and
    /// encoding appends `\n`. Maximum line length [`DEFAULT_MAX_LINE`].
    pub fn lines() -> DelimitedCodec {
        DelimitedCodec {
            delimiter: Arc::from(&b"\n"[..]),
            lines: true,
            crlf_out: false,
            max_len: DEFAULT_MAX_LINE,
            discard: false,
        }
    }

    /// Frames ended by `delimiter` (not empty); maximum length [`DEFAULT_MAX_LINE`].
    pub fn new(delimiter: &[u8]) -> Result<DelimitedCodec, FrameError> {
        if delimiter.is_empty() {
            return Err(FrameError::DelimiterInPayload);
        }
        Ok(DelimitedCodec {
            delimiter: Arc::from(delimiter),
            lines: false,
            crlf_out: false,
            max_len: DEFAULT_MAX_LINE,
            discard: false,
        })
    }

    /// Lines only: encode with `\r\n` instead of `\n`.
    pub fn crlf(mut self, yes: bool) -> DelimitedCodec {
        self.crlf_out = yes;
        self
    }

    /// The longest frame accepted, delimiter not counted.
    pub fn max_length(mut self, max: usize) -> DelimitedCodec {
        self.max_len = max;
        self
    }

    /// Skip an over-long frame up to its delimiter and go on instead of failing.
    pub fn discard_oversized(mut self, discard: bool) -> DelimitedCodec {
        self.discard = discard;
        self
    }

    /// True for the line codec ([`DelimitedCodec::lines`]).
    pub fn is_lines(&self) -> bool {
        self.lines
    }

    /// The maximum frame length.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    pub(super) fn decoder(&self) -> DelimitedDecoder {
        DelimitedDecoder {
            codec: self.clone(),
            scanned: 0,
            discarding: false,
        }
    }

    pub(super) fn parts<'a>(&'a self, payload: &[u8]) -> Result<FrameParts<'a>, FrameError> {
        if payload.len() > self.max_len {
            return Err(FrameError::TooLong {
                len: payload.len() as u64,
                max: self.max_len as u64,
            });
        }
        if self.delimiter_inside(payload) {
            return Err(FrameError::DelimiterInPayload);
        }
        let trailer: &'a [u8] = if self.lines && self.crlf_out {
            b"\r\n"
        } else {
            &self.delimiter
        };
        Ok(FrameParts::new(&[], trailer))
    }
}

impl DelimitedCodec {
    /// Would the decoder see a delimiter (or, for lines, a `\r\n`) before the end of
    /// `payload` once the delimiter is appended? Then the payload cannot be framed.
    fn delimiter_inside(&self, payload: &[u8]) -> bool {
        let d = &self.delimiter[..];
        if find(payload, d).is_some() || (self.lines && payload.last() == Some(&b'\r')) {
            return true;
        }
        // A delimiter straddling the payload's end: a suffix of the payload equal to a
        // prefix of the delimiter that the delimiter's own start completes.
        (1..d.len().min(payload.len() + 1))
            .any(|k| payload.ends_with(&d[..k]) && d[k..] == d[..d.len() - k])
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() == 1 {
        memchr::memchr(needle[0], hay)
    } else {
        memchr::memmem::find(hay, needle)
    }
}

impl Encoder for DelimitedCodec {
    fn encode(&self, payload: &[u8], dst: &mut Vec<u8>) -> Result<(), FrameError> {
        put_parts(&self.parts(payload)?, payload, dst);
        Ok(())
    }
}

/// The decoding state of one connection.
#[derive(Debug, Clone)]
pub struct DelimitedDecoder {
    codec: DelimitedCodec,
    /// Bytes at the start of the input known to hold no whole delimiter.
    scanned: usize,
    /// Dropping an over-long frame up to its delimiter.
    discarding: bool,
}

impl DelimitedDecoder {
    /// Start dropping an over-long frame: skip `len` bytes (more follow in later calls).
    fn start_discard(&mut self, len: usize, oversized: u64) -> Decoded {
        self.discarding = true;
        self.scanned = 0;
        Decoded::Skip {
            len,
            oversized: Some(oversized),
        }
    }
}

impl Decoder for DelimitedDecoder {
    fn decode(&mut self, buf: &[u8]) -> Result<Decoded, FrameError> {
        let d = self.codec.delimiter.clone();
        let keep = d.len() - 1;
        let from = self.scanned.saturating_sub(keep).min(buf.len());
        if self.discarding {
            if let Some(at) = find(&buf[from..], &d) {
                self.discarding = false;
                self.scanned = 0;
                let len = from + at + d.len();
                return Ok(Decoded::Skip {
                    len,
                    oversized: None,
                });
            }
            // Drop all but the last bytes, which may begin the delimiter.
            let len = buf.len().saturating_sub(keep);
            self.scanned = buf.len() - len;
            if len == 0 {
                return Ok(Decoded::NeedMore { frame_len: None });
            }
            return Ok(Decoded::Skip {
                len,
                oversized: None,
            });
        }
        // Never look further than a maximal frame.
        let limit = buf.len().min(self.max_frame());
        let too_long = FrameError::LineTooLong {
            max: self.codec.max_len as u64,
        };
        match find(&buf[from..limit.max(from)], &d) {
            Some(i) => {
                let at = from + i;
                self.scanned = 0;
                let mut end = at;
                if self.codec.lines && end > 0 && buf[end - 1] == b'\r' {
                    end -= 1;
                }
                if end > self.codec.max_len {
                    if !self.codec.discard {
                        return Err(too_long);
                    }
                    return Ok(Decoded::Skip {
                        len: at + d.len(),
                        oversized: Some(end as u64),
                    });
                }
                Ok(Decoded::Frame {
                    consumed: at + d.len(),
                    payload: 0..end,
                })
            }
            None if buf.len() < self.max_frame() => {
                self.scanned = buf.len();
                Ok(Decoded::NeedMore { frame_len: None })
            }
            None if self.codec.discard => Ok(self.start_discard(limit - keep, limit as u64)),
            None => Err(too_long),
        }
    }

    fn max_frame(&self) -> usize {
        self.codec
            .max_len
            .saturating_add(self.codec.delimiter.len() + usize::from(self.codec.lines))
    }

    fn reset(&mut self) {
        self.scanned = 0;
        self.discarding = false;
    }
}
