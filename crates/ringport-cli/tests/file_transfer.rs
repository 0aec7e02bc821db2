//! `ringport file-server`, `get` and `put` end to end: the real binary serves a root in
//! /dev/shm; files go both ways and are compared with a BLAKE3 computed here; a killed
//! download resumes; uploads are refused without --allow-upload or over --max-upload;
//! a client that disconnects mid-transfer leaves no descriptor, connection or temporary
//! file behind. The server runs on the backend `RINGPORT_BACKEND` selects (inherited).
//! Hostile names are in tests/file_names.rs. Every wait is bounded.

mod common;
#[path = "common/files.rs"]
mod files;

use common::*;
use files::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;

#[test]
fn a_gibibyte_goes_both_ways_intact() {
    let root = shm_dir();
    let work = shm_dir();
    let source = root.path().join("big.bin");
    let want = write_random(&source, 1024 * MIB, 1);
    let server = FileServer::start(root.path(), &["--allow-upload"]);

    let got = work.path().join("got.bin");
    let (ok, out, err) = cli(&["get", &server.addr, "big.bin", "-o", path_str(&got)]);
    assert!(ok, "get failed:\n{out}\n{err}");
    assert!(out.contains("verified"), "{out}");
    assert!(
        err.contains("get big.bin: done"),
        "a final progress line: {err}"
    );
    assert_eq!(blake3_file(&got), want, "the downloaded file differs");

    let (ok, out, err) = cli(&["put", &server.addr, path_str(&got), "--name", "back.bin"]);
    assert!(ok, "put failed:\n{out}\n{err}");
    assert_eq!(blake3_file(&root.path().join("back.bin")), want);
    assert_eq!(temp_files(root.path()), 0);

    let (out, _) = server.stop();
    assert!(
        out.contains("files: sent 1 (1.0 GiB), received 1 (1.0 GiB), failed 0"),
        "{out}"
    );
    assert!(
        out.contains("requests: get 1  put 1  sent 1  stored 1  refused 0"),
        "{out}"
    );
}

#[test]
fn a_hundred_concurrent_transfers_of_mixed_sizes() {
    let root = shm_dir();
    let work = shm_dir();
    let sizes = [0, 1, 64 * 1024, 100 * MIB];
    let mut digests = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        let name = format!("f{i}");
        digests.push(write_random(&root.path().join(&name), size, 10 + i as u64));
        std::fs::copy(root.path().join(&name), work.path().join(&name)).unwrap();
    }
    let server = FileServer::start(root.path(), &["--allow-upload"]);
    // Three of the large ones (two down, one up); the rest cycle through the small sizes.
    let mut children = Vec::new();
    for i in 0..100usize {
        let kind = if i < 3 { 3 } else { i % 3 };
        let name = format!("f{kind}");
        let args: Vec<String> = if i % 2 == 0 {
            let out = work.path().join(format!("got{i}"));
            vec![
                "get".into(),
                server.addr.clone(),
                name,
                "-o".into(),
                path_str(&out).into(),
            ]
        } else {
            let src = work.path().join(&name);
            vec![
                "put".into(),
                server.addr.clone(),
                path_str(&src).into(),
                "--name".into(),
                format!("up{i}"),
            ]
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        children.push((i, kind, spawn(&args)));
    }
    for (i, kind, mut child) in children {
        let (status, out, err) = child.wait(Duration::from_secs(60));
        assert!(status.success(), "transfer {i} failed:\n{out}\n{err}");
        let path = if i % 2 == 0 {
            work.path().join(format!("got{i}"))
        } else {
            root.path().join(format!("up{i}"))
        };
        assert_eq!(blake3_file(&path), digests[kind], "transfer {i} ({path:?})");
    }
    assert_eq!(temp_files(root.path()), 0);
    let (out, _) = server.stop();
    assert!(out.contains("sent 50  stored 50  refused 0"), "{out}");
}

