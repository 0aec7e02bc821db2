//! A server whose protocol is a codec written here, not one of ringport's: each frame is
//! a LEB128 varint payload length (at most 10 bytes) followed by the payload, at most
//! 1 MiB. It echoes every frame back, re-encoded. A frame announcing more than 1 MiB
//! closes its connection with `CloseReason::FrameTooLong`, a varint longer than 10 bytes
//! with `CloseReason::Protocol(FrameError::Malformed(..))`; other connections go on.
//!
//! Run: `cargo run --release -p ringport --example varint_echo -- 127.0.0.1:7008`
//! (prints `listening on ADDR` once bound; serves until killed).

use ringport::codec::{Codec, Decoded, Decoder, Encoder, FrameError};
use ringport::{CloseReason, Conn, Handler, Server};

/// The largest payload a frame may announce.
pub const MAX_PAYLOAD: usize = 1 << 20;
/// The longest varint: 10 bytes carry 70 bits, enough for any `u64`.
pub const MAX_VARINT: usize = 10;

/// The varint-length format. It has no state between frames (a `NeedMore` simply looks
/// again at the grown input), so one value serves as codec and as every connection's
/// decoder: `Codec::custom` clones it per connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct VarintCodec;

impl Decoder for VarintCodec {
    fn decode(&mut self, buf: &[u8]) -> Result<Decoded, FrameError> {
        // Up to 10 bytes of 7 bits each: at most 70 bits, exact in a u128.
        let mut value: u128 = 0;
        for (i, &byte) in buf.iter().take(MAX_VARINT).enumerate() {
            value |= u128::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 != 0 {
                continue;
            }
            let header = i + 1;
            let Some(len) = usize::try_from(value).ok().filter(|&l| l <= MAX_PAYLOAD) else {
                return Err(FrameError::TooLong {
                    len: u64::try_from(value).unwrap_or(u64::MAX),
                    max: MAX_PAYLOAD as u64,
                });
            };
            // header <= 10 and len <= 1 MiB: no overflow.
            let total = header + len;
            if buf.len() < total {
                return Ok(Decoded::NeedMore {
                    frame_len: Some(total),
                });
            }
            return Ok(Decoded::Frame {
                consumed: total,
                payload: header..total,
            });
        }
        if buf.len() >= MAX_VARINT {
            return Err(FrameError::Malformed("varint longer than 10 bytes"));
        }
        // The varint goes on past what has arrived.
        Ok(Decoded::NeedMore { frame_len: None })
    }

    fn max_frame(&self) -> usize {
        MAX_VARINT + MAX_PAYLOAD
    }
}

impl Encoder for VarintCodec {
    fn encode(&self, payload: &[u8], dst: &mut Vec<u8>) -> Result<(), FrameError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(FrameError::TooLong {
                len: payload.len() as u64,
                max: MAX_PAYLOAD as u64,
            });
        }
        let mut len = payload.len();
        dst.reserve(MAX_VARINT + payload.len());
        while len >= 0x80 {
            dst.push((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        dst.push(len as u8);
        dst.extend_from_slice(payload);
        Ok(())
    }
}

/// Echoes every frame back, framed again by the connection's codec.
pub struct VarintEcho;

impl Handler for VarintEcho {
    type Session = ();

    fn on_open(&self, _conn: &mut Conn) {}

    fn on_data(&self, _session: &mut (), conn: &mut Conn, frame: &[u8]) {
        // A decoded frame is at most 1 MiB, so it always encodes again.
        if let Err(e) = conn.send_frame(frame) {
            eprintln!("{}: cannot echo: {e}", conn.id());
            conn.close();
        }
    }

    fn on_close(&self, _session: (), _conn: &Conn, _why: CloseReason) {}
}

/// Start the varint echo server on `addr`.
pub fn start(addr: &str) -> Result<Server<VarintEcho>, ringport::Error> {
    Server::builder()
        .listen(addr)?
        .codec(Codec::custom(VarintCodec))
        .start(VarintEcho)
}

#[allow(dead_code)] // the integration test includes this file for `start` and the codec
fn main() -> Result<(), ringport::Error> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7008".into());
    let server = start(&addr)?;
    for addr in server.local_addrs() {
        println!("listening on {addr}");
    }
    loop {
        std::thread::park();
    }
}
