//! Bounded sends from other threads: `ConnRef::try_send` refuses (`SendError::Full`)
//! once the connection's queue would pass its high-water mark, so a producer facing a
//! peer that does not read queues a bounded amount; `send_timeout` and `send_async`
//! wait for room and go once the peer reads; all of them say `Closing` once the
//! connection has closed. Plain `ConnRef::send` is never refused by the level.

#[path = "util/jobs.rs"]
mod jobs;
mod util;

use jobs::JobEcho;
use ringport::{Bytes, SendError, SendQueueLimits, Server};
use std::future::Future;
use std::io::Read;
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::Duration;
use util::{connect_slow_reader, wait_until, watchdog, TEST_LIMIT, WAIT};

const HIGH_WATER: usize = 256 * 1024;
const CHUNK: usize = 64 * 1024;

struct Noop;
impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

#[test]
fn try_send_is_refused_above_the_high_water_mark_and_the_waiting_sends_go_once_read() {
    let _w = watchdog("send-room", TEST_LIMIT);
    let (handler, state) = JobEcho::new();
    let mut limits = SendQueueLimits::default();
    limits.high_water = HIGH_WATER;
    limits.low_water = HIGH_WATER / 4;
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(1)
        .send_queue(limits)
        .start(handler)
        .unwrap();
    let addr = server.local_addrs()[0];
    let mut client = connect_slow_reader(addr);
    wait_until(WAIT, "on_open", || state.opened() == 1);
    let conn = state.handles.lock().unwrap()[0].clone();
    let chunk = Bytes::from(vec![0x5au8; CHUNK]);

    // Push until refused, then keep pushing a while: what the connection holds beyond
    // what the kernel took never passes the mark by more than a chunk.
    let mut accepted = 0usize;
    let mut fulls = 0;
    let check = |accepted: usize| {
        let taken = server.stats().bytes_out as usize;
        assert!(
            accepted - taken <= HIGH_WATER + CHUNK,
            "{accepted} bytes accepted, {taken} taken by the kernel: {} queued",
            accepted - taken
        );
    };
    let started = std::time::Instant::now();
    while fulls < 200 {
        assert!(
            started.elapsed() < WAIT,
            "still not refused ({accepted} accepted)"
        );
        match conn.try_send(chunk.clone()) {
            Ok(()) => {
                accepted += CHUNK;
                check(accepted);
            }
            Err(SendError::Full) => {
                fulls += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("try_send: {e:?}"),
        }
    }
    println!(
        "accepted {accepted}, kernel took {}",
        server.stats().bytes_out
    );

    // No room while the peer does not read: a short send_timeout gives up, send_async
    // waits.
    assert_eq!(
        conn.send_timeout(chunk.clone(), Duration::from_millis(50)),
        Err(SendError::Full)
    );
    let mut waiting = Box::pin(conn.send_async(chunk.clone()));
    let noop = Waker::from(Arc::new(Noop));
    assert!(
        waiting
            .as_mut()
            .poll(&mut Context::from_waker(&noop))
            .is_pending(),
        "send_async went with no room"
    );
    // Plain send is not held to the level.
    conn.send(chunk.clone()).expect("a plain send");
    accepted += CHUNK;

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let received = std::thread::scope(|s| {
        let waited = s.spawn(|| rt.block_on(waiting));
        // The peer reads: room comes, the waiting sends go.
        let reader = s.spawn(|| {
            let mut total = 0usize;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match client.read(&mut buf) {
                    Ok(0) => return total,
                    Ok(n) => total += n,
                    Err(e) => panic!("reading after {total} bytes: {e}"),
                }
            }
        });
        conn.send_timeout(chunk.clone(), Duration::from_secs(10))
            .expect("send_timeout once the peer reads");
        waited
            .join()
            .unwrap()
            .expect("send_async once the peer reads");
        conn.close().unwrap();
        reader.join().unwrap()
    });
    accepted += 2 * CHUNK;
    assert_eq!(received, accepted, "bytes accepted and bytes received");

    // Closed: every bounded send says so.
    wait_until(WAIT, "on_close", || state.reasons().len() == 1);
    let closed =
        |r: Result<(), SendError>| matches!(r, Err(SendError::Closing | SendError::WorkerStopped));
    assert!(closed(conn.try_send(chunk.clone())));
    assert!(closed(
        conn.send_timeout(chunk.clone(), Duration::from_secs(10))
    ));
    assert!(closed(rt.block_on(conn.send_async(chunk.clone()))));
}
