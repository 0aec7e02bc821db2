//! Jobs and a connection's life: a connection that closes with jobs queued has them
//! skipped and sees no callback after `on_close`; a panicking job closes its connection
//! (`CloseReason::JobPanic`) and the pool thread goes on serving; a graceful close waits
//! for the jobs outstanding; jobs that sleep do not hold up the I/O workers.

#[path = "util/jobs.rs"]
mod jobs;
mod util;

use jobs::{payload, read_frame, request, start};
use ringport::{CloseReason, Server};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use util::{
    connect, read_to_eof, shutdown_write, wait_ended, wait_for_value, wait_until, watchdog,
    write_all, TEST_LIMIT, WAIT,
};

/// Send `n` quick requests on `stream` and check their answers come back in order.
#[track_caller]
fn roundtrips(stream: &mut TcpStream, n: u32) {
    let reqs: Vec<Vec<u8>> = (0..n).map(|i| request(b'S', 0, &i.to_be_bytes())).collect();
    write_all(stream, &reqs.concat());
    for r in &reqs {
        assert_eq!(read_frame(stream), payload(r));
    }
}

/// Reset `stream` (RST, not FIN: the server's default `on_eof` would close gracefully,
/// waiting for the jobs).
fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(stream);
}

#[test]
fn a_connection_closed_with_jobs_queued_has_them_skipped_and_no_late_callbacks() {
    let _w = watchdog("jobs-close-queued", TEST_LIMIT);
    let (server, addr, state) = start(Server::builder().jobs(1));
    let pool = || server.stats().job_pool.expect("the server has a pool");

    // The pool's one thread blocks on the gate.
    let mut gated = connect(addr);
    let gate_req = request(b'G', 0, b"gate");
    write_all(&mut gated, &gate_req);
    wait_until(WAIT, "the gate job runs", || pool().running == 1);

    // 20 jobs queued behind it, then the connection is reset.
    let mut doomed = connect(addr);
    let reqs: Vec<u8> = (0..20u32)
        .flat_map(|i| request(b'S', 0, &i.to_be_bytes()))
        .collect();
    write_all(&mut doomed, &reqs);
    wait_for_value(WAIT, "jobs spawned", || server.stats().jobs_spawned, 21);
    assert_eq!(pool().queued, 20);
    reset(doomed);
    wait_until(WAIT, "the reset connection's on_close", || {
        state.reasons().len() == 1
    });
    assert_eq!(state.reasons(), [CloseReason::PeerReset]);
    let st = server.stats();
    assert_eq!(st.jobs_skipped, 0, "nothing ran yet: {st}");
    assert_eq!(st.jobs_outstanding, 21, "{st}");

    // The gate opens: its connection gets its answer, the closed one's jobs are skipped
    // unrun, none of their results reach the handler.
    state.gate.open();
    assert_eq!(read_frame(&mut gated), payload(&gate_req));
    wait_for_value(WAIT, "skipped jobs", || server.stats().jobs_skipped, 20);
    wait_for_value(
        WAIT,
        "jobs outstanding",
        || server.stats().jobs_outstanding,
        0,
    );
    let st = server.stats();
    assert_eq!(st.jobs_done, 1, "{st}");
    assert_eq!(st.jobs_dropped, 0, "{st}");
    assert_eq!(pool().run_time.count, 1, "the skipped jobs never ran: {st}");

    // The pool goes on serving: the open connection and a new one.
    roundtrips(&mut gated, 10);
    let mut fresh = connect(addr);
    roundtrips(&mut fresh, 10);
    assert_eq!(state.late(), 0, "callbacks after on_close");
    assert!(
        state.spawn_errors().is_empty(),
        "{:?}",
        state.spawn_errors()
    );
}