#[test]
fn a_killed_download_resumes_and_verifies_the_whole_file() {
    let root = shm_dir();
    let work = shm_dir();
    let size = 768 * MIB;
    let want = write_random(&root.path().join("r.bin"), size, 3);
    let server = FileServer::start(root.path(), &[]);
    let out = work.path().join("r.bin");
    let mut get = spawn(&["get", &server.addr, "r.bin", "-o", path_str(&out)]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let len = std::fs::metadata(&out).map_or(0, |m| m.len());
        if len > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no byte of the download within 20 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    get.child.kill().unwrap();
    let (status, _, _) = get.wait(Duration::from_secs(10));
    assert!(
        !status.success(),
        "the download finished before it was killed"
    );
    let partial = std::fs::metadata(&out).unwrap().len();
    assert!(partial > 0 && partial < size, "partial length {partial}");

    let (ok, stdout, err) = cli(&[
        "get",
        &server.addr,
        "r.bin",
        "-o",
        path_str(&out),
        "--resume",
    ]);
    assert!(ok, "resume failed:\n{stdout}\n{err}");
    assert!(stdout.contains("verified"), "{stdout}");
    assert_eq!(blake3_file(&out), want);

    // A corrupted prefix is caught: the digest covers the whole file.
    let mut f = std::fs::OpenOptions::new().write(true).open(&out).unwrap();
    f.write_all(b"X").unwrap();
    f.set_len(size / 2).unwrap();
    drop(f);
    let (ok, _, err) = cli(&[
        "get",
        &server.addr,
        "r.bin",
        "-o",
        path_str(&out),
        "--resume",
    ]);
    assert!(!ok, "a corrupt prefix must fail the resumed download");
    assert!(err.contains("digest mismatch"), "{err}");
    server.stop();
}

#[test]
fn a_client_that_disconnects_mid_transfer_frees_its_file_and_slot() {
    let root = shm_dir();
    write_random(&root.path().join("big"), 512 * MIB, 4);
    write_random(&root.path().join("small"), 10, 5);
    let server = FileServer::start(root.path(), &["--allow-upload", "--stats"]);
    // Warm up (the engine may open descriptors lazily), then take the baseline.
    let (reply, _) = raw_get(&server.addr, "small", true);
    assert!(reply.starts_with("OK 10 0 BLAKE3"), "{reply}");
    wait_for_open(&server, 0);
    let baseline = fd_count(server.pid());

    // A download dropped after its first bytes.
    let mut s = connect(&server.addr);
    s.write_all(b"GET big 0 verify\n").unwrap();
    let mut first = [0u8; 64 * 1024];
    s.read_exact(&mut first).unwrap();
    drop(s);
    // An upload dropped half way.
    let mut s = connect(&server.addr);
    s.write_all(format!("PUT up.bin {}\n", 100 * MIB).as_bytes())
        .unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "READY\n");
    s.write_all(&vec![7u8; 10 * MIB as usize]).unwrap();
    drop((s, reader));

    wait_for_open(&server, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while fd_count(server.pid()) > baseline || std::fs::read_dir(root.path()).unwrap().count() != 2
    {
        assert!(
            Instant::now() < deadline,
            "descriptors {} (baseline {baseline}) or files {:?} left after 10 s",
            fd_count(server.pid()),
            std::fs::read_dir(root.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (out, _) = server.stop();
    assert!(out.contains("stored 0"), "{out}");
}

#[test]
fn uploads_are_refused_unless_allowed_and_within_the_limit() {
    let root = shm_dir();
    let work = shm_dir();
    let src = work.path().join("u.bin");
    write_random(&src, 2000, 6);

    let closed = FileServer::start(root.path(), &[]);
    let (ok, _, err) = cli(&["put", &closed.addr, path_str(&src)]);
    assert!(!ok && err.contains("upload-disabled"), "{err}");
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    let (out, _) = closed.stop();
    assert!(out.contains("refused 1 (upload-disabled 1)"), "{out}");

    let capped = FileServer::start(root.path(), &["--allow-upload", "--max-upload", "1000"]);
    let (ok, _, err) = cli(&["put", &capped.addr, path_str(&src)]);
    assert!(!ok && err.contains("too-large"), "{err}");
    assert_eq!(
        std::fs::read_dir(root.path()).unwrap().count(),
        0,
        "nothing written"
    );
    // At the limit is fine, and so is an empty file.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&src)
        .unwrap()
        .set_len(1000)
        .unwrap();
    let (ok, out, err) = cli(&["put", &capped.addr, path_str(&src)]);
    assert!(ok, "{out}\n{err}");
    assert_eq!(blake3_file(&root.path().join("u.bin")), blake3_file(&src));
    let empty = work.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let (ok, out, err) = cli(&["put", &capped.addr, path_str(&empty)]);
    assert!(ok, "{out}\n{err}");
    assert_eq!(std::fs::read(root.path().join("empty")).unwrap(), b"");
    let (out, _) = capped.stop();
    assert!(
        out.contains("put 3  sent 0  stored 2  refused 1 (too-large 1)"),
        "{out}"
    );
}

#[test]
fn noverify_sends_no_digest_and_the_connection_serves_on() {
    let root = shm_dir();
    std::fs::write(root.path().join("a"), b"hello").unwrap();
    let server = FileServer::start(root.path(), &[]);
    let s = connect(&server.addr);
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    w.write_all(b"GET a 1 noverify\nGET a 5 verify\nGET missing 0 verify\n")
        .unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "OK 5 1\n");
    let mut body = [0u8; 4];
    reader.read_exact(&mut body).unwrap();
    assert_eq!(&body, b"ello");
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert_eq!(
        line, "OK 5 5 BLAKE3\n",
        "the next request's reply, no digest before it"
    );
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert_eq!(
        line,
        format!("BLAKE3 {}\n", blake3::hash(b"hello").to_hex())
    );
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("ERR not-found "), "{line}");

    // A refused download exits non-zero and leaves no empty file.
    let work = shm_dir();
    let out = work.path().join("missing");
    let (ok, _, err) = cli(&["get", &server.addr, "missing", "-o", path_str(&out)]);
    assert!(!ok && err.contains("not-found"), "{err}");
    assert!(!out.exists(), "a refused download left {out:?}");
    server.stop();
}

#[test]
fn a_wrong_digest_fails_the_download() {
    // A fake server: the right bytes, then a digest of something else.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let fake = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let mut line = String::new();
        BufReader::new(s.try_clone().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "GET x 0 verify\n");
        let mut w = s;
        let wrong = blake3::hash(b"something else").to_hex();
        w.write_all(format!("OK 3 0 BLAKE3\nabcBLAKE3 {wrong}\n").as_bytes())
            .unwrap();
    });
    let work = shm_dir();
    let out = work.path().join("x");
    let (ok, _, err) = cli(&["get", &addr, "x", "-o", path_str(&out)]);
    fake.join().unwrap();
    assert!(!ok, "a mismatch must exit non-zero");
    assert!(err.contains("digest mismatch"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"abc");
}
