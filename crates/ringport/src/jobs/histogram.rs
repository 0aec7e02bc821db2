//! Latency histograms for the pool: log-linear buckets of nanoseconds (eight per power
//! of two, so a percentile is within 12.5% of the truth), one per pool thread so each has
//! a single writer, summed when read.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Values below this many nanoseconds have a bucket each.
const LINEAR: u64 = 16;
/// Buckets per power of two above `LINEAR` (2^SUB_BITS).
const SUB_BITS: u32 = 3;
/// 16 exact buckets, then 8 for each power of two from 2^4 to 2^63.
const BUCKETS: usize = LINEAR as usize + (64 - 4) * (1 << SUB_BITS);

/// One thread's histogram (only that thread records into it).
pub(crate) struct Histogram {
    counts: Box<[AtomicU64]>,
    max: AtomicU64,
    /// Nanoseconds recorded in all (wrapping after 584 years' worth).
    sum: AtomicU64,
}

fn bucket_of(ns: u64) -> usize {
    if ns < LINEAR {
        return ns as usize;
    }
    let exp = 63 - ns.leading_zeros(); // >= 4
    let sub = (ns >> (exp - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    LINEAR as usize + ((exp - 4) as usize) * (1 << SUB_BITS) + sub as usize
}

/// The middle of bucket `i`, in nanoseconds.
fn value_of(i: usize) -> u64 {
    if i < LINEAR as usize {
        return i as u64;
    }
    let k = i - LINEAR as usize;
    let exp = (k >> SUB_BITS) as u32 + 4;
    let sub = (k & ((1 << SUB_BITS) - 1)) as u64;
    let width = 1u64 << (exp - SUB_BITS);
    let low = (1u64 << exp) + sub * width;
    low.saturating_add(width / 2)
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Record one value (single writer: plain loads and stores).
    pub(crate) fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let c = &self.counts[bucket_of(ns)];
        c.store(c.load(Relaxed) + 1, Relaxed);
        self.sum
            .store(self.sum.load(Relaxed).wrapping_add(ns), Relaxed);
        if ns > self.max.load(Relaxed) {
            self.max.store(ns, Relaxed);
        }
    }
}

/// Percentiles of a set of durations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Percentiles {
    /// How many were recorded.
    pub count: u64,
    /// The median.
    pub p50: Duration,
    /// The 90th percentile.
    pub p90: Duration,
    /// The 99th percentile.
    pub p99: Duration,
    /// The largest.
    pub max: Duration,
    /// All of them added up.
    pub total: Duration,
}

impl Percentiles {
    /// Sum `histograms` and read their percentiles.
    pub(crate) fn of<'a>(histograms: impl IntoIterator<Item = &'a Histogram>) -> Percentiles {
        let mut sum = vec![0u64; BUCKETS];
        let (mut max, mut total) = (0, 0u64);
        for h in histograms {
            total = total.wrapping_add(h.sum.load(Relaxed));
            for (s, c) in sum.iter_mut().zip(h.counts.iter()) {
                *s += c.load(Relaxed);
            }
            max = max.max(h.max.load(Relaxed));
        }
        let count: u64 = sum.iter().sum();
        let at = |q: f64| -> Duration {
            if count == 0 {
                return Duration::ZERO;
            }
            let rank = ((count as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, c) in sum.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return Duration::from_nanos(value_of(i).min(max));
                }
            }
            Duration::from_nanos(max)
        };
        Percentiles {
            count,
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: Duration::from_nanos(max),
            total: Duration::from_nanos(total),
        }
    }
}

/// A duration for people: "850 ns", "12.5 µs", "3.2 ms", "1.25 s".
pub(crate) struct Human(pub Duration);

impl std::fmt::Display for Human {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ns = self.0.as_nanos() as f64;
        if ns < 1e3 {
            write!(f, "{ns:.0} ns")
        } else if ns < 1e6 {
            write!(f, "{:.1} µs", ns / 1e3)
        } else if ns < 1e9 {
            write!(f, "{:.1} ms", ns / 1e6)
        } else {
            write!(f, "{:.2} s", ns / 1e9)
        }
    }
}

impl std::fmt::Display for Percentiles {
    /// `p50 1.2 ms, p90 2.0 ms, p99 3.4 ms, max 5.1 ms`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {}, p90 {}, p99 {}, max {}",
            Human(self.p50),
            Human(self.p90),
            Human(self.p99),
            Human(self.max)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order_within_an_eighth() {
        let mut last = 0;
        for ns in (0..4096u64).chain((12..64).map(|e| (1u64 << e) + 12345)) {
            let b = bucket_of(ns);
            assert!(b >= last && b < BUCKETS, "{ns} -> {b}");
            last = b;
            let mid = value_of(b) as f64;
            assert!(
                (mid - ns as f64).abs() <= ns as f64 / 8.0 + 1.0,
                "{ns} ~ {mid}"
            );
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_of_a_known_spread() {
        let (a, b) = (Histogram::default(), Histogram::default());
        for ms in 1..=100u64 {
            let h = if ms % 2 == 0 { &a } else { &b };
            h.record(Duration::from_millis(ms));
        }
        let p = Percentiles::of([&a, &b]);
        assert_eq!(p.count, 100);
        assert_eq!(p.max, Duration::from_millis(100));
        assert_eq!(p.total, Duration::from_millis(5050));
        let near = |d: Duration, ms: f64| (d.as_secs_f64() * 1e3 - ms).abs() <= ms / 8.0;
        assert!(near(p.p50, 50.0), "{:?}", p.p50);
        assert!(near(p.p90, 90.0), "{:?}", p.p90);
        assert!(near(p.p99, 99.0), "{:?}", p.p99);
        assert_eq!(
            Percentiles::of([&Histogram::default()]),
            Percentiles::default()
        );
    }
}
