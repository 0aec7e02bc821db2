//! Job results come back in spawn order, intact, on every connection: 100 connections
//! × 1,000 pipelined jobs of random durations (sleeps and spins) on a 4-thread pool.

#[path = "util/jobs.rs"]
mod jobs;
mod util;

use jobs::{request, JobEcho};
use rand::{Rng, SeedableRng};
use ringport::Server;
use std::time::Instant;
use util::{connect, read_n, wait_for_value, watchdog, write_all, TEST_LIMIT, WAIT};

const CONNS: usize = 100;
const JOBS: u32 = 1000;

/// One connection's requests: a sequence number and a random body each, a quarter with
/// no delay, half sleeping up to 200 µs, a quarter spinning up to 20 µs.
fn wire(rng: &mut impl Rng) -> Vec<u8> {
    let mut wire = Vec::new();
    for seq in 0..JOBS {
        let mut body = seq.to_be_bytes().to_vec();
        let extra = rng.gen_range(0..24);
        body.extend(util::random_bytes(rng, extra));
        let req = match rng.gen_range(0..4) {
            0 => request(b'S', 0, &body),
            1 | 2 => request(b'S', rng.gen_range(1..=200), &body),
            _ => request(b'B', rng.gen_range(0..=20), &body),
        };
        wire.extend(req);
    }
    wire
}

#[test]
fn a_hundred_connections_get_a_thousand_results_each_in_order() {
    let _w = watchdog("jobs-order", TEST_LIMIT);
    let (handler, state) = JobEcho::new();
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(2)
        .codec(jobs::codec())
        .jobs(4)
        .start(handler)
        .unwrap();
    let addr = server.local_addrs()[0];
    let mut rng = util::rng();
    let wires: Vec<Vec<u8>> = (0..CONNS).map(|_| wire(&mut rng)).collect();
    let seeds: Vec<u64> = (0..CONNS).map(|_| rng.gen()).collect();
    let start = Instant::now();
    std::thread::scope(|s| {
        for (i, (wire, seed)) in wires.iter().zip(seeds).enumerate() {
            s.spawn(move || {
                let mut stream = connect(addr);
                let mut writer = stream.try_clone().unwrap();
                // Written in random pieces, so frames straddle receives.
                let pieces = std::thread::spawn({
                    let wire = wire.clone();
                    move || {
                        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                        let mut off = 0;
                        while off < wire.len() {
                            let n = rng.gen_range(1..=4096).min(wire.len() - off);
                            write_all(&mut writer, &wire[off..off + n]);
                            off += n;
                        }
                    }
                });
                let back = read_n(&mut stream, wire.len());
                pieces.join().unwrap();
                if let Some(at) = back.iter().zip(wire).position(|(a, b)| a != b) {
                    panic!("connection {i}: the answers differ from the requests at byte {at}");
                }
            });
        }
    });
    let took = start.elapsed();
    let total = CONNS as u64 * u64::from(JOBS);
    wait_for_value(WAIT, "jobs done", || server.stats().jobs_done, total);
    let st = server.stats();
    println!("{total} jobs in {took:?}\n{st}");
    assert_eq!(st.jobs_spawned, total, "{st}");
    assert_eq!(st.jobs_outstanding, 0, "{st}");
    assert_eq!(
        st.jobs_skipped + st.jobs_dropped + st.jobs_panicked + st.jobs_refused,
        0,
        "{st}"
    );
    assert!(state.spawn_errors().is_empty());
    let pool = st.job_pool.expect("a pool");
    assert_eq!((pool.threads, pool.run_time.count), (4, total));
}
