//! Per-connection log lines that a crowd of sockets cannot turn into a flood: at most
//! [`LINES_PER_SECOND`] a second, and one summary line for the rest, as severe as the
//! most severe line it stands for (a node starting with a few dozen peers suppresses
//! only informational lines, and is not warned about it).

use std::time::{Duration, Instant};

/// Lines about single connections (connected, closed, disconnected with a reason)
/// logged per second at most. A node's own few peers come and go far below this; an
/// attacker opening hundreds of sockets a second gets these and one summary line.
pub(crate) const LINES_PER_SECOND: u32 = 20;

/// How severe a line about one connection is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Severity {
    /// Logged at info (connected, protocol settled, closed).
    #[default]
    Info,
    /// Logged at warn (disconnected with a reason, cannot set up).
    Warn,
}

/// Lines suppressed in a second: how many, and the most severe of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Suppressed {
    pub(crate) lines: u64,
    pub(crate) severity: Severity,
}

/// Counts the lines of the current second.
#[derive(Debug, Default)]
pub(crate) struct LogLimit {
    window_start: Option<Instant>,
    logged: u32,
    suppressed: u64,
    severity: Severity,
}

impl LogLimit {
    /// Whether a line of `severity` may be logged at `now`. When a new second begins,
    /// returns first what the last one suppressed (to be logged as one summary line).
    pub(crate) fn admit(&mut self, now: Instant, severity: Severity) -> (bool, Option<Suppressed>) {
        let summary = self.roll(now);
        let admitted = self.logged < LINES_PER_SECOND;
        match admitted {
            true => self.logged += 1,
            false => {
                self.suppressed += 1;
                self.severity = self.severity.max(severity);
            }
        }
        (admitted, summary)
    }

    /// Lines suppressed in a second that has ended by `now`, if any: for a summary when
    /// the flood stops and nothing else gets logged.
    pub(crate) fn roll(&mut self, now: Instant) -> Option<Suppressed> {
        let start = *self.window_start.get_or_insert(now);
        if now.saturating_duration_since(start) < Duration::from_secs(1) {
            return None;
        }
        self.window_start = Some(now);
        self.logged = 0;
        let lines = std::mem::take(&mut self.suppressed);
        let severity = std::mem::take(&mut self.severity);
        (lines > 0).then_some(Suppressed { lines, severity })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_to_the_limit_and_summarised() {
        let t0 = Instant::now();
        let mut limit = LogLimit::default();
        let admitted = (0..500)
            .filter(|&n| {
                let severity = if n == 400 {
                    Severity::Warn
                } else {
                    Severity::Info
                };
                limit.admit(t0, severity).0
            })
            .count();
        assert_eq!(admitted, LINES_PER_SECOND as usize);
        // Still within the second: nothing to summarise yet.
        assert_eq!(limit.roll(t0 + Duration::from_millis(999)), None);
        let next = t0 + Duration::from_secs(1);
        let summary = Suppressed {
            lines: 500 - 20,
            severity: Severity::Warn,
        };
        assert_eq!(limit.admit(next, Severity::Info), (true, Some(summary)));
        // A quiet second has nothing to report.
        assert_eq!(limit.roll(next + Duration::from_secs(1)), None);
    }

    #[test]
    fn a_summary_of_informational_lines_only_is_informational() {
        let t0 = Instant::now();
        let mut limit = LogLimit::default();
        for _ in 0..LINES_PER_SECOND + 2 {
            limit.admit(t0, Severity::Info);
        }
        // Warnings admitted within the limit do not make the summary one.
        let mut limit_warned = LogLimit::default();
        limit_warned.admit(t0, Severity::Warn);
        for _ in 0..LINES_PER_SECOND + 1 {
            limit_warned.admit(t0, Severity::Info);
        }
        let next = t0 + Duration::from_secs(1);
        let info = Suppressed {
            lines: 2,
            severity: Severity::Info,
        };
        assert_eq!(limit.roll(next), Some(info));
        assert_eq!(limit_warned.roll(next), Some(info));
        // The next second starts from informational again.
        for _ in 0..LINES_PER_SECOND {
            limit.admit(next, Severity::Info);
        }
        limit.admit(next, Severity::Warn);
        let warn = Suppressed {
            lines: 1,
            severity: Severity::Warn,
        };
        assert_eq!(limit.roll(next + Duration::from_secs(1)), Some(warn));
    }
}
