//! Virtual time and the queue of events due.

use std::collections::VecDeque;
use std::time::Duration;

/// Virtual time, in nanoseconds since the start of the run.
pub(super) type SimTime = u64;

/// `duration` in virtual time (saturating).
pub(super) fn nanos(duration: Duration) -> SimTime {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Something that happens at a moment of virtual time.
#[derive(Debug)]
pub(super) enum Event {
    /// Bytes may have arrived on one direction of a link.
    Arrive {
        link: usize,
        side: usize,
        epoch: u64,
    },
    /// A node's `poll_timeout` deadline.
    Timer { node: usize },
    /// A broken link comes back.
    Reconnect { link: usize },
    /// A node crashes (churn).
    Crash,
    /// A crashed node restarts.
    Restart { node: usize },
}

/// Events by time; events of the same moment in the order they were scheduled, so a
/// run is a function of its seed alone.
///
/// A radix heap: virtual time only moves forward, so every event is scheduled at or
/// after the last one taken, and an event waits in the bucket of the highest bit in
/// which its time differs from that one's. Taking the next event empties the lowest
/// bucket at most once per bit, instead of a binary heap's sift through a large array
/// for every event (an eighth of a 10,000-node simulation's time).
#[derive(Debug)]
pub(super) struct Schedule {
    /// The events at `last`, oldest first.
    front: VecDeque<Scheduled>,
    /// `buckets[b]`: events whose time first differs from `last` in bit `b`.
    buckets: Vec<Vec<Scheduled>>,
    /// The time of the last event taken (0 before any).
    last: SimTime,
    /// Scratch for `pop_due`: the events of the next moment, gathered from a bucket.
    due: Vec<Scheduled>,
    len: usize,
    seq: u64,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            front: VecDeque::new(),
            buckets: (0..64).map(|_| Vec::new()).collect(),
            last: 0,
            due: Vec::new(),
            len: 0,
            seq: 0,
        }
    }
}

impl Schedule {
    /// Schedules `event` at `at`, which is not before the last event taken (an earlier
    /// time is taken as that one's).
    pub(super) fn push(&mut self, at: SimTime, event: Event) {
        debug_assert!(at >= self.last, "the schedule cannot go back in time");
        let at = at.max(self.last);
        self.seq += 1;
        self.len += 1;
        self.place(Scheduled {
            at,
            seq: self.seq,
            event,
        });
    }

    /// The next event, if it is due by `end`.
    pub(super) fn pop_due(&mut self, end: SimTime) -> Option<(SimTime, Event)> {
        if self.front.is_empty() {
            let lowest = self.buckets.iter().position(|bucket| !bucket.is_empty())?;
            let next = self.buckets[lowest].iter().map(|s| s.at).min()?;
            if next > end {
                return None;
            }
            // Move on to `next`: its events come to the front (in the order they were
            // scheduled), the others of the bucket to lower buckets.
            self.last = next;
            // The bucket's allocation is kept for reuse: a large one freed and grown
            // again costs fresh pages from the system every time.
            let mut bucket = std::mem::take(&mut self.buckets[lowest]);
            let mut now = std::mem::take(&mut self.due);
            for scheduled in bucket.drain(..) {
                if scheduled.at == next {
                    now.push(scheduled);
                } else {
                    self.place(scheduled);
                }
            }
            self.buckets[lowest] = bucket;
            now.sort_unstable_by_key(|scheduled| scheduled.seq);
            self.front.extend(now.drain(..));
            self.due = now;
        }
        if self.front.front()?.at > end {
            return None;
        }
        let Scheduled { at, event, .. } = self.front.pop_front()?;
        self.len -= 1;
        Some((at, event))
    }

    /// Whether no event is left.
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Files `scheduled` (not before `last`) by the highest bit its time differs in.
    fn place(&mut self, scheduled: Scheduled) {
        match scheduled.at ^ self.last {
            0 => self.front.push_back(scheduled),
            differs => self.buckets[63 - differs.leading_zeros() as usize].push(scheduled),
        }
    }
}

#[derive(Debug)]
struct Scheduled {
    at: SimTime,
    seq: u64,
    event: Event,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimRng;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    /// Random schedules and takes, with deadlines, against a binary heap ordered by
    /// (time, order scheduled): the same events come out in the same order.
    #[test]
    fn takes_events_in_time_then_schedule_order() {
        for seed in 0..200 {
            let mut rng = SimRng::new(seed);
            let mut schedule = Schedule::default();
            let mut reference = BinaryHeap::new();
            let (mut now, mut seq) = (0u64, 0u64);
            for _ in 0..500 {
                if rng.chance(0.55) {
                    // Often the same moment, or one of a few near ones; sometimes far.
                    let ahead = match rng.below(4) {
                        0 => 0,
                        1 => rng.below(4),
                        2 => rng.below(1 << 20),
                        _ => rng.below(1 << 40),
                    };
                    seq += 1;
                    schedule.push(now + ahead, Event::Timer { node: seq as usize });
                    reference.push(Reverse((now + ahead, seq)));
                } else {
                    let end = now + rng.below(1 << 21);
                    let expected = match reference.peek() {
                        Some(&Reverse((at, _))) if at <= end => reference.pop(),
                        _ => None,
                    };
                    let got = schedule.pop_due(end).map(|(at, event)| match event {
                        Event::Timer { node } => Reverse((at, node as u64)),
                        _ => unreachable!(),
                    });
                    assert_eq!(got, expected, "seed {seed}");
                    now = match got {
                        Some(Reverse((at, _))) => at,
                        // Nothing due: time still moves to `end`, as in `run_for`.
                        None => end,
                    };
                }
                assert_eq!(schedule.is_empty(), reference.is_empty());
            }
        }
    }
}
