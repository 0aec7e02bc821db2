//! The file server's name rules end to end: every hostile name is refused with its code
//! (raw protocol lines, so NUL bytes and over-long names can be sent), nothing outside
//! the root is read or written, and the refusals are counted in the shutdown summary.

mod common;
#[path = "common/files.rs"]
mod files;

use files::*;
use std::io::{Read, Write};
use std::os::unix::fs::symlink;
use std::process::Command;

#[test]
fn hostile_names_are_refused_with_their_code_and_counted() {
    let outside = shm_dir();
    let root = shm_dir();
    let r = root.path();
    std::fs::write(outside.path().join("secret"), b"secret").unwrap();
    std::fs::create_dir(r.join("sub")).unwrap();
    std::fs::write(r.join("sub/ok"), b"fine").unwrap();
    symlink(outside.path().join("secret"), r.join("abs-out")).unwrap();
    symlink(
        "../../../../../../../../../../etc/passwd",
        r.join("rel-out"),
    )
    .unwrap();
    symlink(outside.path(), r.join("dir-out")).unwrap();
    symlink("/dev/null", r.join("devnull")).unwrap();
    symlink("sub/ok", r.join("inside")).unwrap();
    let mkfifo = Command::new("mkfifo").arg(r.join("fifo")).status().unwrap();
    assert!(mkfifo.success(), "mkfifo");
    // A real device node where the test may make one (root on a dev-enabled mount).
    let device = Command::new("mknod")
        .arg(r.join("null-dev"))
        .args(["c", "1", "3"])
        .status()
        .is_ok_and(|s| s.success());
    let socket = std::os::unix::net::UnixListener::bind(r.join("sock")).unwrap();

    let server = FileServer::start(r, &["--allow-upload"]);
    let long = "a".repeat(5000);
    let mut cases: Vec<(Vec<u8>, &str)> = vec![
        (b"GET ../x 0 verify".to_vec(), "bad-name"),
        (b"GET a/../../x 0 verify".to_vec(), "bad-name"),
        (b"GET /etc/passwd 0 verify".to_vec(), "bad-name"),
        (b"GET %2Fetc%2Fpasswd 0 verify".to_vec(), "bad-name"),
        (b"GET abs-out 0 verify".to_vec(), "outside-root"),
        (b"GET rel-out 0 verify".to_vec(), "outside-root"),
        (b"GET dir-out/secret 0 verify".to_vec(), "outside-root"),
        (b"GET dir-out 0 verify".to_vec(), "outside-root"),
        (b"GET devnull 0 verify".to_vec(), "outside-root"),
        (b"GET sub%00ok 0 verify".to_vec(), "bad-name"),
        (b"GET sub 0 verify".to_vec(), "not-regular"),
        (b"GET fifo 0 verify".to_vec(), "not-regular"),
        (b"GET sock 0 verify".to_vec(), "not-regular"),
        (format!("GET {long} 0 verify").into_bytes(), "name-too-long"),
        (
            format!("GET sub/{} 0 verify", "b".repeat(256)).into_bytes(),
            "name-too-long",
        ),
        (b"GET  0 verify".to_vec(), "bad-name"),
        (b"GET missing 0 verify".to_vec(), "not-found"),
        (b"GET sub/ok 5 verify".to_vec(), "bad-offset"),
        (b"PUT ../x 1".to_vec(), "bad-name"),
        (b"PUT dir-out/x 1".to_vec(), "outside-root"),
        (b"PUT devnull 1".to_vec(), "not-regular"),
        (b"PUT sub 1".to_vec(), "not-regular"),
        (b"PUT nodir/x 1".to_vec(), "not-found"),
        (b"FETCH x".to_vec(), "bad-request"),
        (
            b"GET sub/.ringport-upload.1.0.part 0 verify".to_vec(),
            "bad-name",
        ),
    ];
    if device {
        cases.push((b"GET null-dev 0 verify".to_vec(), "not-regular"));
    }
    let mut counts = std::collections::BTreeMap::new();
    for (line, code) in &cases {
        let reply = raw_request(&server.addr, line);
        let shown = String::from_utf8_lossy(&line[..line.len().min(60)]).into_owned();
        assert!(
            reply.starts_with(&format!("ERR {code} ")) && reply.ends_with('\n'),
            "{shown:?}: expected ERR {code}, got {reply:?}"
        );
        *counts.entry(*code).or_insert(0u32) += 1;
    }
    // What is allowed still works: a symlink that stays inside.
    let (reply, body) = raw_get(&server.addr, "inside", false);
    assert_eq!(
        (reply.as_str(), body.as_slice()),
        ("OK 4 0\n", &b"fine"[..])
    );

    // Nothing was written anywhere: outside, or in the root.
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
    assert_eq!(temp_files(r), 0);
    assert_eq!(
        std::fs::read(outside.path().join("secret")).unwrap(),
        b"secret"
    );
    drop(socket);

    let (out, _) = server.stop();
    let total: u32 = counts.values().sum();
    let by: Vec<String> = [
        "bad-request",
        "bad-name",
        "name-too-long",
        "not-found",
        "outside-root",
        "not-regular",
        "bad-offset",
    ]
    .iter()
    .filter_map(|c| counts.get(c).map(|n| format!("{c} {n}")))
    .collect();
    let expected = format!("refused {total} ({})", by.join(", "));
    assert!(out.contains(&expected), "expected {expected:?} in:\n{out}");
}

#[test]
fn gets_pipeline_but_a_put_behind_them_is_refused_and_closes() {
    let root = shm_dir();
    std::fs::write(root.path().join("a"), b"abc").unwrap();
    let server = FileServer::start(root.path(), &["--allow-upload"]);
    let mut s = connect(&server.addr);
    s.write_all(b"GET a 0 noverify\nGET a 2 noverify\nPUT b 1\nGET a 0 noverify\n")
        .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(
        text.starts_with("OK 3 0\nabcOK 3 2\ncERR bad-request "),
        "{text:?}"
    );
    assert!(
        text.ends_with('\n') && text.matches('\n').count() == 3,
        "{text:?}"
    );
    assert!(!root.path().join("b").exists());
    let (out, _) = server.stop();
    assert!(out.contains("get 2  put 0  sent 2"), "{out}");
}

#[test]
fn an_over_long_request_line_closes_the_connection() {
    let root = shm_dir();
    let server = FileServer::start(root.path(), &[]);
    let mut s = connect(&server.addr);
    let line = format!("GET {} 0 verify\n", "a".repeat(9000));
    // The server may close (even reset) before taking it all: errors are fine here.
    let _ = s.write_all(line.as_bytes());
    let mut rest = Vec::new();
    match s.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "no reply, the connection closes: {rest:?}"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    let (reply, _) = raw_get(&server.addr, "missing", true);
    assert!(reply.starts_with("ERR not-found"), "{reply}");
    server.stop();
}
