//! A job-running echo server for the job tests (`#[path = "util/jobs.rs"] mod jobs;`).
//!
//! Every request is one length-prefixed frame (4-byte big-endian length) whose payload
//! is `[op][delay: u32 BE][anything]`; the handler spawns one job per frame and, when
//! its result comes back, sends the request payload back unchanged as one frame. A spawn
//! that is refused is answered at once with a frame `!{JobError:?}`. Ops:
//! - `S`: the job sleeps `delay` µs (none if 0); `B`: it spins `delay` µs;
//! - `G`: it waits until the test opens [`Gate`];
//! - `P`: it panics;
//! - `A`: an async task (`Conn::spawn_async`, feature tokio) sleeps `delay` µs.
//!
//! The handler records what the tests check: close reasons, callbacks for a connection
//! after its `on_close` (must stay zero), the most jobs outstanding right after a spawn,
//! spawn errors.
#![allow(dead_code)]

use ringport::codec::{Endian, LengthCodec};
use ringport::{CloseReason, Codec, Conn, ConnId, ConnRef, Handler, JobDone, JobError};
use std::collections::HashSet;
use std::io::Read;
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The codec of every job test: 4-byte big-endian length, then the payload.
/// Start a two-worker `JobEcho` server on 127.0.0.1:0 from `builder` (its pool, cap and
/// runtime); returns it, its address and what the handler records.
pub fn start(
    builder: ringport::ServerBuilder,
) -> (
    ringport::Server<JobEcho>,
    std::net::SocketAddr,
    Arc<JobState>,
) {
    let (handler, state) = JobEcho::new();
    let server = builder
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(2)
        .codec(codec())
        .start(handler)
        .expect("start the server");
    let addr = server.local_addrs()[0];
    (server, addr, state)
}

pub fn codec() -> Codec {
    Codec::Length(LengthCodec::new(4, Endian::Big).unwrap())
}

/// A closed-until-opened gate jobs wait on.
#[derive(Default)]
pub struct Gate {
    open: Mutex<bool>,
    cond: Condvar,
}

impl Gate {
    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cond.notify_all();
    }

    fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.cond.wait(open).unwrap();
        }
    }
}

/// What the handler saw, shared with the test.
#[derive(Default)]
pub struct JobState {
    pub gate: Gate,
    /// Connections whose `on_close` ran.
    closed: Mutex<HashSet<ConnId>>,
    /// Callbacks (`on_data`, `on_job_done`, `on_eof`) for a connection after its
    /// `on_close`.
    pub late: AtomicU64,
    /// Every `on_close` reason, in call order.
    pub reasons: Mutex<Vec<CloseReason>>,
    /// `on_open` calls, and a handle to each connection in open order.
    pub handles: Mutex<Vec<ConnRef>>,
    /// The most `jobs_outstanding()` seen right after a spawn.
    pub max_outstanding: AtomicU64,
    /// Every refused spawn.
    pub spawn_errors: Mutex<Vec<JobError>>,
    /// `on_job_done` calls.
    pub done: AtomicU64,
}

impl JobState {
    pub fn reasons(&self) -> Vec<CloseReason> {
        self.reasons.lock().unwrap().clone()
    }

    pub fn opened(&self) -> usize {
        self.handles.lock().unwrap().len()
    }

    pub fn late(&self) -> u64 {
        self.late.load(SeqCst)
    }

    pub fn spawn_errors(&self) -> Vec<JobError> {
        self.spawn_errors.lock().unwrap().clone()
    }

    fn check_open(&self, conn: &Conn) {
        if self.closed.lock().unwrap().contains(&conn.id()) {
            self.late.fetch_add(1, SeqCst);
        }
    }
}

/// The handler (see the module docs).
#[derive(Clone)]
pub struct JobEcho(pub Arc<JobState>);

impl JobEcho {
    pub fn new() -> (JobEcho, Arc<JobState>) {
        let state = Arc::new(JobState::default());
        (JobEcho(state.clone()), state)
    }
}

fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

impl Handler for JobEcho {
    type Session = ();

    fn on_open(&self, conn: &mut Conn) {
        self.0.handles.lock().unwrap().push(conn.handle());
    }

    fn on_data(&self, _s: &mut (), conn: &mut Conn, frame: &[u8]) {
        self.0.check_open(conn);
        assert!(frame.len() >= 5, "a request is [op][delay u32]...");
        let op = frame[0];
        let delay = Duration::from_micros(u64::from(u32::from_be_bytes(
            frame[1..5].try_into().unwrap(),
        )));
        let request = frame.to_vec();
        let spawned = match op {
            b'S' => conn.spawn_job(move || {
                if !delay.is_zero() {
                    std::thread::sleep(delay);
                }
                request
            }),
            b'B' => conn.spawn_job(move || {
                spin(delay);
                request
            }),
            b'G' => {
                let state = self.0.clone();
                conn.spawn_job(move || {
                    state.gate.wait();
                    request
                })
            }
            b'P' => conn.spawn_job(move || -> Vec<u8> { panic!("a job panics (on purpose)") }),
            #[cfg(feature = "tokio")]
            b'A' => conn.spawn_async(async move {
                tokio::time::sleep(delay).await;
                request
            }),
            other => panic!("unknown op {other}"),
        };
        match spawned {
            Ok(_) => {
                self.0
                    .max_outstanding
                    .fetch_max(conn.jobs_outstanding(), SeqCst);
            }
            Err(e) => {
                self.0.spawn_errors.lock().unwrap().push(e);
                conn.send_frame(format!("!{e:?}").as_bytes()).unwrap();
            }
        }
    }

    fn on_job_done(&self, _s: &mut (), conn: &mut Conn, done: JobDone) {
        self.0.check_open(conn);
        self.0.done.fetch_add(1, SeqCst);
        let request: Vec<u8> = done.downcast().expect("every job returns a Vec<u8>");
        conn.send_frame(&request).unwrap();
    }

    fn on_eof(&self, _s: &mut (), conn: &mut Conn) {
        self.0.check_open(conn);
        conn.close();
    }

    fn on_close(&self, _s: (), conn: &Conn, reason: CloseReason) {
        self.0.closed.lock().unwrap().insert(conn.id());
        self.0.reasons.lock().unwrap().push(reason);
    }
}

/// A request frame on the wire: length, op, delay in µs, `body`.
pub fn request(op: u8, delay_us: u32, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(9 + body.len());
    f.extend_from_slice(&(5 + body.len() as u32).to_be_bytes());
    f.push(op);
    f.extend_from_slice(&delay_us.to_be_bytes());
    f.extend_from_slice(body);
    f
}

/// Read one frame's payload (panics on EOF, error or timeout).
#[track_caller]
pub fn read_frame(stream: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    stream
        .read_exact(&mut len)
        .unwrap_or_else(|e| panic!("reading a frame's length: {e}"));
    let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
    stream
        .read_exact(&mut payload)
        .unwrap_or_else(|e| panic!("reading a frame's payload: {e}"));
    payload
}

/// The payload of a request frame (what its answer carries).
pub fn payload(request: &[u8]) -> &[u8] {
    &request[4..]
}
