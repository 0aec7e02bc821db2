//! The download request line shared by `sendfile-server` and `get`, the same
//! one the ringport file server (`ringport file-server`) speaks for a download
//! without a digest:
//!
//! ```text
//! client: GET <name> <offset> noverify\n
//! server: OK <size> <offset>\n      then bytes offset..size of the file
//!         ERR <reason>\n            and the connection is closed
//! ```
//!
//! `<size>` is the whole file's size and `<offset>` echoes the request, so
//! `size - offset` bytes follow the header. `<name>` is percent-encoded: any
//! byte outside `A-Z a-z 0-9 - . _ ~` travels as `%XX` (two hex digits).

/// Longest request or header line read, newline included.
pub const MAX_LINE: usize = 4096;

/// `name` with every byte outside the unreserved set as `%XX`.
pub fn encode_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for &b in name.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The bytes `encoded` stands for, or None when a `%` is not followed by two
/// hex digits.
pub fn decode_name(encoded: &str) -> Option<Vec<u8>> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in ["plain.bin", "a b/c%d", "ünï", ""] {
            let encoded = encode_name(name);
            assert!(!encoded.contains([' ', '/', '\n']));
            assert_eq!(decode_name(&encoded).unwrap(), name.as_bytes());
        }
        assert_eq!(encode_name("a b"), "a%20b");
        assert_eq!(decode_name("%2f%2F").unwrap(), b"//");
        assert!(decode_name("%2").is_none());
        assert!(decode_name("%zz").is_none());
    }
}
