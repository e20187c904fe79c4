//! Redial delays.

use std::time::Duration;

/// Capped exponential backoff for redialling a peer: `initial`, then doubling up to
/// `max`, back to `initial` after [`reset`](Self::reset) (a successful connection).
///
/// ```
/// use std::time::Duration;
/// use gossip_core::transport::Backoff;
///
/// let ms = Duration::from_millis;
/// let mut backoff = Backoff::new(ms(100), ms(350));
/// let delays: Vec<_> = (0..4).map(|_| backoff.next_delay()).collect();
/// assert_eq!(delays, [ms(100), ms(200), ms(350), ms(350)]);
/// backoff.reset();
/// assert_eq!(backoff.next_delay(), ms(100));
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Delays start at `initial` and never exceed `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            next: initial.min(max),
        }
    }

    /// The delay before the next attempt; doubles the one after.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = delay.saturating_mul(2).min(self.max);
        delay
    }

    /// Starts over from the initial delay.
    pub fn reset(&mut self) {
        self.next = self.initial.min(self.max);
    }
}
