//! `FrameReader`: drives a decoder over received chunks, handing out frames that lie in
//! one chunk as slices of it and assembling only frames that span chunks.
//!
//! Memory (DESIGN.md invariant 2): the assembly buffer grows with the bytes that arrived,
//! never with what a header announces. A growth reserves what is in hand, or doubles the
//! buffer, whichever is more, and never beyond the length of the frame being assembled
//! (when known) or the decoder's maximum frame; so a frame of `n` bytes in small chunks
//! costs O(n) copying and under 2·n of allocations in total, and a peer that announces
//! 8 MiB and sends 4 KiB makes the reader hold about 4 KiB.

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
    /// Stop decoding and hold the rest of this chunk: the next [`FrameReader::feed`]
    /// decodes it first (typically after [`FrameReader::set_decoder`] switched formats).
    Hold,
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

/// Frames a byte stream fed in arbitrary chunks.
///
/// Memory: nothing while no frame is partly received; otherwise one assembly buffer that
/// grows with the bytes received (see the module docs), never larger than the frame being
/// assembled or the decoder's maximum frame, and freed once nothing is held.
/// [`FrameReader::held_bytes`] says how much that is at any moment.
#[derive(Debug)]
pub struct FrameReader<D> {
    decoder: D,
    /// Received bytes not yet delivered: `pending[head..]` (the start of a frame that spans
    /// chunks, and bytes behind it left over by a short exact read).
    pending: Vec<u8>,
    /// Bytes at the start of `pending` already delivered or skipped.
    head: usize,
    /// The length the held bytes must reach before the decoder can progress, if known.
    pending_total: Option<usize>,
    /// The held bytes were decoded as they are and need more input: decode again only
    /// once bytes are appended (or an exact read changes the question).
    need_more: bool,
    /// An exact read in force for the next frame.
    exact: Option<Exact>,
    /// Longest exact read allowed.
    exact_max: usize,
    /// Oversized frames skipped (discard mode).
    discarded: u64,
    /// The callback answered [`Next::Hold`]: the rest of the chunk is to be held.
    hold: bool,
}

