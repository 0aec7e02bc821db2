//! `echo-server --codec` and `bench --codec` end to end: framed messages echoed whole and
//! verified byte for byte, and a raw client's bytes against a framed server.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[test]
fn bench_and_echo_server_speak_each_codec() {
    for codec in [
        "length:1", "length:2", "length:4", "length:8", "line", "fixed:48",
    ] {
        let (server, addr) = echo_server_with(&["--codec", codec], &[]);
        let (report, _) = bench_json(&[
            &addr,
            "--codec",
            codec,
            "--connections",
            "8",
            "--size",
            "48",
            "--pipeline",
            "4",
            "--duration",
            "1",
        ]);
        assert_no_errors(&report);
        assert_eq!(report["codec"], codec, "{report}");
        assert!(report["messages"].as_u64().unwrap() > 0, "{report}");
        stop(server);
    }
}

#[test]
fn a_frame_over_max_frame_closes_the_connection() {
    let (server, addr) = echo_server_with(&["--codec", "length:2", "--max-frame", "100"], &[]);
    let mut s = TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"\x00\x05hello").unwrap();
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"\x00\x05hello");
    s.write_all(b"\x01\x00").unwrap(); // announces 256 bytes, above --max-frame 100
    let mut rest = Vec::new();
    // The server closes: EOF (or a reset), with nothing echoed.
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty());
    let (out, _) = stop(server);
    assert!(out.contains("protocol errors 1"), "{out}");
    assert!(out.contains("closed by    frame too long 1"), "{out}");
}
