//! The three implementations of the same loop: mio directly, ringport's standalone
//! `notify::Port`, and a ringport engine's watches (one worker, the work in `on_ready`).

use crate::ring::{Meter, Ring};
use crate::{Settings, Trigger};
use ringport::notify::{Interest, Notification, Port, Ready, WatchError, WatchRemoved};
use ringport::{Client, CloseReason, Conn, Handler, Posted, WatchCtl};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A wait with nothing for this long means the token ring stopped.
const STALL: Duration = Duration::from_secs(2);

fn stalled(what: &str, meter: &Meter) -> io::Error {
    io::Error::other(format!(
        "{what}: no notification for {STALL:?} after {} notifications: the tokens stopped moving",
        meter.notifications()
    ))
}

/// mio's `Poll` (epoll, always edge-triggered). Level is emulated: after each event the
/// registration is renewed with `reregister` (EPOLL_CTL_MOD), which makes epoll look at
/// the socket again and report it if it is still readable.
pub fn mio(s: &Settings, ring: &Ring, meter: &Meter) -> io::Result<()> {
    use mio::unix::SourceFd;
    use mio::{Events, Poll, Token};
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    for i in 0..ring.len() {
        let fd = ring.watched(i).as_raw_fd();
        poll.registry()
            .register(&mut SourceFd(&fd), Token(i), mio::Interest::READABLE)?;
    }
    let level = s.trigger == Trigger::Level;
    ring.seed()?;
    meter.start(s.warmup, s.duration);
    while !meter.finished() {
        match poll.poll(&mut events, Some(STALL)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if events.is_empty() {
            return Err(stalled("mio", meter));
        }
        meter.woke();
        for ev in &events {
            let i = ev.token().0;
            if ev.is_error() {
                meter.anomaly();
            }
            let n = ring.pass(i);
            if level {
                let fd = ring.watched(i).as_raw_fd();
                poll.registry().reregister(
                    &mut SourceFd(&fd),
                    Token(i),
                    mio::Interest::READABLE,
                )?;
            }
            meter.notified(n);
        }
    }
    Ok(())
}

fn interest(t: Trigger) -> Interest {
    match t {
        Trigger::Edge => Interest::READABLE.edge(),
        Trigger::Level => Interest::READABLE,
    }
}

fn odd(ready: Ready) -> bool {
    ready.is_error() || ready.is_hangup() || !ready.is_readable()
}

/// A standalone `ringport::notify::Port` and a loop around `Port::wait`.
pub fn port(s: &Settings, ring: &Ring, meter: &Meter) -> io::Result<()> {
    let mut port = Port::with_backend(s.backend)?;
    let want = interest(s.trigger);
    for i in 0..ring.len() {
        let fd = OwnedFd::from(ring.watched(i).try_clone()?);
        port.register(fd, want, i as u64)
            .map_err(|r| io::Error::other(format!("register pair {i}: {}", r.error)))?;
    }
    let mut got: Vec<Notification> = Vec::with_capacity(4096);
    ring.seed()?;
    meter.start(s.warmup, s.duration);
    while !meter.finished() {
        got.clear();
        port.wait(&mut got, Some(STALL))?;
        if got.is_empty() {
            return Err(stalled("port", meter));
        }
        meter.woke();
        for n in got.drain(..) {
            match n {
                Notification::Ready { token, ready, .. } => {
                    if odd(ready) {
                        meter.anomaly();
                    }
                    let bytes = ring.pass(token as usize);
                    meter.notified(bytes);
                }
                Notification::Removed(r) => {
                    eprintln!(
                        "port: watch of pair {} removed mid-run: {}",
                        r.token, r.reason
                    );
                    meter.anomaly();
                }
            }
        }
    }
    Ok(())
}

/// Posted to the worker once every watch is armed: put the tokens in and start the clock
/// there, so that (as in the other loops) all of them are in before the loop handles the
/// first one. Seeded from another thread, the worker (sharing the CPU) could move an
/// early token onto a socket not seeded yet, and two tokens would travel as one.
struct Seed {
    warmup: Duration,
    duration: Duration,
}

/// The engine's handler: the ring and the meter, the work in `on_ready`.
struct Bench {
    ring: Arc<Ring>,
    meter: Arc<Meter>,
}

impl Handler for Bench {
    type Session = ();

    fn on_open(&self, _conn: &mut Conn) {}

    fn on_data(&self, _session: &mut (), _conn: &mut Conn, _data: &[u8]) {}

    fn on_close(&self, _session: (), _conn: &Conn, _reason: CloseReason) {}

    fn on_ready(&self, token: u64, ready: Ready, _watch: &mut WatchCtl<'_>) {
        if odd(ready) {
            self.meter.anomaly();
        }
        let bytes = self.ring.pass(token as usize);
        self.meter.notified(bytes);
    }

    fn on_worker_posted(&self, _worker: usize, value: Posted) {
        if let Ok(seed) = value.downcast::<Seed>() {
            if let Err(e) = self.ring.seed() {
                eprintln!("engine: seeding the ring: {e}");
                self.meter.anomaly();
            }
            self.meter.start(seed.warmup, seed.duration);
        }
    }

    fn on_watch_removed(&self, removed: WatchRemoved) {
        if !self.meter.finished() {
            eprintln!(
                "engine: watch of pair {} removed mid-run: {}",
                removed.token, removed.reason
            );
            self.meter.anomaly();
        }
    }
}

/// A ringport client engine (no listeners) with one worker; every `b_i` watched on it.
/// This thread only sets up and waits; the worker thread seeds the ring, does the loop
/// and measures itself (the meter runs inside `on_ready`).
pub fn engine(s: &Settings, ring: Arc<Ring>, meter: Arc<Meter>) -> io::Result<()> {
    let handler = Bench {
        ring: ring.clone(),
        meter: meter.clone(),
    };
    let client = Client::builder()
        .workers(1)
        .backend(s.backend)
        .start(handler)
        .map_err(|e| io::Error::other(format!("engine start: {e}")))?;
    let workers = client.workers();
    let want = interest(s.trigger);
    for i in 0..ring.len() {
        let mut fd = OwnedFd::from(ring.watched(i).try_clone()?);
        loop {
            match workers.watch_on(0, fd, want, i as u64) {
                Ok(_) => break,
                Err(r) if matches!(r.error, WatchError::Busy) => {
                    fd = r.fd; // the mailbox is full: let the worker catch up
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(r) => return Err(io::Error::other(format!("watch pair {i}: {}", r.error))),
            }
        }
    }
    // Every watch armed before the tokens go in (the gauge is published once per loop).
    let until = Instant::now() + Duration::from_secs(10);
    while client.stats().watches < ring.len() as u64 {
        if Instant::now() > until {
            return Err(io::Error::other(format!(
                "engine: only {} of {} watches registered after 10 s",
                client.stats().watches,
                ring.len()
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let seed = Seed {
        warmup: s.warmup,
        duration: s.duration,
    };
    workers
        .post(0, seed)
        .map_err(|e| io::Error::other(format!("engine: posting the seed: {e}")))?;
    let marks = meter.window_marks(s.warmup + s.duration + STALL);
    let stats = client.stats();
    let report = client.shutdown(Duration::from_secs(1));
    if marks.is_none() {
        return Err(io::Error::other(format!(
            "engine: the window did not close within {:?}: {} notifications counted by on_ready, \
             {} by the engine (watch_notifications), {} watches; shutdown: {report:?}",
            s.warmup + s.duration + STALL,
            meter.notifications(),
            stats.watch_notifications,
            stats.watches
        )));
    }
    Ok(())
}
