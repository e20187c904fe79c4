//! Runs: new frames that lie back to back in one read, forwarded to each peer as one
//! `Send` of their wire bytes.

use std::ops::Range;

use super::read_buffer::Read;
use crate::seen::SeenKey;
use crate::Frames;

/// The new frames of the read being decoded that are not forwarded yet: consecutive in
/// the read.
#[derive(Debug, Default)]
pub(crate) struct Run {
    /// Where the run starts in the read.
    start: usize,
    /// Where it ends.
    end: usize,
    /// Each frame's wire length, in order. Kept to reuse its allocation.
    frame_lens: Vec<usize>,
    /// Each frame's seen-set key, in order.
    keys: Vec<SeenKey>,
}

impl Run {
    pub(crate) fn is_empty(&self) -> bool {
        self.frame_lens.is_empty()
    }

    /// Whether the frame at `range` of the read can join the run: it is empty, or the
    /// frame directly follows it.
    pub(crate) fn accepts(&self, range: &Range<usize>) -> bool {
        self.is_empty() || range.start == self.end
    }

    /// Adds the frame at `range` of the read, of seen-set `key`, which the run
    /// [`accepts`](Self::accepts).
    pub(crate) fn extend(&mut self, range: Range<usize>, key: SeenKey) {
        debug_assert!(self.accepts(&range));
        if self.is_empty() {
            self.start = range.start;
        }
        self.end = range.end;
        self.frame_lens.push(range.len());
        self.keys.push(key);
    }

    /// Each frame's wire length, in order.
    pub(crate) fn frame_lens(&self) -> &[usize] {
        &self.frame_lens
    }

    /// Each frame's seen-set key, in order.
    pub(crate) fn keys(&self) -> &[SeenKey] {
        &self.keys
    }

    /// The `count` frames at `bytes` (offsets from the start of the run), shared with the
    /// read.
    pub(crate) fn frames(&self, read: &Read, bytes: Range<usize>, count: usize) -> Frames {
        Frames::run(
            read.slice(self.start + bytes.start..self.start + bytes.end),
            count,
        )
    }

    pub(crate) fn clear(&mut self) {
        self.frame_lens.clear();
        self.keys.clear();
    }
}