/// Bytes of `data` appended to the assembly buffer in this step, to go back to `data`
/// (zero-copy) if the frame ends before them.
struct Appended<'a> {
    /// The chunk before the append.
    from: &'a [u8],
    /// Bytes held before the append.
    old: usize,
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
            head: 0,
            pending_total: None,
            need_more: false,
            exact: None,
            exact_max,
            discarded: 0,
            hold: false,
        }
    }

    /// Decode the bytes from here on with `decoder` (a connection switching formats
    /// mid-stream), whose exact reads may be up to `exact_max` bytes. Bytes held and not
    /// yet delivered are decoded again by the new decoder at the next
    /// [`FrameReader::feed`] (an empty one will do); an exact read in force stays.
    pub fn set_decoder(&mut self, decoder: D, exact_max: usize) {
        self.decoder = decoder;
        self.exact_max = exact_max;
        self.pending_total = None;
        self.need_more = false;
    }

    /// The decoder in use.
    pub fn decoder(&self) -> &D {
        &self.decoder
    }

    /// Make the next frame exactly `len` bytes (1 to the exact-read maximum). Bytes already
    /// held count towards it; when they are enough, the next [`FrameReader::feed`] (an
    /// empty one will do) delivers it.
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
        self.pending_total = None;
        // The held bytes must be looked at again: they may hold the whole read.
        self.need_more = false;
        Ok(())
    }

    /// Bytes received and not yet delivered (held in the assembly buffer).
    pub fn buffered(&self) -> usize {
        self.pending.len() - self.head
    }

    /// Heap bytes the reader holds now: its assembly buffer's capacity. Zero while no
    /// frame is partly received. It grows only with bytes actually received (at most about
    /// twice [`FrameReader::buffered`], and never above the frame being assembled or the
    /// decoder's maximum frame) and drops to zero when the frame is delivered, so a
    /// caller can bound the memory of partly assembled frames over many readers by
    /// summing this after each [`FrameReader::feed`]. Cheap (a field read).
    pub fn held_bytes(&self) -> usize {
        self.pending.capacity()
    }

    /// The same as [`FrameReader::held_bytes`] (the older name).
    pub fn capacity(&self) -> usize {
        self.held_bytes()
    }

    /// Oversized frames skipped so far (discard mode).
    pub fn discarded_frames(&self) -> u64 {
        self.discarded
    }

    /// Decode `data`, the next chunk of the stream, calling `on` for every frame (and
    /// progress report) in order. An error means the stream cannot be framed; the reader
    /// should then be dropped.
    ///
    /// Bytes already held are decoded first, so every delivery that is complete with
    /// what the reader holds goes out in this call, whatever `data` is. In particular
    /// `feed(&[], on)` (an empty chunk) delivers what became deliverable without a
    /// receive: an exact read asked with [`FrameReader::read_exact`] outside `feed` (from
    /// a timer, say) that the held bytes satisfy, and the frames held behind it. With
    /// nothing deliverable it calls `on` not at all and changes nothing.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        on: &mut impl FnMut(Event<'_>) -> Next,
    ) -> Result<(), FrameError> {
        loop {
            let keep_going = if self.buffered() > 0 {
                if self.need_more && data.is_empty() {
                    return Ok(());
                }
                self.feed_held(&mut data, on)?
            } else if data.is_empty() {
                return Ok(());
            } else {
                self.feed_direct(&mut data, on)?
            };
            if !keep_going {
                if std::mem::take(&mut self.hold) && !data.is_empty() {
                    // Behind the held bytes, if any: the stream's order is kept.
                    self.append(data);
                    self.need_more = false;
                }
                return Ok(());
            }
        }
    }

    /// Keep `bytes` behind the held ones without decoding them (the connection may take
    /// no delivery now); the next [`FrameReader::feed`] decodes them first.
    pub(crate) fn hold(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.append(bytes);
            self.need_more = false;
        }
    }

    /// Hand up to `max` of the held bytes, oldest first, to `take` (which says how many
    /// it took) and forget those: a receive into a file takes the bytes received behind
    /// the frame that announced it. What stays is decoded afresh.
    pub(crate) fn take_held(&mut self, max: usize, take: impl FnOnce(&[u8]) -> usize) {
        let end = self.head + self.buffered().min(max);
        let n = take(&self.pending[self.head..end]);
        self.head += n.min(end - self.head);
        if self.buffered() == 0 {
            self.free();
        }
        self.decoder.reset();
        self.pending_total = None;
        self.need_more = false;
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
            None => {
                let decoded = self.decoder.decode(buf)?;
                if let Decoded::NeedMore { frame_len } = decoded {
                    self.check_max(buf.len(), frame_len)?;
                }
                Ok(decoded)
            }
        }
    }

    /// The decoder's maximum frame, enforced whatever the decoder: it may not ask to hold
    /// more than that (a header announcing more, or no frame yet in a maximal input).
    fn check_max(&self, held: usize, frame_len: Option<usize>) -> Result<(), FrameError> {
        let max = self.decoder.max_frame();
        let len = match frame_len {
            Some(len) if len > max => len,
            _ if held >= max && max < usize::MAX => held,
            _ => return Ok(()),
        };
        Err(FrameError::TooLong {
            len: len as u64,
            max: max as u64,
        })
    }

    /// Nothing held: frames inside `data` go out as slices of it.
    fn feed_direct(
        &mut self,
        data: &mut &[u8],
        on: &mut impl FnMut(Event<'_>) -> Next,
    ) -> Result<bool, FrameError> {
        match self.decode(data)? {
            Decoded::Frame { consumed, payload } => {
                self.exact = None;
                let consumed = consumed.clamp(1, data.len());
                let next = on(Event::Frame(&data[within(payload, consumed)]));
                *data = &data[consumed..];
                self.apply(next)
            }
            Decoded::NeedMore { frame_len } => {
                // Hold what is in hand, and only that: the announced length is a bound
                // for later growth, not a reservation.
                self.pending_total = frame_len;
                self.need_more = true;
                self.append(data);
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

    /// Bytes are held: if the decoder already said they are not enough, append what the
    /// pending delivery needs from `data`; then decode the held bytes.
    fn feed_held(
        &mut self,
        data: &mut &[u8],
        on: &mut impl FnMut(Event<'_>) -> Next,
    ) -> Result<bool, FrameError> {
        let mut appended = None;
        if self.need_more {
            let old = self.buffered();
            let take = self.want(old).clamp(1, data.len());
            appended = Some(Appended { from: data, old });
            self.append(&data[..take]);
            *data = &data[take..];
            self.need_more = false;
            if !self.progress(on)? {
                return Ok(false);
            }
        }
        let buf = std::mem::take(&mut self.pending);
        let decoded = match self.decode(&buf[self.head..]) {
            Ok(decoded) => decoded,
            Err(e) => {
                // `buf` is dropped: nothing more is held (and `buffered` says so).
                self.free();
                return Err(e);
            }
        };
        let consumed = match decoded {
            Decoded::NeedMore { frame_len } => {
                self.pending = buf;
                self.pending_total = frame_len;
                self.need_more = true;
                return Ok(true);
            }
            Decoded::Frame { consumed, payload } => {
                self.exact = None;
                let consumed = consumed.clamp(1, buf.len() - self.head);
                let frame = &buf[self.head..][within(payload, consumed)];
                let next = on(Event::Frame(frame));
                self.pending = buf;
                self.consume(consumed, appended, data);
                if !self.apply(next)? {
                    return Ok(false);
                }
                return Ok(true);
            }
            Decoded::Skip { len, oversized } => {
                self.note_skip(oversized);
                len.clamp(1, buf.len() - self.head)
            }
        };
        self.pending = buf;
        self.consume(consumed, appended, data);
        Ok(true)
    }

    /// The first `consumed` held bytes are delivered or skipped. If the delivery reached
    /// into the bytes appended from `data` in this step, the rest of those go back to
    /// `data` (decoded from the chunk, without a copy) and the buffer is freed.
    fn consume<'a>(
        &mut self,
        consumed: usize,
        appended: Option<Appended<'a>>,
        data: &mut &'a [u8],
    ) {
        self.pending_total = None;
        match appended {
            Some(Appended { from, old }) if consumed >= old => {
                *data = &from[consumed - old..];
                self.free();
            }
            _ => {
                self.head += consumed;
                self.trim();
            }
        }
    }

    /// Input the pending delivery needs beyond the `held` bytes (at least what the decoder
    /// asked for; up to the maximum frame when it does not know).
    fn want(&self, held: usize) -> usize {
        match (self.exact, self.pending_total) {
            (Some(x), _) => x.len.saturating_sub(held),
            (None, Some(total)) => total.saturating_sub(held),
            (None, None) => self.decoder.max_frame().saturating_sub(held),
        }
    }

    /// The most the assembly buffer may need to hold for the pending delivery.
    fn bound(&self) -> usize {
        match (self.exact, self.pending_total) {
            (Some(x), _) => x.len,
            (None, Some(total)) => total,
            (None, None) => self.decoder.max_frame(),
        }
    }

    /// Hold `bytes` after the held ones, growing the buffer with what arrives.
    fn append(&mut self, bytes: &[u8]) {
        let held = self.buffered();
        let spare = self.pending.capacity() - self.pending.len();
        if self.head > 0 && (self.head >= held || spare < bytes.len()) {
            // Drop delivered bytes first (amortized: only once they are as many as the
            // held ones, or the buffer would grow anyway).
            self.pending.drain(..self.head);
            self.head = 0;
        }
        let spare = self.pending.capacity() - self.pending.len();
        if spare < bytes.len() {
            let need = held + bytes.len();
            let doubled = self.pending.capacity().saturating_mul(2).min(self.bound());
            let target = need.max(doubled);
            self.pending.reserve_exact(target - self.pending.len());
        }
        self.pending.extend_from_slice(bytes);
    }

    /// After a delivery from the held bytes: free the buffer if nothing is left, and give
    /// memory back if what is left uses less than half of it.
    fn trim(&mut self) {
        let held = self.buffered();
        if held == 0 {
            self.free();
        } else if held < self.pending.capacity() / 2 {
            let mut kept = Vec::with_capacity(held);
            kept.extend_from_slice(&self.pending[self.head..]);
            self.pending = kept;
            self.head = 0;
        }
    }

    fn free(&mut self) {
        self.pending = Vec::new();
        self.head = 0;
        self.need_more = false;
    }

    /// Report exact-read progress if asked for.
    fn progress(&mut self, on: &mut impl FnMut(Event<'_>) -> Next) -> Result<bool, FrameError> {
        match self.exact {
            Some(Exact {
                len,
                progress: true,
            }) => {
                let received = self.buffered().min(len);
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
            Next::Hold => {
                self.hold = true;
                Ok(false)
            }
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

/// A decoder's payload range, kept inside the `consumed` bytes it came with (a decoder
/// that breaks the contract gets a shorter payload, never an out-of-bounds slice).
fn within(payload: std::ops::Range<usize>, consumed: usize) -> std::ops::Range<usize> {
    let end = payload.end.min(consumed);
    payload.start.min(end)..end
}
