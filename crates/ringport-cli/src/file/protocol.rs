//! The file-transfer wire format: one request line, one reply line, raw bytes, and a
//! digest line. Every line ends with `\n` and is at most [`MAX_LINE`] bytes; names are
//! percent-encoded so any byte (NUL included) can be sent, and refused.
//!
//! ```text
//! client: GET <name> <offset> <verify|noverify>\n
//! server: OK <size> <offset> <DIGEST>\n  size-offset bytes  <DIGEST> <hex>\n (verify)
//!       | OK <size> <offset>\n  size-offset bytes (noverify)
//!       | ERR <code> <message>\n
//! client: PUT <name> <size>\n
//! server: READY\n | ERR <code> <message>\n
//! client: size bytes
//! server: DONE <size> <DIGEST> <hex>\n | ERR <code> <message>\n
//! ```

use crate::file::digest::{Digest, DigestKind};
use std::fmt;

/// Longest request or reply line, `\n` excluded.
pub const MAX_LINE: usize = 8 * 1024;

/// Why a request was refused: the code word on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// The line is not a request (unknown verb, missing or bad numbers, a request while
    /// another is under way).
    BadRequest,
    /// The name is empty, has a NUL byte, a bad %-escape, is absolute, or has an empty,
    /// `.` or `..` component.
    BadName,
    /// The name is over 4096 bytes or has a component over 255.
    NameTooLong,
    /// No such file (or a directory on the way is missing or not a directory).
    NotFound,
    /// The name leads outside the root (`..` through a symlink, an absolute symlink, a
    /// magic link).
    OutsideRoot,
    /// Not a regular file: a directory, FIFO, socket, device or symlink where a file
    /// would go.
    NotRegular,
    /// The file system refused (permissions).
    Denied,
    /// `PUT` on a server without `--allow-upload`.
    UploadDisabled,
    /// `PUT` larger than `--max-upload`.
    TooLarge,
    /// `GET` with an offset past the end of the file.
    BadOffset,
    /// No space left on the server's disk.
    DiskFull,
    /// Any other I/O error on the server.
    Io,
}

impl Code {
    /// Every code, in the order the server's summary prints them.
    pub const ALL: [Code; 12] = [
        Code::BadRequest,
        Code::BadName,
        Code::NameTooLong,
        Code::NotFound,
        Code::OutsideRoot,
        Code::NotRegular,
        Code::Denied,
        Code::UploadDisabled,
        Code::TooLarge,
        Code::BadOffset,
        Code::DiskFull,
        Code::Io,
    ];

    /// The code word.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BadRequest => "bad-request",
            Code::BadName => "bad-name",
            Code::NameTooLong => "name-too-long",
            Code::NotFound => "not-found",
            Code::OutsideRoot => "outside-root",
            Code::NotRegular => "not-regular",
            Code::Denied => "denied",
            Code::UploadDisabled => "upload-disabled",
            Code::TooLarge => "too-large",
            Code::BadOffset => "bad-offset",
            Code::DiskFull => "disk-full",
            Code::Io => "io",
        }
    }

    /// The code of a code word.
    pub fn parse(word: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.as_str() == word)
    }

    /// Its index in [`Code::ALL`] (for counters).
    pub fn index(self) -> usize {
        Code::ALL
            .iter()
            .position(|&c| c == self)
            .unwrap_or_default()
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal: a code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: Code,
    pub message: String,
}

