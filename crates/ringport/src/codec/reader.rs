//! `FrameReader`: drives a decoder over received chunks, handing out frames that lie in
//! one chunk as slices of it and assembling only frames that span chunks.

use super::{Decoded, Decoder, FrameError, DEFAULT_MAX_FRAME};

/// What a [`FrameReader`] hands to its callback.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A whole frame's payload (valid during the call only).
    Frame(&'a [u8]),
    /// Progress of an exact read asked with `progress`: `received` of `total` bytes are in.
    /// Reported once per received chunk while the read spans chunks.
    Progress {
        /// Bytes of the read received so far.
        received: usize,
        /// The read's length.
        total: usize,
    },
}

/// What the callback wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Go on decoding.
    Continue,
    /// Stop: the rest of this chunk is not delivered (the connection is closing).
    Stop,
    /// The next frame is exactly `len` bytes, whatever the codec says; report progress if
    /// `progress`. After that frame the codec frames again.
    ReadExact {
        /// Bytes to read.
        len: usize,
        /// Report [`Event::Progress`] while they arrive.
        progress: bool,
    },
}

#[derive(Debug, Clone, Copy)]
struct Exact {
    len: usize,
    progress: bool,
}

/// Frames a byte stream fed in arbitrary chunks. Memory: nothing while no frame is
/// partly received; otherwise one buffer sized to the partial frame (when its length is
/// known) and never larger than the decoder's maximum frame, freed once the frame is out.
#[derive(Debug)]
pub struct FrameReader<D> {
    decoder: D,
    /// The start of a frame that spans chunks.
    pending: Vec<u8>,
    /// That frame's total length, once known.
    pending_total: Option<usize>,
    /// An exact read in force for the next frame.
    exact: Option<Exact>,
    /// Longest exact read allowed.
    exact_max: usize,
    /// Oversized frames skipped (discard mode).
    discarded: u64,
}

impl<D: Decoder> FrameReader<D> {
    /// A reader whose exact reads may be as long as the decoder's maximum frame (or
    /// [`DEFAULT_MAX_FRAME`] for a decoder without one).
    pub fn new(decoder: D) -> FrameReader<D> {
        let max = decoder.max_frame();
        let exact_max = if max == usize::MAX {
            DEFAULT_MAX_FRAME
        } else {
            max
        };
        FrameReader::with_exact_max(decoder, exact_max)
    }

    /// A reader whose exact reads may be up to `exact_max` bytes.
    pub fn with_exact_max(decoder: D, exact_max: usize) -> FrameReader<D> {
        FrameReader {
            decoder,
            pending: Vec::new(),
            pending_total: None,
            exact: None,
            exact_max,
            discarded: 0,
        }
    }

    /// Make the next frame exactly `len` bytes (1 to the exact-read maximum).
    pub fn read_exact(&mut self, len: usize, progress: bool) -> Result<(), FrameError> {
        if len == 0 {
            return Err(FrameError::WrongSize { len: 0, size: 1 });
        }
        if len > self.exact_max {
            return Err(FrameError::TooLong {
                len: len as u64,
                max: self.exact_max as u64,
            });
        }
        self.decoder.reset();
        self.exact = Some(Exact { len, progress });
        self.pending_total = (len > self.pending.len()).then_some(len);
        Ok(())
    }

    /// Bytes held of a frame that spans chunks.
    pub fn buffered(&self) -> usize {
        self.pending.len()
    }

    /// Heap bytes the reader holds (its assembly buffer's capacity).
    pub fn capacity(&self) -> usize {
        self.pending.capacity()
    }

    /// Oversized frames skipped so far (discard mode).
    pub fn discarded_frames(&self) -> u64 {
        self.discarded
    }

