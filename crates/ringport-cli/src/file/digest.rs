//! The digest of a transferred file. The server names its algorithm on the wire
//! (`BLAKE3 <hex>`, `SHA256 <hex>`) and the client checks with the one named; which one
//! the server uses is [`DIGEST`], one line.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// The digest the file server computes.
pub const DIGEST: DigestKind = DigestKind::Blake3;

/// Bytes read per `pread` when hashing a file.
const CHUNK: usize = 1024 * 1024;

/// A digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestKind {
    Blake3,
    Sha256,
}

impl DigestKind {
    /// The name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            DigestKind::Blake3 => "BLAKE3",
            DigestKind::Sha256 => "SHA256",
        }
    }

    pub fn from_name(name: &str) -> Option<DigestKind> {
        [DigestKind::Blake3, DigestKind::Sha256]
            .into_iter()
            .find(|k| k.name() == name)
    }

    /// A hasher of this kind, fed nothing yet.
    pub fn hasher(self) -> Hasher {
        match self {
            DigestKind::Blake3 => Hasher::Blake3(Box::new(blake3::Hasher::new())),
            DigestKind::Sha256 => Hasher::Sha256(<sha2::Sha256 as sha2::Digest>::new()),
        }
    }

    /// Hex digits of a digest of this kind.
    fn hex_len(self) -> usize {
        64
    }
}

/// A digest being computed.
pub enum Hasher {
    Blake3(Box<blake3::Hasher>),
    Sha256(sha2::Sha256),
}

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Blake3(h) => {
                h.update(bytes);
            }
            Hasher::Sha256(h) => sha2::Digest::update(h, bytes),
        }
    }

    pub fn finish(self) -> Digest {
        match self {
            Hasher::Blake3(h) => Digest {
                kind: DigestKind::Blake3,
                hex: h.finalize().to_hex().to_string(),
            },
            Hasher::Sha256(h) => Digest {
                kind: DigestKind::Sha256,
                hex: hex(&sha2::Digest::finalize(h)),
            },
        }
    }

    /// Feed it the first `len` bytes of `file` (read with `pread`: the file's position is
    /// left alone). A file shorter than `len` is an `UnexpectedEof` error.
    pub fn update_from_file(&mut self, file: &File, len: u64) -> io::Result<()> {
        self.update_from_file_until(file, len, &|| false)
    }

    /// As [`Hasher::update_from_file`], stopping with an `Interrupted` error once
    /// `cancelled` says so (checked between reads).
    pub fn update_from_file_until(
        &mut self,
        file: &File,
        len: u64,
        cancelled: &dyn Fn() -> bool,
    ) -> io::Result<()> {
        let mut buf = vec![0u8; CHUNK];
        let mut at = 0u64;
        while at < len {
            if cancelled() {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "cancelled"));
            }
            let want = usize::try_from((len - at).min(CHUNK as u64)).unwrap_or(CHUNK);
            let n = match file.read_at(&mut buf[..want], at) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the file ended at {at} of {len} bytes"),
                    ))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.update(&buf[..n]);
            at += n as u64;
        }
        Ok(())
    }
}

/// The digest of the first `len` bytes of `file`.
pub fn digest_file(kind: DigestKind, file: &File, len: u64) -> io::Result<Digest> {
    let mut hasher = kind.hasher();
    hasher.update_from_file(file, len)?;
    Ok(hasher.finish())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A finished digest: its algorithm and lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub kind: DigestKind,
    pub hex: String,
}

impl Digest {
    /// Parse `<NAME> <hex>` (as [`Digest`]'s `Display` writes it).
    pub fn parse(text: &str) -> Option<Digest> {
        let (name, hex) = text.trim_end().split_once(' ')?;
        let kind = DigestKind::from_name(name)?;
        let valid = hex.len() == kind.hex_len()
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        valid.then(|| Digest {
            kind,
            hex: hex.to_string(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.name(), self.hex)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn known_answers() {
        let mut h = DigestKind::Sha256.hasher();
        h.update(b"abc");
        assert_eq!(
            h.finish().hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut h = DigestKind::Blake3.hasher();
        h.update(b"");
        assert_eq!(
            h.finish().hex,
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    #[test]
    fn a_file_hashes_like_its_bytes_and_short_files_fail() {
        let dir = tempfile::tempdir_in("/dev/shm").unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i * 7) as u8).collect();
        File::create(&path).unwrap().write_all(&data).unwrap();
        let file = File::open(&path).unwrap();
        for kind in [DigestKind::Blake3, DigestKind::Sha256] {
            let mut h = kind.hasher();
            h.update(&data[..CHUNK + 5]);
            assert_eq!(
                digest_file(kind, &file, (CHUNK + 5) as u64).unwrap(),
                h.finish()
            );
        }
        let err = digest_file(DIGEST, &file, data.len() as u64 + 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn digests_print_and_parse() {
        let d = digest_file(DigestKind::Blake3, &File::open("/dev/null").unwrap(), 0).unwrap();
        assert_eq!(Digest::parse(&d.to_string()), Some(d.clone()));
        assert!(d.to_string().starts_with("BLAKE3 "));
        assert_eq!(Digest::parse("BLAKE3 abc"), None);
        assert_eq!(Digest::parse(&format!("MD5 {}", d.hex)), None);
        assert_eq!(
            Digest::parse(&format!("BLAKE3 {}", d.hex.to_uppercase())),
            None
        );
    }
}