impl Refusal {
    pub fn new(code: Code, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
        }
    }

    /// `ERR <code> <message>\n`, the message on one line and cut to fit [`MAX_LINE`].
    pub fn line(&self) -> String {
        let mut message: String = self
            .message
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let room = MAX_LINE - 32;
        if message.len() > room {
            let mut cut = room;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        format!("ERR {} {message}\n", self.code)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// A client's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Send the file from `offset` on; then its digest if `verify`.
    Get {
        name: Vec<u8>,
        offset: u64,
        verify: bool,
    },
    /// Store the `size` bytes that follow `READY` under `name`.
    Put { name: Vec<u8>, size: u64 },
}

impl Request {
    /// The request line, `\n` included.
    pub fn line(&self) -> String {
        match self {
            Request::Get {
                name,
                offset,
                verify,
            } => format!(
                "GET {} {offset} {}\n",
                encode_name(name),
                if *verify { "verify" } else { "noverify" }
            ),
            Request::Put { name, size } => format!("PUT {} {size}\n", encode_name(name)),
        }
    }

    /// Parse a request line (without its `\n`; a `\r` before it is already gone).
    pub fn parse(line: &[u8]) -> Result<Request, Refusal> {
        let bad = |what: &str| Refusal::new(Code::BadRequest, what.to_string());
        let text = std::str::from_utf8(line).map_err(|_| bad("the request is not ASCII"))?;
        let words: Vec<&str> = text.split(' ').collect();
        match words.as_slice() {
            ["GET", name, offset, mode] => Ok(Request::Get {
                name: decode_name(name)?,
                offset: number(offset).ok_or_else(|| bad("the offset is not a number"))?,
                verify: match *mode {
                    "verify" => true,
                    "noverify" => false,
                    _ => return Err(bad("expected verify or noverify")),
                },
            }),
            ["PUT", name, size] => Ok(Request::Put {
                name: decode_name(name)?,
                size: number(size).ok_or_else(|| bad("the size is not a number"))?,
            }),
            [verb, ..] if *verb == "GET" || *verb == "PUT" => Err(bad(
                "expected GET <name> <offset> <verify|noverify> or PUT <name> <size>",
            )),
            _ => Err(bad("unknown request (GET or PUT)")),
        }
    }
}

/// A decimal u64 (digits only: no sign, no spaces).
fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Bytes that go on the wire as they are; every other byte is `%XX`.
fn plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/' | b'+' | b',')
}

