//! Per-connection log lines that a crowd of sockets cannot turn into a flood: at most
//! [`LINES_PER_SECOND`] a second, and one summary line for the rest.

use std::time::{Duration, Instant};

/// Lines about single connections (connected, closed, disconnected with a reason)
/// logged per second at most. A node's own few peers come and go far below this; an
/// attacker opening hundreds of sockets a second gets these and one summary line.
pub(crate) const LINES_PER_SECOND: u32 = 20;

/// Counts the lines of the current second.
#[derive(Debug, Default)]
pub(crate) struct LogLimit {
    window_start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl LogLimit {
    /// Whether a line may be logged at `now`. When a new second begins, returns first
    /// how many lines the last one suppressed (to be logged as one summary line).
    pub(crate) fn admit(&mut self, now: Instant) -> (bool, Option<u64>) {
        let summary = self.roll(now);
        let admitted = self.logged < LINES_PER_SECOND;
        match admitted {
            true => self.logged += 1,
            false => self.suppressed += 1,
        }
        (admitted, summary)
    }

    /// Lines suppressed in a second that has ended by `now`, if any: for a summary when
    /// the flood stops and nothing else gets logged.
    pub(crate) fn roll(&mut self, now: Instant) -> Option<u64> {
        let start = *self.window_start.get_or_insert(now);
        if now.saturating_duration_since(start) < Duration::from_secs(1) {
            return None;
        }
        self.window_start = Some(now);
        self.logged = 0;
        let suppressed = std::mem::take(&mut self.suppressed);
        (suppressed > 0).then_some(suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_to_the_limit_and_summarised() {
        let t0 = Instant::now();
        let mut limit = LogLimit::default();
        let admitted = (0..500).filter(|_| limit.admit(t0).0).count();
        assert_eq!(admitted, LINES_PER_SECOND as usize);
        // Still within the second: nothing to summarise yet.
        assert_eq!(limit.roll(t0 + Duration::from_millis(999)), None);
        let next = t0 + Duration::from_secs(1);
        assert_eq!(limit.admit(next), (true, Some(500 - 20)));
        // A quiet second has nothing to report.
        assert_eq!(limit.roll(next + Duration::from_secs(1)), None);
    }
}
