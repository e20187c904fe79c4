//! Virtual time and the queue of events due.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
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
#[derive(Debug, Default)]
pub(super) struct Schedule {
    queue: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
}

impl Schedule {
    /// Schedules `event` at `at`.
    pub(super) fn push(&mut self, at: SimTime, event: Event) {
        self.seq += 1;
        let seq = self.seq;
        self.queue.push(Reverse(Scheduled { at, seq, event }));
    }

    /// The next event, if it is due by `end`.
    pub(super) fn pop_due(&mut self, end: SimTime) -> Option<(SimTime, Event)> {
        if self.queue.peek()?.0.at > end {
            return None;
        }
        let Reverse(Scheduled { at, event, .. }) = self.queue.pop()?;
        Some((at, event))
    }

    /// Whether no event is left.
    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[derive(Debug)]
struct Scheduled {
    at: SimTime,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}