#[test]
fn a_panicking_job_closes_its_connection_and_the_pool_thread_goes_on() {
    let _w = watchdog("jobs-panic", TEST_LIMIT);
    let (server, addr, state) = start(Server::builder().jobs(1));
    let mut bystander = connect(addr);
    roundtrips(&mut bystander, 10);

    // A panicking job, then five more pipelined behind it on the same connection: none
    // of theirs may be delivered (the one before them never comes).
    let mut victim = connect(addr);
    let mut wire = request(b'P', 0, b"boom");
    for i in 0..5u32 {
        wire.extend(request(b'S', 0, &i.to_be_bytes()));
    }
    write_all(&mut victim, &wire);
    let (_, got) = wait_ended(&mut victim);
    assert!(got.is_empty(), "answers after the panic: {got:?}");
    wait_until(WAIT, "the victim's on_close", || state.reasons().len() == 1);
    assert_eq!(state.reasons(), [CloseReason::JobPanic]);
    wait_for_value(
        WAIT,
        "jobs outstanding",
        || server.stats().jobs_outstanding,
        0,
    );
    let st = server.stats();
    assert_eq!(st.jobs_panicked, 1, "{st}");
    assert_eq!(st.jobs_skipped + st.jobs_dropped, 5, "{st}");

    // The pool's one thread survived: the other connection, and a new one, get answers.
    roundtrips(&mut bystander, 50);
    let mut fresh = connect(addr);
    roundtrips(&mut fresh, 10);
    assert_eq!(server.stats().job_pool.unwrap().threads, 1);
    assert_eq!(state.late(), 0, "callbacks after on_close");
}

#[test]
fn a_graceful_close_waits_for_the_jobs_outstanding() {
    let _w = watchdog("jobs-graceful", TEST_LIMIT);
    // A cap well under the number of requests: the EOF comes while requests still wait
    // in the connection's reader for room under the cap.
    let (server, addr, state) = start(Server::builder().jobs(4).jobs_per_connection(8));
    let mut rng = util::rng();
    for _ in 0..5 {
        let wire: Vec<u8> = (0..300u32)
            .flat_map(|i| {
                let delay = rand::Rng::gen_range(&mut rng, 0..500);
                request(b'S', delay, &i.to_be_bytes())
            })
            .collect();
        let mut client = connect(addr);
        write_all(&mut client, &wire);
        shutdown_write(&client);
        let back = read_to_eof(&mut client);
        assert_eq!(back.len(), wire.len(), "answers missing before EOF");
        assert!(back == wire, "the answers differ from the requests");
    }
    wait_until(WAIT, "five on_close", || state.reasons().len() == 5);
    assert!(
        state
            .reasons()
            .iter()
            .all(|r| *r == CloseReason::PeerClosed),
        "{:?}",
        state.reasons()
    );
    let st = server.stats();
    assert_eq!(st.jobs_done, 1500, "{st}");
    assert_eq!(st.jobs_skipped + st.jobs_dropped, 0, "{st}");
    assert_eq!(state.late(), 0, "callbacks after on_close");
}

#[test]
fn sleeping_jobs_do_not_block_io() {
    let _w = watchdog("jobs-sleep", TEST_LIMIT);
    let (server, addr, state) = start(Server::builder().jobs(64));
    let mut clients: Vec<TcpStream> = (0..64).map(|_| connect(addr)).collect();
    wait_until(WAIT, "64 connections open", || state.opened() == 64);
    let reqs: Vec<Vec<u8>> = (0..64u32)
        .map(|i| request(b'S', 100_000, &i.to_be_bytes()))
        .collect();
    let start = Instant::now();
    for (c, r) in clients.iter_mut().zip(&reqs) {
        write_all(c, r);
    }
    for (c, r) in clients.iter_mut().zip(&reqs) {
        assert_eq!(read_frame(c), payload(r));
    }
    let took = start.elapsed();
    // One after another they would take 6.4 s; side by side about 0.1 s.
    assert!(
        took < Duration::from_secs(2),
        "64 sleeps of 100 ms took {took:?}"
    );
    let pool = server.stats().job_pool.unwrap();
    assert_eq!(pool.run_time.count, 64);
    assert!(pool.run_time.max >= Duration::from_millis(100), "{pool:?}");
}
