use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Polls at `now` and returns the fired values, sorted.
fn fire_at<T: Ord>(wheel: &mut TimerWheel<T>, now: Instant) -> Vec<T> {
    let mut out = Vec::new();
    let n = wheel.poll(now, |v| out.push(v));
    assert_eq!(n, out.len());
    out.sort();
    out
}

#[test]
fn timers_fire_at_their_deadline_and_not_before() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(ms(10), 16, t0);
    wheel.insert(t0 + ms(25), "a");
    wheel.insert(t0 + ms(30), "b");
    wheel.insert(t0 + ms(31), "c");
    assert_eq!(wheel.len(), 3);
    assert!(fire_at(&mut wheel, t0 + ms(24)).is_empty());
    assert_eq!(fire_at(&mut wheel, t0 + ms(25)), vec!["a"]);
    // Same tick as "b" and "c": only the one that is due.
    assert_eq!(fire_at(&mut wheel, t0 + ms(30)), vec!["b"]);
    assert_eq!(wheel.next_deadline(), Some(t0 + ms(31)));
    assert_eq!(fire_at(&mut wheel, t0 + ms(1000)), vec!["c"]);
    assert!(wheel.is_empty());
    assert_eq!(wheel.next_deadline(), None);
}

#[test]
fn deadlines_many_revolutions_away_fire_on_time() {
    let t0 = Instant::now();
    // One revolution is 8 ms; these are 3, 10 and 1000 revolutions away, some sharing a
    // slot with nearer timers.
    let mut wheel = TimerWheel::new(ms(1), 8, t0);
    wheel.insert(t0 + ms(2), 2u64);
    wheel.insert(t0 + ms(26), 26);
    wheel.insert(t0 + ms(82), 82);
    wheel.insert(t0 + ms(8002), 8002);
    let mut now = t0;
    let mut fired = Vec::new();
    while let Some(next) = wheel.next_deadline() {
        assert!(next > now, "next_deadline must move past every poll");
        now = next;
        wheel.poll(now, |v| fired.push((v, now)));
    }
    let expect: Vec<_> = [2, 26, 82, 8002].iter().map(|&v| (v, t0 + ms(v))).collect();
    assert_eq!(fired, expect, "each timer fires exactly at its deadline");
}

#[test]
fn a_long_gap_between_polls_fires_everything_due_once() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(ms(1), 4, t0);
    for i in 0..100u64 {
        wheel.insert(t0 + ms(i * 7), i);
    }
    // 350 ms later: 87 revolutions skipped at once.
    let fired = fire_at(&mut wheel, t0 + ms(350));
    assert_eq!(fired, (0..=50).collect::<Vec<_>>());
    assert_eq!(wheel.len(), 49);
    // The next timer is more than a revolution (4 ms) ahead: the bound is the next
    // revolution's start, and the poll there finds the exact deadline.
    let bound = wheel.next_deadline().unwrap();
    assert!(bound > t0 + ms(350) && bound <= t0 + ms(357));
    assert!(fire_at(&mut wheel, bound).is_empty());
    assert_eq!(wheel.next_deadline(), Some(t0 + ms(357)));
}

#[test]
fn a_deadline_already_past_fires_at_the_next_poll() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(ms(10), 8, t0);
    wheel.insert(t0 + ms(500), 1);
    assert!(fire_at(&mut wheel, t0 + ms(200)).is_empty());
    // Earlier than the wheel's position, and even earlier than its start.
    wheel.insert(t0 + ms(150), 2);
    wheel.insert(t0.checked_sub(ms(5)).unwrap_or(t0), 3);
    assert!(wheel.next_deadline().unwrap() <= t0 + ms(150));
    assert_eq!(fire_at(&mut wheel, t0 + ms(200)), vec![2, 3]);
    assert_eq!(fire_at(&mut wheel, t0 + ms(500)), vec![1]);
}

