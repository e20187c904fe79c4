//! The per-peer rate limit ([`RateLimit`](crate::RateLimit)): how long to stop reading a
//! peer that went over it.
//!
//! A generic cell rate algorithm: each unit (byte, message) read moves a *theoretical
//! arrival time* on by `1 / rate`; while that time is more than one second (the burst)
//! ahead of now, the peer is over its rate and is not read until it is back within it.
//! Bytes already read are never refused, so a peer is read at its rate on average
//! however large each read is.

use std::time::{Duration, Instant};

/// How far ahead of now the theoretical arrival time may run: a burst of one second's
/// worth.
const BURST: Duration = Duration::from_secs(1);

/// Longest pause one charge can cause, so that an absurd rate cannot overflow a clock.
const LONGEST_PAUSE: Duration = Duration::from_secs(24 * 60 * 60);

/// One rate's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Pacer {
    /// When everything read so far would have arrived at exactly the rate.
    arrival: Option<Instant>,
}

impl Pacer {
    /// Accounts `units` read at `now` at `per_second` (more than zero); returns until
    /// when the peer must not be read, if it is over its rate.
    pub(crate) fn charge(&mut self, now: Instant, units: u64, per_second: u64) -> Option<Instant> {
        if units == 0 {
            return self.paused_until(now);
        }
        let nanos = u128::from(units) * 1_000_000_000 / u128::from(per_second.max(1));
        let cost = u64::try_from(nanos)
            .map(Duration::from_nanos)
            .unwrap_or(LONGEST_PAUSE)
            .min(LONGEST_PAUSE);
        let from = self.arrival.map_or(now, |at| at.max(now));
        self.arrival = from.checked_add(cost).or(self.arrival);
        self.paused_until(now)
    }

    /// Until when the peer must not be read, as of `now`.
    pub(crate) fn paused_until(&self, now: Instant) -> Option<Instant> {
        let until = self.arrival?.checked_sub(BURST)?;
        (until > now).then_some(until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_of_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut pacer = Pacer::default();
        // 1000 units at 1000/s: exactly the burst, not over it.
        assert_eq!(pacer.charge(t0, 1000, 1000), None);
        // One more is 1 ms over.
        let until = pacer.charge(t0, 1, 1000);
        assert_eq!(until, Some(t0 + Duration::from_millis(1)));
        // Once that time has come, it may be read again.
        assert_eq!(pacer.paused_until(t0 + Duration::from_millis(1)), None);
    }

    #[test]
    fn a_large_read_pauses_in_proportion() {
        let t0 = Instant::now();
        let mut pacer = Pacer::default();
        let until = pacer.charge(t0, 3000, 1000);
        assert_eq!(until, Some(t0 + Duration::from_secs(2)));
    }

    #[test]
    fn idle_time_does_not_bank_more_than_the_burst() {
        let t0 = Instant::now();
        let mut pacer = Pacer::default();
        assert_eq!(pacer.charge(t0, 1, 1000), None);
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(pacer.charge(later, 1000, 1000), None);
        assert!(pacer.charge(later, 1, 1000).is_some());
    }

    #[test]
    fn absurd_rates_do_not_overflow() {
        let t0 = Instant::now();
        let mut pacer = Pacer::default();
        let until = pacer.charge(t0, u64::MAX, 1).expect("paused");
        assert!(until <= t0 + LONGEST_PAUSE);
    }
}
