//! The endpoint's HTTP/1.1: routing a request head to an [`Answer`] and writing the
//! response. Pure functions of bytes; the connection handling is in `session.rs`.

use super::CONTENT_TYPE;

/// An answer's status line and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Answer {
    /// 200 with the metrics; no body for `HEAD`.
    Metrics {
        head_only: bool,
    },
    NotFound,
    MethodNotAllowed,
    BadRequest,
    HeadTooLarge,
}

/// The whole HTTP/1.1 response for `answer`; `metrics` renders the body of a `200`
/// (and runs only for one).
pub(super) fn respond(answer: &Answer, metrics: impl FnOnce() -> String) -> Vec<u8> {
    let (status, extra, body, head_only) = match answer {
        Answer::Metrics { head_only } => ("200 OK", "", metrics(), *head_only),
        Answer::NotFound => (
            "404 Not Found",
            "",
            "not found: try /metrics\n".into(),
            false,
        ),
        Answer::MethodNotAllowed => (
            "405 Method Not Allowed",
            "Allow: GET, HEAD\r\n",
            "method not allowed\n".into(),
            false,
        ),
        Answer::BadRequest => ("400 Bad Request", "", "bad request\n".into(), false),
        Answer::HeadTooLarge => (
            "431 Request Header Fields Too Large",
            "",
            "request head too large\n".into(),
            false,
        ),
    };
    let content_type = match answer {
        Answer::Metrics { .. } => CONTENT_TYPE,
        _ => "text/plain; charset=utf-8",
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         {extra}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// Where `\r\n\r\n` ends in `bytes`, if it is there.
pub(super) fn find_blank_line(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// The answer to a complete request head.
pub(super) fn route(head: &[u8]) -> Answer {
    let line_end = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(head.len());
    let mut parts = head[..line_end].split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Answer::BadRequest;
    };
    let is_token = |s: &[u8]| !s.is_empty() && s.iter().all(|b| b.is_ascii_uppercase());
    if !is_token(method) || !target.starts_with(b"/") || !version.starts_with(b"HTTP/1.") {
        return Answer::BadRequest;
    }
    let head_only = match method {
        b"GET" => false,
        b"HEAD" => true,
        _ => return Answer::MethodNotAllowed,
    };
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    match path {
        b"/metrics" | b"/" => Answer::Metrics { head_only },
        _ => Answer::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Stats;

    #[test]
    fn requests_are_routed_by_method_and_path() {
        let cases: [(&[u8], Answer); 11] = [
            (
                b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                Answer::Metrics { head_only: false },
            ),
            (
                b"GET / HTTP/1.0\r\n\r\n",
                Answer::Metrics { head_only: false },
            ),
            (
                b"GET /metrics?x=1 HTTP/1.1\r\n\r\n",
                Answer::Metrics { head_only: false },
            ),
            (
                b"HEAD /metrics HTTP/1.1\r\n\r\n",
                Answer::Metrics { head_only: true },
            ),
            (b"GET /other HTTP/1.1\r\n\r\n", Answer::NotFound),
            (b"GET /metrics/x HTTP/1.1\r\n\r\n", Answer::NotFound),
            (b"POST /metrics HTTP/1.1\r\n\r\n", Answer::MethodNotAllowed),
            (b"DELETE / HTTP/1.1\r\n\r\n", Answer::MethodNotAllowed),
            (b"GET /metrics\r\n\r\n", Answer::BadRequest),
            (b"GET  /metrics HTTP/1.1\r\n\r\n", Answer::BadRequest),
            (b"\x16\x03\x01 / HTTP/1.1\r\n\r\n", Answer::BadRequest),
        ];
        for (head, want) in cases {
            assert_eq!(route(head), want, "{:?}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn responses_carry_length_type_and_close() {
        let metrics = || {
            super::super::render(&Stats {
                accepted: 7,
                ..Stats::default()
            })
        };
        let ok =
            String::from_utf8(respond(&Answer::Metrics { head_only: false }, metrics)).unwrap();
        let (head, body) = ok.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(head.contains("\r\nContent-Type: text/plain; version=0.0.4\r\n"));
        assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())));
        assert!(head.ends_with("\r\nConnection: close"));
        assert!(body.contains("\nringport_accepted_total 7\n"), "{body}");

        let head_only = respond(&Answer::Metrics { head_only: true }, metrics);
        assert!(head_only.ends_with(b"\r\n\r\n"));
        let not_allowed = String::from_utf8(respond(&Answer::MethodNotAllowed, metrics)).unwrap();
        assert!(not_allowed.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(not_allowed.contains("\r\nAllow: GET, HEAD\r\n"));
        let too_large = String::from_utf8(respond(&Answer::HeadTooLarge, metrics)).unwrap();
        assert!(too_large.starts_with("HTTP/1.1 431 "));
    }

    #[test]
    fn the_blank_line_is_found_where_it_ends() {
        assert_eq!(find_blank_line(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(find_blank_line(b"GET / HTTP/1.1\r\n"), None);
        assert_eq!(find_blank_line(b"\r\n\r\n"), Some(4));
    }
}
