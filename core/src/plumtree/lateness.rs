//! [`Lateness`]: how long after its first announcement a message comes through the
//! tree, smoothed, so that the graft timers stretch with the queues.
//!
//! A graft timer bets that an announced message is lost if it has not come within
//! `graft_timeout`. Under load that bet is wrong: every queue on the tree's path holds
//! megabytes, the eager copy comes seconds after the announcement (which took a shorter
//! or emptier path), and a fixed timeout grafts nearly every message, from every
//! announcer in turn. Each graft answered is a duplicate on a link that was already
//! full: in a clique of twelve `gossip-node --protocol plumtree` processes with a
//! client writing at full speed into each, a node sent more grafts than it delivered
//! messages and received three copies of each.
//!
//! So the timers follow what the network shows, as TCP's retransmission timer follows
//! round trips (RFC 6298): each message that came some time after its first
//! announcement gives a sample; the timeout is the smoothed lateness plus four times
//! its mean deviation, never below the configured `graft_timeout` nor above
//! `graft_timeout_max`. And as in Karn's algorithm, a message that came from a peer it
//! was grafted from gives no sample: its lateness includes the timer itself, and
//! counting it would stretch the timer after every loss. Messages the tree brings before
//! any announcement give none either: they are not late.

use std::time::Duration;

/// Smoothed lateness of announced messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lateness {
    /// The smoothed lateness, once there is a sample.
    smoothed: Option<Duration>,
    /// Its smoothed mean deviation.
    deviation: Duration,
}

impl Lateness {
    /// A message came `late` after its first announcement.
    pub fn sample(&mut self, late: Duration) {
        match self.smoothed {
            None => {
                self.smoothed = Some(late);
                self.deviation = late / 2;
            }
            Some(smoothed) => {
                let error = smoothed.max(late) - smoothed.min(late);
                self.deviation = self.deviation * 3 / 4 + error / 4;
                self.smoothed = Some(smoothed * 7 / 8 + late / 8);
            }
        }
    }

    /// How long to wait for an announced message: the smoothed lateness plus four
    /// deviations, within `floor..=ceiling` (`floor` with no sample yet).
    pub fn timeout(&self, floor: Duration, ceiling: Duration) -> Duration {
        let Some(smoothed) = self.smoothed else {
            return floor;
        };
        let timeout = smoothed.saturating_add(self.deviation.saturating_mul(4));
        timeout.min(ceiling).max(floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOOR: Duration = Duration::from_millis(150);
    const CEILING: Duration = Duration::from_secs(5);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn without_samples_the_floor() {
        assert_eq!(Lateness::default().timeout(FLOOR, CEILING), FLOOR);
    }

    #[test]
    fn stretches_with_late_messages_and_comes_back() {
        let mut lateness = Lateness::default();
        lateness.sample(ms(40));
        // 40 + 4 × 20 = 120, below the floor.
        assert_eq!(lateness.timeout(FLOOR, CEILING), FLOOR);
        for _ in 0..50 {
            lateness.sample(ms(2_000));
        }
        let loaded = lateness.timeout(FLOOR, CEILING);
        assert!(loaded >= ms(2_000) && loaded < ms(2_100), "{loaded:?}");
        for _ in 0..20 {
            lateness.sample(ms(20_000));
        }
        assert_eq!(lateness.timeout(FLOOR, CEILING), CEILING);
        for _ in 0..100 {
            lateness.sample(ms(10));
        }
        assert_eq!(lateness.timeout(FLOOR, CEILING), FLOOR);
    }

    #[test]
    fn a_jittery_lateness_waits_past_most_of_it() {
        let mut lateness = Lateness::default();
        for n in 0..200 {
            lateness.sample(ms(if n % 2 == 0 { 400 } else { 800 }));
        }
        let timeout = lateness.timeout(FLOOR, CEILING);
        assert!(timeout > ms(1_000) && timeout < ms(1_500), "{timeout:?}");
    }
}
