//! The tokio servers: a multi-thread runtime of `--workers` threads, one task per
//! connection. The pool variant hands each frame to `spawn_blocking` (at most
//! `--inflight` outstanding per connection, awaited in order, like ringport's
//! per-connection cap) on a blocking pool of at most `--jobs` threads; the inline variant
//! hashes in the task.

use crate::args::Args;
use std::collections::VecDeque;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const READ_BUF: usize = 16 * 1024;

pub fn run(a: &Args, inline: bool) -> Result<(), Box<dyn std::error::Error>> {
    let iters = a.u32("--iters", 20);
    let inflight = a.usize("--inflight", 32).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.usize("--workers", 1))
        .max_blocking_threads(a.usize("--jobs", 4))
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(a.str("--listen", "127.0.0.1:0")).await?;
        crate::print_listening(listener.local_addr()?);
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("accept: {e}");
                    continue;
                }
            };
            if inline {
                tokio::spawn(serve_inline(stream, iters));
            } else {
                tokio::spawn(serve_pool(stream, iters, inflight));
            }
        }
    })
}

/// The next whole frame at the front of `buf`: (payload start, end).
fn next_frame(buf: &[u8]) -> Option<(usize, usize)> {
    let len = u32::from_be_bytes(buf.get(..4)?.try_into().ok()?) as usize;
    (buf.len() >= 4 + len).then_some((4, 4 + len))
}

fn put_answer(out: &mut Vec<u8>, digest: u64) {
    out.extend_from_slice(&8u32.to_be_bytes());
    out.extend_from_slice(&digest.to_be_bytes());
}

async fn serve_inline(mut stream: TcpStream, iters: u32) {
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let mut rbuf = vec![0u8; READ_BUF];
    let mut buf: Vec<u8> = Vec::with_capacity(READ_BUF);
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    loop {
        let n = match stream.read(&mut rbuf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&rbuf[..n]);
        let mut at = 0;
        while let Some((s, e)) = next_frame(&buf[at..]) {
            put_answer(&mut out, crate::hash(&buf[at + s..at + e], iters));
            at += e;
        }
        buf.drain(..at);
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    }
}

async fn serve_pool(mut stream: TcpStream, iters: u32, inflight: usize) {
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let (mut rd, mut wr) = stream.split();
    let mut rbuf = vec![0u8; READ_BUF];
    let mut buf: Vec<u8> = Vec::with_capacity(READ_BUF);
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    let mut pending: VecDeque<JoinHandle<u64>> = VecDeque::with_capacity(inflight);
    let mut eof = false;
    loop {
        // Hand the whole frames buffered to the blocking pool, up to the cap.
        let mut at = 0;
        while pending.len() < inflight {
            let Some((s, e)) = next_frame(&buf[at..]) else { break };
            let frame = buf[at + s..at + e].to_vec();
            pending.push_back(tokio::task::spawn_blocking(move || crate::hash(&frame, iters)));
            at += e;
        }
        buf.drain(..at);
        if pending.is_empty() {
            if eof {
                return;
            }
            match rd.read(&mut rbuf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&rbuf[..n]),
            }
            continue;
        }
        // Wait for the oldest result, reading on meanwhile while below the cap (at the
        // cap, like ringport, read nothing more until a result is in).
        let first = if !eof && pending.len() < inflight {
            let front = pending.front_mut().expect("not empty");
            tokio::select! {
                biased;
                r = front => Some(r),
                n = rd.read(&mut rbuf) => {
                    match n {
                        Ok(0) | Err(_) => eof = true,
                        Ok(n) => buf.extend_from_slice(&rbuf[..n]),
                    }
                    None
                }
            }
        } else {
            Some(pending.front_mut().expect("not empty").await)
        };
        let Some(first) = first else { continue };
        pending.pop_front();
        let Ok(digest) = first else { return };
        put_answer(&mut out, digest);
        // The results already in behind it go out in the same write.
        while pending.front().is_some_and(|h| h.is_finished()) {
            let Ok(digest) = pending.pop_front().expect("front").await else {
                return;
            };
            put_answer(&mut out, digest);
        }
        if wr.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
    }
}
