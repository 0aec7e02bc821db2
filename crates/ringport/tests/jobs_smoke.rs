//! A first look at the job pool: results in order per connection with random durations.

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

#[test]
fn results_come_back_in_order() {
    let _w = watchdog("jobs-smoke", TEST_LIMIT);
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .codec(Codec::Length(LengthCodec::new(4, Endian::Big).unwrap()))
        .workers(1)
        .jobs(4)
        .start(Slow)
        .unwrap();
    let addr = server.local_addrs()[0];
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut out = Vec::new();
    for n in 0..200u32 {
        out.extend_from_slice(&4u32.to_be_bytes());
        out.extend_from_slice(&n.to_be_bytes());
    }
    s.write_all(&out).unwrap();
    let mut back = vec![0u8; out.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, out);
    let st = server.stats();
    assert_eq!(st.jobs_done, 200, "{st}");
    println!("{st}");
}
