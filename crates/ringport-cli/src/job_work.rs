//! `echo-server --jobs N --job-work KIND`: each frame (or raw chunk) is echoed back
//! unchanged only after a job on the pool has done some work for it: `hash:ITERS`
//! rounds of a hash over its bytes, or `sleep:MS` milliseconds.
//!
//! The job takes the bytes and hands them back with its result; the library delivers
//! results in spawn order per connection, so the echo keeps the order an echo client
//! checks. A graceful close (the default `on_eof`) waits for outstanding jobs and sends
//! what their results queue, so a client that half-closes still gets every echo.

use ringport::{CloseReason, Conn, Handler, JobDone};
use std::fmt;
use std::hint::black_box;
use std::time::Duration;

/// The most hash rounds `hash:ITERS` takes (each round reads the whole frame).
pub const MAX_HASH_ITERS: u32 = 10_000_000;
/// The longest `sleep:MS`: one minute.
pub const MAX_SLEEP_MS: u64 = 60_000;

/// `--jobs N --job-work KIND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EchoJobs {
    /// Threads of the job pool.
    pub threads: usize,
    pub work: JobWork,
}

/// What a job does before its bytes are echoed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobWork {
    /// `hash:ITERS`: ITERS rounds of a 64-bit mixing hash over the bytes, each round
    /// seeded with the last one's digest (0: only the round trip through the pool).
    Hash { iters: u32 },
    /// `sleep:MS`: the pool thread sleeps (a blocking call, e.g. a disk read).
    Sleep(Duration),
}

impl fmt::Display for JobWork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobWork::Hash { iters } => write!(f, "hash:{iters}"),
            JobWork::Sleep(d) => write!(f, "sleep:{}", d.as_millis()),
        }
    }
}

/// Parse `hash:ITERS` (0 to 10,000,000) or `sleep:MS` (0 to 60,000).
pub fn parse_job_work(text: &str) -> Result<JobWork, String> {
    let (kind, number) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?}: expected hash:ITERS or sleep:MS"))?;
    let number = number.trim();
    match kind.trim() {
        "hash" => {
            let iters = bounded(number, u64::from(MAX_HASH_ITERS), "hash rounds")?;
            Ok(JobWork::Hash {
                iters: u32::try_from(iters).map_err(|e| e.to_string())?,
            })
        }
        "sleep" => Ok(JobWork::Sleep(Duration::from_millis(bounded(
            number,
            MAX_SLEEP_MS,
            "milliseconds",
        )?))),
        other => Err(format!(
            "unknown job work {other:?} (expected hash:ITERS or sleep:MS)"
        )),
    }
}

/// A whole number from 0 to `max`.
fn bounded(number: &str, max: u64, what: &str) -> Result<u64, String> {
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{number:?} is not a number of {what} (0 to {max})"))?;
    if n > max {
        return Err(format!("{n} {what} is too many (at most {max})"));
    }
    Ok(n)
}

impl JobWork {
    /// Do the work for `data` (on a pool thread).
    pub fn run(self, data: &[u8]) {
        match self {
            JobWork::Hash { iters } => {
                black_box(hash_rounds(data, iters));
            }
            JobWork::Sleep(d) => std::thread::sleep(d),
        }
    }
}

/// `iters` rounds of a word-at-a-time multiply-xorshift hash over `data`, each round
/// seeded with the last round's digest, so no round can be skipped or hoisted.
pub fn hash_rounds(data: &[u8], iters: u32) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut digest = 0xcbf2_9ce4_8422_2325_u64 ^ data.len() as u64;
    for round in 0..iters {
        let mut h = digest ^ u64::from(round).wrapping_mul(K);
        let words = black_box(data).chunks_exact(8);
        let tail = words.remainder();
        for word in words {
            let w = u64::from_le_bytes(word.try_into().unwrap_or_default());
            h = (h ^ w).wrapping_mul(K).rotate_left(29);
        }
        for &b in tail {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        digest = h ^ (h >> 32);
    }
    digest
}

/// The echo handler with jobs: `on_data` hands the bytes to a job, `on_job_done` echoes
/// them.
pub struct JobEcho {
    /// Echo whole frames re-encoded with the codec (false: raw chunks as they came).
    pub framed: bool,
    pub work: JobWork,
}

impl Handler for JobEcho {
    type Session = ();

    fn on_open(&self, conn: &mut Conn) {
        tracing::debug!(conn = %conn.id(), peer = %conn.peer_addr(), "open");
    }

    fn on_data(&self, _session: &mut (), conn: &mut Conn, data: &[u8]) {
        let (work, data) = (self.work, data.to_vec());
        let spawned = conn.spawn_job(move || {
            work.run(&data);
            data
        });
        if let Err(e) = spawned {
            // The engine hands no data at the per-connection cap, so this is a full pool
            // queue or a closing connection: an echo would be lost, so say so and close.
            tracing::warn!(conn = %conn.id(), error = %e, "job refused; closing");
            conn.abort();
        }
    }

    fn on_job_done(&self, _session: &mut (), conn: &mut Conn, done: JobDone) {
        let Ok(data) = done.downcast::<Vec<u8>>() else {
            tracing::warn!(conn = %conn.id(), "a job returned something else; closing");
            conn.abort();
            return;
        };
        if !self.framed {
            conn.send(&data);
        } else if let Err(e) = conn.send_frame(&data) {
            tracing::warn!(conn = %conn.id(), error = %e, "cannot re-frame; closing");
            conn.abort();
        }
    }

    fn on_close(&self, _session: (), conn: &Conn, reason: CloseReason) {
        tracing::debug!(conn = %conn.id(), %reason, "closed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_kinds_and_their_limits() {
        assert_eq!(
            parse_job_work("hash:1000"),
            Ok(JobWork::Hash { iters: 1000 })
        );
        assert_eq!(
            parse_job_work("sleep:100"),
            Ok(JobWork::Sleep(Duration::from_millis(100)))
        );
        assert_eq!(parse_job_work("hash:0"), Ok(JobWork::Hash { iters: 0 }));
        assert!(parse_job_work("hash:10000001")
            .unwrap_err()
            .contains("at most 10000000"));
        assert!(parse_job_work("sleep:60001")
            .unwrap_err()
            .contains("at most 60000"));
        assert!(parse_job_work("sleep:99999999999999999999")
            .unwrap_err()
            .contains("not a number"));
        assert!(parse_job_work("hash:-1")
            .unwrap_err()
            .contains("not a number"));
        assert!(parse_job_work("md5:3").unwrap_err().contains("unknown"));
        assert!(parse_job_work("hash").unwrap_err().contains("expected"));
        assert_eq!(parse_job_work("hash:7").unwrap().to_string(), "hash:7");
    }

    #[test]
    fn the_hash_depends_on_rounds_and_bytes() {
        let data = b"the quick brown fox jumps over the lazy dog";
        assert_ne!(hash_rounds(data, 1), hash_rounds(data, 2));
        assert_ne!(hash_rounds(data, 3), hash_rounds(b"the quick brown fox", 3));
        assert_eq!(hash_rounds(data, 5), hash_rounds(data, 5));
    }
}
