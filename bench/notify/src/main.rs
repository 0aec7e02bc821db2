//! notify-bench: readiness notifications per second and CPU time per notification, for
//! mio used directly (the anchor) and for ringport's `notify::Port` and engine watches,
//! all on one identical single-threaded workload (see `ring.rs`).
//!
//! ```text
//! notify-bench --impl mio|port|engine [--backend uring|poll] [--pairs 1000]
//!              [--inflight 64] [--trigger edge|level] [--duration 5] [--warmup 1] [--json]
//! ```

mod loops;
mod ring;

use ring::{Mark, Meter, Ring};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    Mio,
    Port,
    Engine,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Edge,
    Level,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub imp: Impl,
    pub backend: ringport::Backend,
    pub pairs: usize,
    pub inflight: usize,
    pub trigger: Trigger,
    pub duration: Duration,
    pub warmup: Duration,
    pub json: bool,
}

const USAGE: &str = "usage: notify-bench --impl mio|port|engine [--backend uring|poll] \
[--pairs N] [--inflight N] [--trigger edge|level] [--duration SECS] [--warmup SECS] [--json]";

fn parse() -> Result<Settings, String> {
    let mut s = Settings {
        imp: Impl::Mio,
        backend: ringport::Backend::Uring,
        pairs: 1000,
        inflight: 64,
        trigger: Trigger::Edge,
        duration: Duration::from_secs(5),
        warmup: Duration::from_secs(1),
        json: false,
    };
    let mut imp = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--json" {
            s.json = true;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.to_string());
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = || format!("{flag}: bad value {value:?}\n{USAGE}");
        let secs = |v: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .map(Duration::from_secs_f64)
        };
        match flag.as_str() {
            "--impl" => {
                imp = Some(match value.as_str() {
                    "mio" => Impl::Mio,
                    "port" => Impl::Port,
                    "engine" => Impl::Engine,
                    _ => return Err(bad()),
                })
            }
            "--backend" => {
                s.backend = match value.as_str() {
                    "uring" => ringport::Backend::Uring,
                    "poll" => ringport::Backend::Poll,
                    _ => return Err(bad()),
                }
            }
            "--trigger" => {
                s.trigger = match value.as_str() {
                    "edge" => Trigger::Edge,
                    "level" => Trigger::Level,
                    _ => return Err(bad()),
                }
            }
            "--pairs" => s.pairs = value.parse().map_err(|_| bad())?,
            "--inflight" => s.inflight = value.parse().map_err(|_| bad())?,
            "--duration" => s.duration = secs(&value).ok_or_else(bad)?,
            "--warmup" => s.warmup = secs(&value).ok_or_else(bad)?,
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    s.imp = imp.ok_or_else(|| format!("--impl is required\n{USAGE}"))?;
    if s.pairs == 0 || s.inflight == 0 || s.inflight > s.pairs {
        return Err("need 1 <= --inflight <= --pairs".to_string());
    }
    if s.duration.is_zero() {
        return Err("--duration must be above 0".to_string());
    }
    Ok(s)
}

fn main() -> ExitCode {
    let s = match parse() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&s) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("notify-bench ({}): {e}", label(&s));
            ExitCode::FAILURE
        }
    }
}

fn backend_name(s: &Settings) -> &'static str {
    match (s.imp, s.backend) {
        (Impl::Mio, _) => "epoll",
        (_, ringport::Backend::Poll) => "poll",
        _ => "uring",
    }
}

fn impl_name(i: Impl) -> &'static str {
    match i {
        Impl::Mio => "mio",
        Impl::Port => "port",
        Impl::Engine => "engine",
    }
}

fn trigger_name(t: Trigger) -> &'static str {
    match t {
        Trigger::Edge => "edge",
        Trigger::Level => "level",
    }
}

fn label(s: &Settings) -> String {
    format!(
        "{} {} {}",
        impl_name(s.imp),
        backend_name(s),
        trigger_name(s.trigger)
    )
}

fn run(s: &Settings) -> std::io::Result<()> {
    let ring = Arc::new(Ring::new(s.pairs, s.inflight)?);
    let meter = Arc::new(Meter::new());
    match s.imp {
        Impl::Mio => loops::mio(s, &ring, &meter)?,
        Impl::Port => loops::port(s, &ring, &meter)?,
        Impl::Engine => loops::engine(s, ring.clone(), meter.clone())?,
    }
    let (start, end) = meter
        .window_marks(Duration::ZERO)
        .ok_or_else(|| std::io::Error::other("the window never closed"))?;
    report(s, &start, &end, meter.anomalies());
    Ok(())
}

