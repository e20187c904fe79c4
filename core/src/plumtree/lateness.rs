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
//! any announcement give none either: they are not late. So once the load is gone no
//! samples come, and the estimate halves for every `graft_timeout_max` without one
//! ([`Lateness::decay`]): a message lost later is grafted at the floor again.

use std::time::{Duration, Instant};

/// Smoothed lateness of announced messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lateness {
    /// The smoothed lateness, once there is a sample.
    smoothed: Option<Duration>,
    /// Its smoothed mean deviation.
    deviation: Duration,
    /// When the last sample came (or the estimate last decayed).
    since: Option<Instant>,
}

impl Lateness {
    /// A message came at `now`, `late` after its first announcement.
    pub fn sample(&mut self, now: Instant, late: Duration) {
        self.since = Some(now);
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

    /// Halves the estimate for every `period` without a sample by `now`. Once the load
    /// is gone the tree's copies come before their announcements and give no samples:
    /// without this the timers would stay stretched, and a message lost later would
    /// wait that long to be grafted.
    pub fn decay(&mut self, now: Instant, period: Duration) {
        let (Some(since), Some(smoothed)) = (self.since, self.smoothed) else {
            return;
        };
        let periods = match period.as_nanos() {
            0 => return,
            nanos => now.saturating_duration_since(since).as_nanos() / nanos,
        };
        if periods == 0 {
            return;
        }
        // After 64 halvings nothing is left of a `Duration`'s nanoseconds.
        let halvings = periods.min(64) as u32;
        let halve = |d: Duration| {
            let nanos = d.as_nanos().checked_shr(halvings).unwrap_or(0);
            Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
        };
        self.smoothed = Some(halve(smoothed));
        self.deviation = halve(self.deviation);
        self.since = since
            .checked_add(period.saturating_mul(halvings))
            .or(Some(now));
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

    /// Samples `late` `times` at `now`.
    fn samples(lateness: &mut Lateness, now: Instant, late: Duration, times: usize) {
        for _ in 0..times {
            lateness.sample(now, late);
        }
    }

    #[test]
    fn without_samples_the_floor() {
        assert_eq!(Lateness::default().timeout(FLOOR, CEILING), FLOOR);
    }

    #[test]
    fn stretches_with_late_messages_and_comes_back() {
        let now = Instant::now();
        let mut lateness = Lateness::default();
        lateness.sample(now, ms(40));
        // 40 + 4 × 20 = 120, below the floor.
        assert_eq!(lateness.timeout(FLOOR, CEILING), FLOOR);
        samples(&mut lateness, now, ms(2_000), 50);
        let loaded = lateness.timeout(FLOOR, CEILING);
        assert!(loaded >= ms(2_000) && loaded < ms(2_100), "{loaded:?}");
        samples(&mut lateness, now, ms(20_000), 20);
        assert_eq!(lateness.timeout(FLOOR, CEILING), CEILING);
        samples(&mut lateness, now, ms(10), 100);
        assert_eq!(lateness.timeout(FLOOR, CEILING), FLOOR);
    }

    #[test]
    fn a_jittery_lateness_waits_past_most_of_it() {
        let now = Instant::now();
        let mut lateness = Lateness::default();
        for n in 0..200 {
            lateness.sample(now, ms(if n % 2 == 0 { 400 } else { 800 }));
        }
        let timeout = lateness.timeout(FLOOR, CEILING);
        assert!(timeout > ms(1_000) && timeout < ms(1_500), "{timeout:?}");
    }

    #[test]
    fn without_samples_it_halves_each_period_back_to_the_floor() {
        let now = Instant::now();
        let mut lateness = Lateness::default();
        samples(&mut lateness, now, ms(4_000), 50);
        let period = CEILING;
        lateness.decay(now + period - ms(1), period);
        let stretched = lateness.timeout(FLOOR, CEILING);
        assert!(stretched > ms(4_000), "{stretched:?}");
        lateness.decay(now + period, period);
        let halved = lateness.timeout(FLOOR, CEILING);
        assert!(halved > ms(1_900) && halved < ms(2_100), "{halved:?}");
        // Idle for an hour: the floor, and no overflow.
        lateness.decay(now + Duration::from_secs(3_600), period);
        assert_eq!(lateness.timeout(FLOOR, CEILING), FLOOR);
        // A sample starts over.
        samples(
            &mut lateness,
            now + Duration::from_secs(3_600),
            ms(3_000),
            50,
        );
        assert!(lateness.timeout(FLOOR, CEILING) > ms(2_900));
    }
}
