//! Redial delays.

use std::time::Duration;

/// Capped exponential backoff for redialling a peer: `initial`, then doubling up to
/// `max`. It starts over only after a connection that stayed up for at least `max`
/// ([`connection_ended`](Self::connection_ended)), so a peer that accepts and then drops
/// us at once (or that we drop for misbehaving) is not redialled in a tight loop.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Delays start at `initial` and never exceed `max`.
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            next: initial.min(max),
        }
    }

    /// The delay before the next attempt; doubles the one after.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = delay.saturating_mul(2).min(self.max);
        delay
    }

    /// The longest delay.
    pub(crate) fn longest(&self) -> Duration {
        self.max
    }

    /// A connection that was up for `lasted` has ended: if it held for at least `max`,
    /// the next delay starts over from `initial`.
    pub(crate) fn connection_ended(&mut self, lasted: Duration) {
        if lasted >= self.max {
            self.next = self.initial.min(self.max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_max_and_starts_over_only_after_a_connection_that_held() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(100), ms(350));
        let delays: Vec<_> = (0..4).map(|_| backoff.next_delay()).collect();
        assert_eq!(delays, [ms(100), ms(200), ms(350), ms(350)]);
        backoff.connection_ended(ms(10)); // dropped at once: keep backing off
        assert_eq!(backoff.next_delay(), ms(350));
        backoff.connection_ended(ms(350)); // held for `max`: start over
        assert_eq!(backoff.next_delay(), ms(100));
    }
}