#[test]
fn cancel_returns_the_value_once_and_stale_keys_are_harmless() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(ms(1), 8, t0);
    let a = wheel.insert(t0 + ms(5), "a");
    assert_eq!(wheel.cancel(a), Some("a"));
    assert_eq!(wheel.cancel(a), None);
    assert!(!wheel.reset(a, t0 + ms(1)));
    // The node is reused by the next timer; the old key must not reach it.
    let b = wheel.insert(t0 + ms(5), "b");
    assert_ne!(a, b);
    assert_eq!(wheel.cancel(a), None);
    assert_eq!(wheel.deadline(a), None);
    assert_eq!(wheel.deadline(b), Some(t0 + ms(5)));
    assert_eq!(fire_at(&mut wheel, t0 + ms(5)), vec!["b"]);
    // Fired timers' keys are stale too.
    assert_eq!(wheel.cancel(b), None);
    assert!(wheel.is_empty());
    assert_eq!(wheel.next_deadline(), None);
}

#[test]
fn reset_moves_a_timer_both_ways() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(ms(1), 8, t0);
    let later = wheel.insert(t0 + ms(3), "later");
    let sooner = wheel.insert(t0 + ms(40), "sooner");
    assert!(wheel.reset(later, t0 + ms(30)));
    assert!(wheel.reset(sooner, t0 + ms(2)));
    assert_eq!(wheel.next_deadline(), Some(t0 + ms(2)));
    assert_eq!(fire_at(&mut wheel, t0 + ms(29)), vec!["sooner"]);
    assert_eq!(fire_at(&mut wheel, t0 + ms(30)), vec!["later"]);
}

#[test]
fn next_deadline_is_never_later_than_the_earliest_and_catches_up_after_cancel() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(ms(1), 64, t0);
    let first = wheel.insert(t0 + ms(10), 1);
    wheel.insert(t0 + ms(20), 2);
    assert_eq!(wheel.next_deadline(), Some(t0 + ms(10)));
    wheel.cancel(first);
    // Still a valid lower bound; the poll at that time finds nothing and corrects it.
    assert_eq!(wheel.next_deadline(), Some(t0 + ms(10)));
    assert!(fire_at(&mut wheel, t0 + ms(10)).is_empty());
    assert_eq!(wheel.next_deadline(), Some(t0 + ms(20)));
}

#[test]
fn next_wakeup_batches_a_tick_and_is_at_most_one_tick_late() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(ms(10), 16, t0);
    for d in [41, 43, 47] {
        wheel.insert(t0 + ms(d), d);
    }
    wheel.insert(t0 + ms(75), 75);
    let wake = wheel.next_wakeup().unwrap();
    assert_eq!(wake, t0 + ms(50));
    assert!(wake - (t0 + ms(41)) <= wheel.tick());
    assert_eq!(fire_at(&mut wheel, wake), vec![41, 43, 47]);
    assert_eq!(wheel.next_wakeup(), Some(t0 + ms(80)));
}

#[test]
fn a_poll_before_the_next_deadline_does_nothing() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(ms(1), 8, t0);
    wheel.insert(t0 + ms(100), ());
    for step in 0..100 {
        assert_eq!(wheel.poll(t0 + ms(step), |_| panic!("fired early")), 0);
    }
    assert_eq!(wheel.poll(t0 + ms(100), |_| {}), 1);
}

#[derive(Debug, Clone)]
enum Op {
    /// Arm a timer this many ms after the current time (may be "negative" via `past`).
    Insert { after: u64, past: bool },
    /// Cancel the n-th key ever handed out (stale or not).
    Cancel(usize),
    /// Move the n-th key to this many ms after the current time.
    Reset(usize, u64),
    /// Advance the clock and poll.
    Poll(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..200, any::<bool>()).prop_map(|(after, past)| Op::Insert { after, past: past && after < 20 }),
        2 => any::<prop::sample::Index>().prop_map(|i| Op::Cancel(i.index(1 << 16))),
        2 => (any::<prop::sample::Index>(), 0u64..200).prop_map(|(i, a)| Op::Reset(i.index(1 << 16), a)),
        3 => (0u64..60).prop_map(Op::Poll),
    ]
}