    /// Decode `data`, the next chunk of the stream, calling `on` for every frame (and
    /// progress report) in order. An error means the stream cannot be framed; the reader
    /// should then be dropped.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        on: &mut impl FnMut(Event<'_>) -> Next,
    ) -> Result<(), FrameError> {
        while !data.is_empty() {
            let keep_going = if self.pending.is_empty() {
                self.feed_direct(&mut data, on)?
            } else {
                self.feed_pending(&mut data, on)?
            };
            if !keep_going {
                return Ok(());
            }
        }
        Ok(())
    }

    fn decode(&mut self, buf: &[u8]) -> Result<Decoded, FrameError> {
        match self.exact {
            Some(x) if buf.len() >= x.len => Ok(Decoded::Frame {
                consumed: x.len,
                payload: 0..x.len,
            }),
            Some(x) => Ok(Decoded::NeedMore {
                frame_len: Some(x.len),
            }),
            None => self.decoder.decode(buf),
        }
    }

    /// Nothing pending: frames inside `data` go out as slices of it.
    fn feed_direct(
        &mut self,
        data: &mut &[u8],
        on: &mut impl FnMut(Event<'_>) -> Next,
    ) -> Result<bool, FrameError> {
        match self.decode(data)? {
            Decoded::Frame { consumed, payload } => {
                self.exact = None;
                let next = on(Event::Frame(&data[payload]));
                *data = &data[consumed.clamp(1, data.len())..];
                self.apply(next)
            }
            Decoded::NeedMore { frame_len } => {
                self.pending_total = frame_len;
                self.pending
                    .reserve_exact(frame_len.unwrap_or(0).max(data.len()));
                self.pending.extend_from_slice(data);
                *data = &[];
                self.progress(on)
            }
            Decoded::Skip { len, oversized } => {
                self.note_skip(oversized);
                *data = &data[len.clamp(1, data.len())..];
                Ok(true)
            }
        }
    }

    /// A frame is partly held: append what it needs from `data` and decode again.
    fn feed_pending(
        &mut self,
        data: &mut &[u8],
        on: &mut impl FnMut(Event<'_>) -> Next,
    ) -> Result<bool, FrameError> {
        let old = self.pending.len();
        let want = match (self.exact, self.pending_total) {
            (Some(x), _) => x.len.saturating_sub(old),
            (None, Some(total)) => total.saturating_sub(old),
            (None, None) => self.decoder.max_frame().saturating_sub(old),
        };
        let take = want.clamp(1, data.len());
        self.pending.extend_from_slice(&data[..take]);
        if !self.progress(on)? {
            return Ok(false);
        }
        let mut buf = std::mem::take(&mut self.pending);
        // On an error `buf` is dropped: nothing more is held.
        let decoded = self.decode(&buf)?;
        let consumed = match decoded {
            Decoded::NeedMore { frame_len } => {
                if let Some(total) = frame_len {
                    buf.reserve_exact(total.saturating_sub(buf.len()));
                }
                self.pending = buf;
                self.pending_total = frame_len;
                *data = &data[take..];
                return Ok(true);
            }
            Decoded::Frame { consumed, payload } => {
                self.exact = None;
                let next = on(Event::Frame(&buf[payload]));
                if !self.apply(next)? {
                    return Ok(false);
                }
                consumed
            }
            Decoded::Skip { len, oversized } => {
                self.note_skip(oversized);
                len
            }
        };
        let consumed = consumed.clamp(1, buf.len());
        self.pending_total = None;
        if consumed >= old {
            // The frame ended inside this chunk: go on from there without a copy; the
            // assembly buffer is freed.
            *data = &data[consumed - old..];
        } else {
            // Older bytes remain (an exact read shorter than what was held): keep them.
            buf.drain(..consumed);
            self.pending = buf;
            *data = &data[take..];
        }
        Ok(true)
    }

    /// Report exact-read progress if asked for.
    fn progress(&mut self, on: &mut impl FnMut(Event<'_>) -> Next) -> Result<bool, FrameError> {
        match self.exact {
            Some(Exact {
                len,
                progress: true,
            }) => {
                let received = self.pending.len().min(len);
                let next = on(Event::Progress {
                    received,
                    total: len,
                });
                self.apply(next)
            }
            _ => Ok(true),
        }
    }

    fn apply(&mut self, next: Next) -> Result<bool, FrameError> {
        match next {
            Next::Continue => Ok(true),
            Next::Stop => Ok(false),
            Next::ReadExact { len, progress } => {
                self.read_exact(len, progress)?;
                Ok(true)
            }
        }
    }

    fn note_skip(&mut self, oversized: Option<u64>) {
        if let Some(len) = oversized {
            self.discarded += 1;
            tracing::debug!(len, "discarding an oversized frame");
        }
    }
}
