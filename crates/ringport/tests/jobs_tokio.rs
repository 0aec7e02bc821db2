//! The tokio bridge (`Conn::spawn_async`): futures' outputs come back in spawn order as
//! job results; a connection that closes aborts its sleeping tasks (counted skipped) and
//! hears nothing after `on_close`; without a runtime the spawn is refused.
#![cfg(feature = "tokio")]

#[path = "util/jobs.rs"]
mod jobs;
mod util;

use jobs::{payload, read_frame, request, start};
use rand::Rng;
use ringport::{JobError, Server};
use std::net::TcpStream;
use std::time::Duration;
use util::{connect, read_n, wait_for_value, wait_until, watchdog, write_all, TEST_LIMIT, WAIT};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

#[test]
fn async_results_come_back_in_spawn_order() {
    let _w = watchdog("jobs-tokio-order", TEST_LIMIT);
    let rt = runtime();
    let (server, addr, state) = start(Server::builder().tokio_runtime(rt.handle().clone()));
    let mut rng = util::rng();
    let wires: Vec<Vec<u8>> = (0..10)
        .map(|_| {
            (0..300u32)
                .flat_map(|i| request(b'A', rng.gen_range(0..3000), &i.to_be_bytes()))
                .collect()
        })
        .collect();
    std::thread::scope(|s| {
        for (i, wire) in wires.iter().enumerate() {
            s.spawn(move || {
                let mut stream = connect(addr);
                let mut writer = stream.try_clone().unwrap();
                let w = std::thread::spawn({
                    let wire = wire.clone();
                    move || write_all(&mut writer, &wire)
                });
                let back = read_n(&mut stream, wire.len());
                w.join().unwrap();
                assert!(
                    back == *wire,
                    "connection {i}: answers out of order or changed"
                );
            });
        }
    });
    let st = server.stats();
    assert_eq!(st.jobs_done, 3000, "{st}");
    assert_eq!(
        st.jobs_skipped + st.jobs_dropped + st.jobs_refused,
        0,
        "{st}"
    );
    assert!(state.spawn_errors().is_empty());
}

#[test]
fn a_closed_connection_aborts_its_sleeping_tasks() {
    let _w = watchdog("jobs-tokio-abort", TEST_LIMIT);
    let rt = runtime();
    let (server, addr, state) = start(Server::builder().tokio_runtime(rt.handle().clone()));
    // Ten tasks that would sleep a minute: unless aborted they would not end (and be
    // counted dropped, not skipped) within the wait below.
    let mut doomed = connect(addr);
    let wire: Vec<u8> = (0..10u32)
        .flat_map(|i| request(b'A', 60_000_000, &i.to_be_bytes()))
        .collect();
    write_all(&mut doomed, &wire);
    wait_for_value(WAIT, "tasks spawned", || server.stats().jobs_spawned, 10);
    socket2::SockRef::from(&doomed)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(doomed);
    wait_for_value(WAIT, "aborted tasks", || server.stats().jobs_skipped, 10);
    wait_for_value(
        WAIT,
        "jobs outstanding",
        || server.stats().jobs_outstanding,
        0,
    );
    wait_until(WAIT, "on_close", || state.reasons().len() == 1);
    let st = server.stats();
    assert_eq!(st.jobs_done + st.jobs_dropped, 0, "{st}");
    assert_eq!(state.late(), 0, "callbacks after on_close");

    // The runtime goes on serving other connections.
    let mut other = connect(addr);
    for i in 0..10u32 {
        let r = request(b'A', 100, &i.to_be_bytes());
        write_all(&mut other, &r);
        assert_eq!(read_frame(&mut other), payload(&r));
    }
}

#[test]
fn spawn_async_without_a_runtime_is_refused() {
    let _w = watchdog("jobs-tokio-none", TEST_LIMIT);
    let (server, addr, state) = start(Server::builder().jobs(1));
    let mut client: TcpStream = connect(addr);
    write_all(&mut client, &request(b'A', 0, b"x"));
    assert_eq!(read_frame(&mut client), b"!NoRuntime");
    assert_eq!(state.spawn_errors(), [JobError::NoRuntime]);
    // A plain job on the same connection still works.
    let r = request(b'S', 0, b"y");
    write_all(&mut client, &r);
    assert_eq!(read_frame(&mut client), payload(&r));
    let st = server.stats();
    assert_eq!((st.jobs_spawned, st.jobs_done), (1, 1), "{st}");
}