proptest! {
    /// The wheel against a sorted map of (deadline, id): after every poll exactly the
    /// timers due by then have fired, and next_deadline never passes the earliest.
    #[test]
    fn wheel_matches_a_sorted_map(
        tick_us in 100u64..5_000,
        slots in 1usize..16,
        ops in prop::collection::vec(op(), 1..300),
    ) {
        let t0 = Instant::now();
        let base = t0 + ms(50); // room for deadlines "in the past"
        let mut wheel = TimerWheel::new(Duration::from_micros(tick_us), slots, t0);
        let mut model: BTreeMap<(Instant, u64), TimerKey> = BTreeMap::new();
        let mut keys: Vec<(TimerKey, u64)> = Vec::new();
        let mut deadline_of: std::collections::HashMap<u64, Instant> = Default::default();
        let mut now = base;
        let mut next_id = 0u64;
        for op in ops {
            match op {
                Op::Insert { after, past } => {
                    let deadline = if past { now - ms(after) } else { now + ms(after) };
                    let key = wheel.insert(deadline, next_id);
                    model.insert((deadline, next_id), key);
                    deadline_of.insert(next_id, deadline);
                    keys.push((key, next_id));
                    next_id += 1;
                }
                Op::Cancel(i) if !keys.is_empty() => {
                    let (key, id) = keys[i % keys.len()];
                    let armed = deadline_of.remove(&id);
                    if let Some(d) = armed {
                        model.remove(&(d, id));
                    }
                    prop_assert_eq!(wheel.cancel(key), armed.map(|_| id));
                }
                Op::Reset(i, after) if !keys.is_empty() => {
                    let (key, id) = keys[i % keys.len()];
                    let new = now + ms(after);
                    let armed = deadline_of.get(&id).copied();
                    prop_assert_eq!(wheel.reset(key, new), armed.is_some());
                    if let Some(old) = armed {
                        model.remove(&(old, id));
                        model.insert((new, id), key);
                        deadline_of.insert(id, new);
                    }
                }
                Op::Cancel(_) | Op::Reset(..) => {}
                Op::Poll(advance) => {
                    now += ms(advance);
                    let mut fired = fire_at(&mut wheel, now);
                    let mut due: Vec<u64> = Vec::new();
                    while let Some((&(d, id), _)) = model.first_key_value() {
                        if d > now {
                            break;
                        }
                        model.pop_first();
                        deadline_of.remove(&id);
                        due.push(id);
                    }
                    due.sort_unstable();
                    fired.sort_unstable();
                    prop_assert_eq!(fired, due);
                    if let Some(next) = wheel.next_deadline() {
                        prop_assert!(next > now, "next_deadline at or before the poll's now");
                    }
                }
            }
            prop_assert_eq!(wheel.len(), model.len());
            let earliest = model.keys().next().map(|&(d, _)| d);
            match (wheel.next_deadline(), earliest) {
                (Some(bound), Some(earliest)) => prop_assert!(bound <= earliest),
                (bound, earliest) => prop_assert_eq!(bound.is_some(), earliest.is_some()),
            }
            for (&(d, _), &key) in model.iter().take(4) {
                prop_assert_eq!(wheel.deadline(key), Some(d));
            }
        }
    }

    /// Driving the wheel by next_deadline alone fires every timer exactly at its deadline,
    /// in deadline order (ties in any order).
    #[test]
    fn driven_by_next_deadline_every_timer_fires_exactly_on_time(
        tick_us in 100u64..3_000,
        slots in 1usize..12,
        deadlines in prop::collection::vec(0u64..100_000, 1..80),
    ) {
        let t0 = Instant::now();
        let mut wheel = TimerWheel::new(Duration::from_micros(tick_us), slots, t0);
        for (i, &d) in deadlines.iter().enumerate() {
            wheel.insert(t0 + Duration::from_micros(d), i);
        }
        let mut fired: Vec<(Instant, Instant)> = Vec::new();
        let mut wakeups = 0;
        while let Some(next) = wheel.next_deadline() {
            wakeups += 1;
            prop_assert!(wakeups <= 2 * deadlines.len() + 100_000 / (tick_us as usize * slots) + 2);
            wheel.poll(next, |i| fired.push((t0 + Duration::from_micros(deadlines[i]), next)));
        }
        prop_assert_eq!(fired.len(), deadlines.len());
        for w in fired.windows(2) {
            prop_assert!(w[0].0 <= w[1].0);
        }
        for (deadline, at) in fired {
            prop_assert_eq!(deadline, at);
        }
    }
}
