//! A half-close right after pipelining past the job cap: the frames held for the cap
//! reach the handler before `on_eof`, so every echo comes back before the close.

mod util;

use ringport::codec::{Endian, LengthCodec};
use ringport::{CloseReason, Codec, Conn, Handler, JobDone, Server};
use std::io::{Read, Write};
use std::time::Duration;
use util::{watchdog, TEST_LIMIT};

struct Slow;
impl Handler for Slow {
    type Session = ();
    fn on_open(&self, _c: &mut Conn) {}
    fn on_data(&self, _s: &mut (), conn: &mut Conn, frame: &[u8]) {
        let n = u32::from_be_bytes(frame[..4].try_into().unwrap());
        conn.spawn_job(move || {
            std::thread::sleep(Duration::from_micros(u64::from(n * 7919 % 500)));
            n
        })
        .expect("spawned");
    }
    fn on_job_done(&self, _s: &mut (), conn: &mut Conn, done: JobDone) {
        let n: u32 = done.downcast().expect("a u32");
        conn.send_frame(&n.to_be_bytes()).unwrap();
    }
    fn on_close(&self, _s: (), _c: &Conn, _r: CloseReason) {}
}

/// The peer half-closes right after pipelining more frames than the job cap lets in: the
/// frames held for the cap still go to the handler before `on_eof` (whose default close
/// waits for their jobs), so every echo comes back before the server closes.
#[test]
fn a_half_close_waits_for_frames_held_at_the_job_cap() {
    let _w = watchdog("jobs-eof-held", TEST_LIMIT);
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .codec(Codec::Length(LengthCodec::new(4, Endian::Big).unwrap()))
        .workers(1)
        .jobs(2)
        .jobs_per_connection(2)
        .start(Slow)
        .unwrap();
    let addr = server.local_addrs()[0];
    for round in 0..20 {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut out = Vec::new();
        for n in 0..100u32 {
            out.extend_from_slice(&4u32.to_be_bytes());
            out.extend_from_slice(&n.to_be_bytes());
        }
        s.write_all(&out).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut back = Vec::new();
        s.read_to_end(&mut back)
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(back.len(), out.len(), "round {round}: echo then close");
        assert_eq!(back, out, "round {round}");
    }
    let st = server.stats();
    assert_eq!(st.jobs_done, 2000, "{st}");
}
