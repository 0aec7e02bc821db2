//! User-written codecs: a [`Decoder`] made fresh for every connection and an
//! [`Encoder`] shared by all of them, behind one cheap-to-clone handle.

use super::{Decoded, Decoder, Encoder, FrameError};
use std::fmt;
use std::sync::Arc;

/// What the engine needs from a user codec (object-safe, shared across workers).
trait MakeCodec: Send + Sync {
    fn decoder(&self) -> Box<dyn Decoder + Send>;
    fn encode(&self, payload: &[u8], dst: &mut Vec<u8>) -> Result<(), FrameError>;
}

/// `Codec::custom`: one value that is both; each connection decodes with a clone.
struct Cloned<C>(C);

impl<C> MakeCodec for Cloned<C>
where
    C: Decoder + Encoder + Clone + Send + Sync + 'static,
{
    fn decoder(&self) -> Box<dyn Decoder + Send> {
        Box::new(self.0.clone())
    }

    fn encode(&self, payload: &[u8], dst: &mut Vec<u8>) -> Result<(), FrameError> {
        self.0.encode(payload, dst)
    }
}

/// `Codec::custom_with`: a decoder factory and a separate encoder.
struct Parts<F, E> {
    make: F,
    encoder: E,
}

impl<F, D, E> MakeCodec for Parts<F, E>
where
    F: Fn() -> D + Send + Sync + 'static,
    D: Decoder + Send + 'static,
    E: Encoder + Send + Sync + 'static,
{
    fn decoder(&self) -> Box<dyn Decoder + Send> {
        Box::new((self.make)())
    }

    fn encode(&self, payload: &[u8], dst: &mut Vec<u8>) -> Result<(), FrameError> {
        self.encoder.encode(payload, dst)
    }
}

/// A user-written frame format (see [`super::Codec::custom`]): a factory of per-connection
/// decoders and an encoder, shared by every worker. Cheap to clone; two handles are equal
/// when they are clones of one another.
#[derive(Clone)]
pub struct CustomCodec {
    inner: Arc<dyn MakeCodec>,
    /// The decoders' maximum frame, read once from a first decoder.
    max_frame: usize,
    name: &'static str,
}

impl CustomCodec {
    pub(super) fn from_codec<C>(codec: C) -> CustomCodec
    where
        C: Decoder + Encoder + Clone + Send + Sync + 'static,
    {
        CustomCodec::new(Cloned(codec), std::any::type_name::<C>())
    }

    pub(super) fn from_parts<F, D, E>(make: F, encoder: E) -> CustomCodec
    where
        F: Fn() -> D + Send + Sync + 'static,
        D: Decoder + Send + 'static,
        E: Encoder + Send + Sync + 'static,
    {
        CustomCodec::new(Parts { make, encoder }, std::any::type_name::<D>())
    }

    fn new(inner: impl MakeCodec + 'static, name: &'static str) -> CustomCodec {
        let max_frame = inner.decoder().max_frame();
        CustomCodec {
            inner: Arc::new(inner),
            max_frame,
            name,
        }
    }

    /// A fresh decoder for one connection.
    pub fn decoder(&self) -> CustomDecoder {
        CustomDecoder(self.inner.decoder())
    }

    /// Append the framed `payload` to `dst`; on error nothing is appended (whatever the
    /// user's encoder left behind is cut off).
    pub fn encode(&self, payload: &[u8], dst: &mut Vec<u8>) -> Result<(), FrameError> {
        let before = dst.len();
        let result = self.inner.encode(payload, dst);
        if result.is_err() {
            dst.truncate(before);
        }
        result
    }

    /// The longest frame its decoders assemble (what a first decoder announced).
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// The decoder's type name (for logs and `Debug`).
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl PartialEq for CustomCodec {
    fn eq(&self, other: &CustomCodec) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for CustomCodec {}

impl fmt::Debug for CustomCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomCodec")
            .field("decoder", &self.name)
            .field("max_frame", &self.max_frame)
            .finish()
    }
}

/// One connection's state of a [`CustomCodec`]'s decoder.
pub struct CustomDecoder(Box<dyn Decoder + Send>);

impl Decoder for CustomDecoder {
    #[inline]
    fn decode(&mut self, buf: &[u8]) -> Result<Decoded, FrameError> {
        self.0.decode(buf)
    }

    fn max_frame(&self) -> usize {
        self.0.max_frame()
    }

    fn reset(&mut self) {
        self.0.reset()
    }
}

impl fmt::Debug for CustomDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CustomDecoder")
    }
}