/// `name` with every byte but letters, digits and `-_.~/+,` as `%XX`.
pub fn encode_name(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for &b in name {
        if plain(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The bytes of a %-encoded name (the empty name is an empty word: `GET  0 verify`).
pub fn decode_name(text: &str) -> Result<Vec<u8>, Refusal> {
    let bad = |what: &str| Refusal::new(Code::BadName, what.to_string());
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad("a % is not followed by two hex digits"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// A server's reply line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `OK <size> <offset> [<DIGEST>]`: size-offset bytes follow, then (if a digest is
    /// named) the digest of the whole file.
    Ok {
        size: u64,
        offset: u64,
        digest: Option<DigestKind>,
    },
    /// `READY`: send the upload's bytes.
    Ready,
    /// `DONE <size> <DIGEST> <hex>`: the upload is stored under its name.
    Done { size: u64, digest: Digest },
    /// `ERR <code> <message>`.
    Err(Refusal),
}

impl Reply {
    /// Parse a reply line (without its line end).
    pub fn parse(line: &str) -> Result<Reply, String> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let unexpected = || format!("unexpected reply {line:?}");
        if line == "READY" {
            return Ok(Reply::Ready);
        }
        if let Some(rest) = line.strip_prefix("ERR ") {
            let (word, message) = rest.split_once(' ').unwrap_or((rest, ""));
            let code = Code::parse(word).ok_or_else(unexpected)?;
            return Ok(Reply::Err(Refusal::new(code, message)));
        }
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            ["OK", size, offset] => Ok(Reply::Ok {
                size: number(size).ok_or_else(unexpected)?,
                offset: number(offset).ok_or_else(unexpected)?,
                digest: None,
            }),
            ["OK", size, offset, kind] => Ok(Reply::Ok {
                size: number(size).ok_or_else(unexpected)?,
                offset: number(offset).ok_or_else(unexpected)?,
                digest: Some(DigestKind::from_name(kind).ok_or_else(unexpected)?),
            }),
            ["DONE", size, kind, hex] => Ok(Reply::Done {
                size: number(size).ok_or_else(unexpected)?,
                digest: Digest::parse(&format!("{kind} {hex}")).ok_or_else(unexpected)?,
            }),
            _ => Err(unexpected()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_any_byte() {
        let all: Vec<u8> = (0..=255).collect();
        let encoded = encode_name(&all);
        assert!(!encoded.contains(' ') && !encoded.contains('\n'));
        assert_eq!(decode_name(&encoded).unwrap(), all);
        assert_eq!(encode_name(b"dir/a b%.txt"), "dir/a%20b%25.txt");
        assert_eq!(decode_name("a%00b").unwrap(), b"a\0b");
        assert_eq!(decode_name("").unwrap(), b"");
        assert_eq!(
            Request::parse(b"GET  0 verify").unwrap(),
            Request::Get {
                name: Vec::new(),
                offset: 0,
                verify: true
            }
        );
        for bad in ["%", "%4", "%zz", "a%g0"] {
            assert_eq!(decode_name(bad).unwrap_err().code, Code::BadName, "{bad}");
        }
    }

    #[test]
    fn requests_round_trip_and_bad_ones_are_refused() {
        for r in [
            Request::Get {
                name: b"a b/c".to_vec(),
                offset: 17,
                verify: true,
            },
            Request::Get {
                name: b"x".to_vec(),
                offset: 0,
                verify: false,
            },
            Request::Put {
                name: b"up\n".to_vec(),
                size: u64::MAX,
            },
        ] {
            let line = r.line();
            assert!(line.ends_with('\n'));
            assert_eq!(Request::parse(line.trim_end().as_bytes()).unwrap(), r);
        }
        for bad in [
            "",
            "get x 0 verify",
            "GET x 0",
            "GET x -1 verify",
            "GET x 0 maybe",
            "GET x 0x10 verify",
            "PUT x",
            "PUT x 99999999999999999999999",
            "PUT x 1 extra",
            "GET  x 0 verify",
            "GET x 0 verify ",
        ] {
            assert_eq!(
                Request::parse(bad.as_bytes()).unwrap_err().code,
                Code::BadRequest,
                "{bad:?}"
            );
        }
        assert_eq!(
            Request::parse(b"GET %zz 0 verify").unwrap_err().code,
            Code::BadName
        );
    }

    #[test]
    fn replies_parse() {
        assert_eq!(
            Reply::parse("OK 10 3").unwrap(),
            Reply::Ok {
                size: 10,
                offset: 3,
                digest: None
            }
        );
        assert_eq!(
            Reply::parse("OK 10 0 SHA256").unwrap(),
            Reply::Ok {
                size: 10,
                offset: 0,
                digest: Some(DigestKind::Sha256)
            }
        );
        assert!(Reply::parse("OK 10 0 MD5").is_err());
        assert_eq!(Reply::parse("READY").unwrap(), Reply::Ready);
        let hex = "ab".repeat(32);
        assert_eq!(
            Reply::parse(&format!("DONE 5 BLAKE3 {hex}")).unwrap(),
            Reply::Done {
                size: 5,
                digest: Digest {
                    kind: DigestKind::Blake3,
                    hex: hex.clone()
                }
            }
        );
        assert_eq!(
            Reply::parse("ERR not-found no such file: x").unwrap(),
            Reply::Err(Refusal::new(Code::NotFound, "no such file: x"))
        );
        assert!(Reply::parse("ERR nonsense x").is_err());
        assert!(Reply::parse("DONE 5 MD5 abc").is_err());
        assert!(Reply::parse("HELLO").is_err());
    }

    #[test]
    fn codes_and_error_lines() {
        for c in Code::ALL {
            assert_eq!(Code::parse(c.as_str()), Some(c));
            assert_eq!(Code::ALL[c.index()], c);
        }
        let r = Refusal::new(Code::Io, "two\nlines");
        assert_eq!(r.line(), "ERR io two lines\n");
        let long = Refusal::new(Code::BadName, "é".repeat(MAX_LINE));
        assert!(long.line().len() <= MAX_LINE);
    }
}
