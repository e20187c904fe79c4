//! The read being decoded: where its frames lie, and not keeping it alive for a few
//! small payloads.
//!
//! New messages are delivered and forwarded as slices of the buffer they were read into,
//! so one queued or delivered message keeps its whole read in memory. When the new
//! messages of a read add up to less than `1 / MAX_PINNING` of it (a read of mostly
//! duplicates, say), they are copied out and the read can be freed as soon as it is
//! decoded. A read whose new messages are kept in place is therefore at most
//! `MAX_PINNING` times their size.

use std::collections::VecDeque;
use std::ops::Range;

use bytes::{Bytes, BytesMut};

use crate::{Action, HEADER_LEN};

/// How many times the bytes of a read's kept payloads the read itself may be.
pub(crate) const MAX_PINNING: usize = 4;

/// One read handed to the node, shared (not copied) to slice runs of frames from.
#[derive(Debug, Clone)]
pub(crate) struct Read {
    bytes: Bytes,
}

impl Read {
    pub(crate) fn of(bytes: &Bytes) -> Self {
        Read {
            bytes: bytes.clone(),
        }
    }

    fn start(&self) -> usize {
        self.bytes.as_ptr() as usize
    }

    /// Whether `payload` is a (non-empty) slice of this read.
    pub(crate) fn holds(&self, payload: &[u8]) -> bool {
        let at = payload.as_ptr() as usize;
        !payload.is_empty() && at >= self.start() && at - self.start() < self.bytes.len()
    }

    /// Where the frame of `payload`, header included, lies in this read, if it does. The
    /// decoder splits a payload off the read right after its header, so a payload in the
    /// read has its header just before it.
    pub(crate) fn frame_range(&self, payload: &[u8]) -> Option<Range<usize>> {
        let start = self.offset(payload)?.checked_sub(HEADER_LEN)?;
        Some(start..start + HEADER_LEN + payload.len())
    }

    /// Where `payload` starts in this read, if it lies in it (and is not empty).
    pub(crate) fn offset(&self, payload: &[u8]) -> Option<usize> {
        if !self.holds(payload) {
            return None;
        }
        let start = payload.as_ptr() as usize - self.start();
        (start + payload.len() <= self.bytes.len()).then_some(start)
    }

    /// The whole read, shared.
    pub(crate) fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The bytes of `range` (within the read), shared.
    pub(crate) fn slice(&self, range: Range<usize>) -> Bytes {
        self.bytes.slice(range)
    }

    /// Whether payloads of `kept` bytes in all should be copied rather than keep this
    /// read alive.
    pub(crate) fn too_big_for(&self, kept: usize) -> bool {
        kept > 0 && kept.saturating_mul(MAX_PINNING) < self.bytes.len()
    }
}

/// Moves every Deliver and Send among `actions[first..]` whose bytes lie in `read` onto
/// one copy of the frames they use, laid end to end, so that they no longer keep the read
/// alive. Returns how many messages were copied.
pub(crate) fn copy_out(actions: &mut VecDeque<Action>, first: usize, read: &Read) -> u64 {
    // The frames of the read's delivered messages, in read order, adjacent ones merged:
    // (range in the read, where it starts in the copy).
    let mut segments: Vec<(Range<usize>, usize)> = Vec::new();
    let mut copied_len = 0;
    let mut copies = 0;
    for action in actions.range(first..) {
        let Action::Deliver(delivery) = action else {
            continue;
        };
        let Some(range) = read.frame_range(&delivery.payload) else {
            continue;
        };
        copies += 1;
        let at = copied_len;
        copied_len += range.len();
        match segments.last_mut() {
            Some((last, _)) if last.end == range.start => last.end = range.end,
            _ => segments.push((range, at)),
        }
    }
    let mut copy = BytesMut::with_capacity(copied_len);
    for (range, _) in &segments {
        copy.extend_from_slice(&read.bytes[range.clone()]);
    }
    let copy = copy.freeze();
    // Where bytes at `range` of the read are in the copy. Every Send forwards frames
    // that were delivered, so every range lies within one segment.
    let moved = |range: Range<usize>| -> Option<Bytes> {
        let index = segments.partition_point(|(segment, _)| segment.end <= range.start);
        let (segment, at) = segments.get(index)?;
        (segment.start <= range.start && range.end <= segment.end).then(|| {
            let start = at + (range.start - segment.start);
            copy.slice(start..start + range.len())
        })
    };
    let offset = |bytes: &[u8]| bytes.as_ptr() as usize - read.start();
    for action in actions.range_mut(first..) {
        match action {
            Action::Deliver(delivery) if read.holds(&delivery.payload) => {
                let start = offset(&delivery.payload);
                if let Some(payload) = moved(start..start + delivery.payload.len()) {
                    delivery.payload = payload;
                }
            }
            Action::Send { frames, .. } => {
                let Some(wire) = frames.run_wire().filter(|wire| read.holds(wire)) else {
                    continue;
                };
                let start = offset(wire);
                if let Some(wire) = moved(start..start + wire.len()) {
                    *frames = frames.with_run_wire(wire);
                }
            }
            _ => {}
        }
    }
    copies
}
