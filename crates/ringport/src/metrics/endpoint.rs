//! [`MetricsServer`]: the HTTP endpoint answering scrapes, on a one-worker ringport
//! server of its own.

use super::{render, CONTENT_TYPE};
use crate::config::{EngineConfig, Timeouts};
use crate::conn::Conn;
use crate::error::{CloseReason, Error};
use crate::handler::Handler;
use crate::server::Server;
use crate::stats::Stats;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// Longest request head (request line and headers, with the blank line) the endpoint
/// reads; a longer one gets `431 Request Header Fields Too Large`.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// Where the endpoint takes its snapshots from.
type Source = Box<dyn Fn() -> Stats + Send + Sync + 'static>;

/// An HTTP endpoint serving [`render`] of a stats source at `/metrics` (and `/`).
///
/// It runs on a ringport server of its own with one worker. Each connection gets one
/// answer (`Connection: close`): `200` with the metrics for `GET` or `HEAD` of
/// `/metrics` or `/`, `404` for another path, `405` for another method, `400` for a
/// request line that is not HTTP, `431` for a request head over [`MAX_REQUEST_HEAD`]
/// bytes. The endpoint then ends its side (FIN) and closes once the client has closed
/// its own; connections silent for 10 s are closed, as are more than 256 at once.
pub struct MetricsServer {
    server: Server<Endpoint>,
}

impl MetricsServer {
    /// Listen on `addr` (port 0 picks a free port) and answer every scrape with
    /// `render(&source())`. `source` runs on the endpoint's worker thread, once per
    /// request.
    pub fn start(
        addr: SocketAddr,
        source: impl Fn() -> Stats + Send + Sync + 'static,
    ) -> Result<MetricsServer, Error> {
        let config = EngineConfig {
            workers: 1,
            ring_entries: 64,
            cq_entries: 512,
            recv_buffers: 32,
            recv_buffer_size: 4096,
            ..EngineConfig::default()
        };
        let quiet = Some(Duration::from_secs(10));
        let server = Server::builder()
            .config(config)
            .listen(addr)?
            .timeouts(Timeouts {
                first_data: quiet,
                idle: quiet,
                read: None,
                write: quiet,
                heartbeat: None,
            })
            .max_connections(256)
            .start(Endpoint {
                source: Box::new(source),
            })?;
        Ok(MetricsServer { server })
    }

    /// The bound address (with the port resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addrs()[0]
    }

    /// Stop accepting, give answers in flight a second to leave, and stop the worker.
    pub fn shutdown(self) {
        self.server.shutdown(Duration::from_secs(1));
    }
}

impl fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsServer")
            .field("local_addr", &self.local_addr())
            .finish()
    }
}

/// The endpoint's handler: collect the request head, answer once, close.
struct Endpoint {
    source: Source,
}

/// One connection's request: the head read so far, until it is answered.
#[derive(Default)]
struct Request {
    head: Vec<u8>,
    answered: bool,
}

/// An answer's status line and body.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// 200 with the metrics; no body for `HEAD`.
    Metrics {
        head_only: bool,
    },
    NotFound,
    MethodNotAllowed,
    BadRequest,
    HeadTooLarge,
}

impl Handler for Endpoint {
    type Session = Request;

    fn on_open(&self, _conn: &mut Conn) -> Request {
        Request::default()
    }

    fn on_data(&self, req: &mut Request, conn: &mut Conn, data: &[u8]) {
        if req.answered {
            return; // a body or a pipelined request: the answer is on its way, then close
        }
        // The blank line may straddle two receives: look from three bytes back.
        let scan_from = req.head.len().saturating_sub(3);
        let room = MAX_REQUEST_HEAD - req.head.len();
        req.head.extend_from_slice(&data[..data.len().min(room)]);
        let answer = if let Some(end) = find_blank_line(&req.head[scan_from..]) {
            route(&req.head[..scan_from + end])
        } else if req.head.len() >= MAX_REQUEST_HEAD {
            Answer::HeadTooLarge
        } else {
            return;
        };
        req.answered = true;
        req.head = Vec::new();
        conn.send(&self.respond(&answer));
        // A lingering close: send FIN after the answer and read on (discarding) until
        // the client closes. Closing outright with a request body still unread would
        // make the kernel reset the connection, which can destroy the answer in flight.
        conn.shutdown_write();
    }

    fn on_eof(&self, _req: &mut Request, conn: &mut Conn) {
        conn.close();
    }

    fn on_close(&self, _req: Request, _conn: &Conn, _why: CloseReason) {}
}

impl Endpoint {
    /// The whole HTTP/1.1 response for `answer`.
    fn respond(&self, answer: &Answer) -> Vec<u8> {
        let (status, extra, body, head_only) = match answer {
            Answer::Metrics { head_only } => ("200 OK", "", render(&(self.source)()), *head_only),
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
}

/// Where `\r\n\r\n` ends in `bytes`, if it is there.
fn find_blank_line(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// The answer to a complete request head.
fn route(head: &[u8]) -> Answer {
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
        let endpoint = Endpoint {
            source: Box::new(|| Stats {
                accepted: 7,
                ..Stats::default()
            }),
        };
        let ok =
            String::from_utf8(endpoint.respond(&Answer::Metrics { head_only: false })).unwrap();
        let (head, body) = ok.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(head.contains("\r\nContent-Type: text/plain; version=0.0.4\r\n"));
        assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())));
        assert!(head.ends_with("\r\nConnection: close"));
        assert!(body.contains("\nringport_accepted_total 7\n"), "{body}");

        let head_only = endpoint.respond(&Answer::Metrics { head_only: true });
        assert!(head_only.ends_with(b"\r\n\r\n"));
        let not_allowed = String::from_utf8(endpoint.respond(&Answer::MethodNotAllowed)).unwrap();
        assert!(not_allowed.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(not_allowed.contains("\r\nAllow: GET, HEAD\r\n"));
        let too_large = String::from_utf8(endpoint.respond(&Answer::HeadTooLarge)).unwrap();
        assert!(too_large.starts_with("HTTP/1.1 431 "));
    }

    #[test]
    fn the_blank_line_is_found_where_it_ends() {
        assert_eq!(find_blank_line(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(find_blank_line(b"GET / HTTP/1.1\r\n"), None);
        assert_eq!(find_blank_line(b"\r\n\r\n"), Some(4));
    }
}