fn report(s: &Settings, start: &Mark, end: &Mark, anomalies: u64) {
    let secs = end.at.duration_since(start.at).as_secs_f64();
    let notes = (end.notifications - start.notifications) as f64;
    let bytes = (end.bytes - start.bytes) as f64;
    let thread = end.thread.since(start.thread);
    let process = end.process.since(start.process);
    let per = |x: f64| if notes > 0.0 { x / notes } else { f64::NAN };
    let wakeups = end.wakeups - start.wakeups;
    // The engine's loop is ringport's own: its waits are not visible from the handler.
    let per_wakeup = (s.imp != Impl::Engine && wakeups > 0).then(|| notes / wakeups as f64);
    let note = match (s.imp, s.trigger) {
        (Impl::Mio, Trigger::Level) => {
            "mio is edge-triggered only: level emulated by reregister (EPOLL_CTL_MOD) after every event"
        }
        (Impl::Engine, _) => "notifications/wakeup not observable from on_ready (the engine owns the loop)",
        _ => "",
    };
    let r = Report {
        imp: impl_name(s.imp),
        backend: backend_name(s),
        trigger: trigger_name(s.trigger),
        pairs: s.pairs,
        inflight: s.inflight,
        window_s: secs,
        notifications: notes as u64,
        notif_per_s: notes / secs,
        bytes_per_s: bytes / secs,
        bytes_per_notif: per(bytes),
        cpu_us_per_notif: per(thread.cpu_us()),
        user_us_per_notif: per(thread.user_us),
        sys_us_per_notif: per(thread.sys_us),
        process_cpu_us_per_notif: per(process.cpu_us()),
        thread_cpu_share: thread.cpu_us() / (secs * 1e6),
        notif_per_wakeup: per_wakeup,
        vol_ctxsw_per_s: thread.nvcsw as f64 / secs,
        invol_ctxsw_per_s: thread.nivcsw as f64 / secs,
        anomalies,
        note,
    };
    if s.json {
        println!("{}", r.json());
    } else {
        print!("{}", r.text());
    }
}

struct Report {
    imp: &'static str,
    backend: &'static str,
    trigger: &'static str,
    pairs: usize,
    inflight: usize,
    window_s: f64,
    notifications: u64,
    notif_per_s: f64,
    bytes_per_s: f64,
    bytes_per_notif: f64,
    cpu_us_per_notif: f64,
    user_us_per_notif: f64,
    sys_us_per_notif: f64,
    process_cpu_us_per_notif: f64,
    thread_cpu_share: f64,
    notif_per_wakeup: Option<f64>,
    vol_ctxsw_per_s: f64,
    invol_ctxsw_per_s: f64,
    anomalies: u64,
    note: &'static str,
}

/// A JSON number (NaN and infinities as null).
fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.6}")
    } else {
        "null".to_string()
    }
}

impl Report {
    fn json(&self) -> String {
        let per_wakeup = self.notif_per_wakeup.map_or("null".to_string(), num);
        // Every string here is one of our own fixed words: nothing to escape.
        format!(
            concat!(
                "{{\"impl\":\"{}\",\"backend\":\"{}\",\"trigger\":\"{}\",\"pairs\":{},",
                "\"inflight\":{},\"window_s\":{},\"notifications\":{},\"notif_per_s\":{},",
                "\"bytes_per_s\":{},\"bytes_per_notif\":{},\"cpu_us_per_notif\":{},",
                "\"user_us_per_notif\":{},\"sys_us_per_notif\":{},",
                "\"process_cpu_us_per_notif\":{},\"thread_cpu_share\":{},",
                "\"notif_per_wakeup\":{},\"vol_ctxsw_per_s\":{},\"invol_ctxsw_per_s\":{},",
                "\"anomalies\":{},\"note\":\"{}\"}}"
            ),
            self.imp,
            self.backend,
            self.trigger,
            self.pairs,
            self.inflight,
            num(self.window_s),
            self.notifications,
            num(self.notif_per_s),
            num(self.bytes_per_s),
            num(self.bytes_per_notif),
            num(self.cpu_us_per_notif),
            num(self.user_us_per_notif),
            num(self.sys_us_per_notif),
            num(self.process_cpu_us_per_notif),
            num(self.thread_cpu_share),
            per_wakeup,
            num(self.vol_ctxsw_per_s),
            num(self.invol_ctxsw_per_s),
            self.anomalies,
            self.note
        )
    }

    fn text(&self) -> String {
        let per_wakeup = self
            .notif_per_wakeup
            .map_or("n/a".to_string(), |x| format!("{x:.1}"));
        let mut t = format!(
            "{} ({}, {}), {} pairs, {} in flight, window {:.2} s\n\
             notifications/s        {:.0}\n\
             bytes/s                {:.0}  ({:.3} bytes/notification)\n\
             CPU us/notification    {:.3}  (loop thread: user {:.3} + sys {:.3}; whole process {:.3})\n\
             loop thread busy       {:.1}% of the window\n\
             notifications/wakeup   {}\n\
             context switches/s     {:.1} voluntary, {:.1} involuntary (loop thread)\n",
            self.imp,
            self.backend,
            self.trigger,
            self.pairs,
            self.inflight,
            self.window_s,
            self.notif_per_s,
            self.bytes_per_s,
            self.bytes_per_notif,
            self.cpu_us_per_notif,
            self.user_us_per_notif,
            self.sys_us_per_notif,
            self.process_cpu_us_per_notif,
            self.thread_cpu_share * 100.0,
            per_wakeup,
            self.vol_ctxsw_per_s,
            self.invol_ctxsw_per_s,
        );
        if self.anomalies > 0 {
            t += &format!(
                "ANOMALIES              {} (error/hang-up readiness or watches removed mid-run)\n",
                self.anomalies
            );
        }
        if !self.note.is_empty() {
            t += &format!("note: {}\n", self.note);
        }
        t
    }
}
