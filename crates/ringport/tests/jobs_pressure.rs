//! Jobs under pressure: at its cap of outstanding jobs a connection is handed no more
//! data and read no further, so a client pipelining far more than the cap is served in
//! order in bounded memory; the pool's bounded queue refuses spawns beyond it
//! (`JobError::PoolFull`) and takes them again once it drains.

#[path = "util/jobs.rs"]
mod jobs;
mod util;

use jobs::{payload, read_frame, request, start};
use ringport::{JobError, JobPool, Server};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::Duration;
use util::{connect, read_n, wait_for_value, wait_until, watchdog, write_all, TEST_LIMIT, WAIT};

#[test]
fn a_client_pipelining_far_past_the_cap_is_served_in_order_in_bounded_memory() {
    let _w = watchdog("jobs-cap", TEST_LIMIT);
    const CAP: u64 = 8;
    const REQUESTS: u32 = 10_000;
    const BODY: usize = 2000;
    let (server, addr, state) = start(Server::builder().jobs(4).jobs_per_connection(CAP as usize));
    let mut rng = util::rng();
    // ~20 MB of requests, written at once: unless the engine stops reading at the cap,
    // most of it piles up in the connection's frame reader (it did, ~19 MB, with the
    // pause taken out). With it, what is held stays near what the kernel had buffered
    // when reading resumed (a multishot receive takes all of it before its cancel
    // lands): under 1 MiB here; the bound below is four times that.
    let wire: Vec<u8> = (0..REQUESTS)
        .flat_map(|i| {
            let mut body = i.to_be_bytes().to_vec();
            body.extend(util::random_bytes(&mut rng, BODY));
            request(b'S', 0, &body)
        })
        .collect();
    let mut client = connect(addr);
    let mut writer = client.try_clone().unwrap();
    let done = AtomicBool::new(false);
    let (max_frame_bytes, max_queued) = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let (mut frames, mut queued) = (0, 0);
            while !done.load(SeqCst) {
                let st = server.stats();
                frames = frames.max(st.frame_bytes);
                queued = queued.max(st.job_pool.expect("a pool").queued);
                std::thread::sleep(Duration::from_millis(1));
            }
            (frames, queued)
        });
        s.spawn(|| write_all(&mut writer, &wire));
        let back = read_n(&mut client, wire.len());
        done.store(true, SeqCst);
        if let Some(at) = back.iter().zip(&wire).position(|(a, b)| a != b) {
            panic!("the answers differ from the requests at byte {at}");
        }
        sampler.join().unwrap()
    });
    let st = server.stats();
    println!("frame bytes at most {max_frame_bytes}, pool queue at most {max_queued}\n{st}");
    assert_eq!(
        state.max_outstanding.load(SeqCst),
        CAP,
        "the most jobs outstanding right after a spawn"
    );
    assert!(
        state.spawn_errors().is_empty(),
        "a one-job-per-frame handler was refused: {:?}",
        state.spawn_errors()
    );
    assert_eq!(st.jobs_done, u64::from(REQUESTS), "{st}");
    assert_eq!(st.jobs_refused, 0, "{st}");
    assert!(
        max_queued <= CAP,
        "the pool queued {max_queued} jobs of one connection"
    );
    assert!(
        max_frame_bytes < 4 << 20,
        "{max_frame_bytes} bytes held in frame readers for one connection at its cap"
    );
}

#[test]
fn spawns_beyond_the_pools_queue_bound_are_refused_until_it_drains() {
    let _w = watchdog("jobs-pool-full", TEST_LIMIT);
    let pool = JobPool::builder()
        .threads(1)
        .queue_bound(2)
        .build()
        .unwrap();
    let (server, addr, state) = start(Server::builder().job_pool(pool.clone()));

    // The one thread blocks on the gate; two jobs fill the queue.
    let mut gated = connect(addr);
    let gate_req = request(b'G', 0, b"gate");
    write_all(&mut gated, &gate_req);
    wait_until(WAIT, "the gate job runs", || pool.stats().running == 1);
    let mut client = connect(addr);
    let queued: Vec<Vec<u8>> = (0..2u32)
        .map(|i| request(b'S', 0, &i.to_be_bytes()))
        .collect();
    write_all(&mut client, &queued.concat());
    wait_for_value(WAIT, "jobs queued", || pool.stats().queued, 2);

    // Beyond the bound: refused at once (answered before the queued ones).
    for i in 0..3u32 {
        write_all(&mut client, &request(b'S', 0, &(100 + i).to_be_bytes()));
        assert_eq!(read_frame(&mut client), b"!PoolFull");
    }
    assert_eq!(state.spawn_errors(), [JobError::PoolFull; 3]);
    let st = server.stats();
    assert_eq!(st.jobs_refused, 3, "{st}");
    assert_eq!(st.jobs_spawned, 3, "{st}");
    assert_eq!(pool.stats().queued, 2);

    // The gate opens: the queued jobs run, and spawns are taken again.
    state.gate.open();
    assert_eq!(read_frame(&mut gated), payload(&gate_req));
    for r in &queued {
        assert_eq!(read_frame(&mut client), payload(r));
    }
    for i in 0..20u32 {
        let r = request(b'S', 0, &(200 + i).to_be_bytes());
        write_all(&mut client, &r);
        assert_eq!(read_frame(&mut client), payload(&r));
    }
    let st = server.stats();
    assert_eq!(st.jobs_done, 23, "{st}");
    assert_eq!(st.jobs_refused, 3, "{st}");
    assert_eq!(state.spawn_errors().len(), 3);
}
