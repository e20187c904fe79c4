//! Batching queued frames into vectored writes.

use std::collections::VecDeque;
use std::io::IoSlice;

#[cfg(test)]
use gossip_core::Direction;
use gossip_core::Frames;

/// How many [`IoSlice`]s a writer hands to one vectored write: up to 512 [`Frames`]
/// (each one slice, a forwarded run, or two, a published frame), half of Linux's
/// `IOV_MAX`.
pub(crate) const SLICES_PER_WRITE: usize = 512;

/// Frames waiting to be written to one socket, handed out as [`IoSlice`]s so that many
/// frames go out in one vectored write without copying their bytes.
#[derive(Debug, Default)]
pub(crate) struct WriteQueue {
    frames: VecDeque<Frames>,
    /// Bytes of the front frame already written.
    written_of_front: usize,
    pending_bytes: usize,
}

impl WriteQueue {
    /// Appends frames.
    pub(crate) fn push(&mut self, frame: Frames) {
        self.pending_bytes += frame.wire_len();
        self.frames.push_back(frame);
    }

    /// Whether everything has been written.
    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Wire bytes not yet written.
    #[cfg(test)]
    pub(crate) fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Fills `out` with the unwritten bytes, front first, and returns how many slices it
    /// filled. Empty slices are skipped.
    pub(crate) fn io_slices<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        let mut filled = 0;
        let mut skip = self.written_of_front;
        for frame in &self.frames {
            for part in frame.parts() {
                // Only the front frame has a written prefix to skip.
                let cut = skip.min(part.len());
                skip -= cut;
                let part = &part[cut..];
                if part.is_empty() {
                    continue;
                }
                if filled == out.len() {
                    return filled;
                }
                out[filled] = IoSlice::new(part);
                filled += 1;
            }
        }
        filled
    }

    /// Marks `written` bytes as written (as returned by the socket). Returns how many
    /// bytes were actually pending, never more than `written`.
    pub(crate) fn advance(&mut self, written: usize) -> usize {
        let mut left = written.min(self.pending_bytes);
        let advanced = left;
        self.pending_bytes -= left;
        while left > 0 {
            let Some(front) = self.frames.front() else {
                break;
            };
            let remaining = front.wire_len() - self.written_of_front;
            if left < remaining {
                self.written_of_front += left;
                break;
            }
            left -= remaining;
            self.written_of_front = 0;
            self.frames.pop_front();
        }
        advanced
    }
}

impl Extend<Frames> for WriteQueue {
    fn extend<I: IntoIterator<Item = Frames>>(&mut self, frames: I) {
        for frame in frames {
            self.push(frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use gossip_core::frame::encode;
    use gossip_core::{Action, Config, Node, PeerId};

    fn frame(payload: &'static [u8]) -> Frames {
        Frames::single(Bytes::from_static(payload)).unwrap()
    }

    fn collect(queue: &WriteQueue, max_slices: usize) -> Vec<u8> {
        let mut slices = vec![IoSlice::new(&[]); max_slices];
        let count = queue.io_slices(&mut slices);
        slices[..count].iter().flat_map(|s| s.to_vec()).collect()
    }

    #[test]
    fn partial_writes_resume_mid_header_and_mid_payload() {
        let mut queue = WriteQueue::default();
        queue.push(frame(b"hello"));
        queue.push(frame(b""));
        queue.push(frame(b"xy"));
        let mut wire = Vec::new();
        for step in [2, 5, 1, 4, 100] {
            let bytes = collect(&queue, 8);
            let take = step.min(bytes.len());
            wire.extend_from_slice(&bytes[..take]);
            assert_eq!(queue.advance(take), take);
        }
        assert!(queue.is_empty());
        assert_eq!(queue.pending_bytes(), 0);
        assert_eq!(wire, b"\0\0\0\x05hello\0\0\0\0\0\0\0\x02xy");
    }

    /// The run a node forwards for a read of `wire` (back-to-back new frames).
    fn run_of(wire: &[u8]) -> Frames {
        let now = std::time::Instant::now();
        let mut node = Node::new(Config::default()).expect("valid");
        node.peer_connected(now, PeerId(0), Direction::Inbound);
        node.peer_connected(now, PeerId(1), Direction::Inbound);
        node.handle_received_bytes(now, PeerId(0), Bytes::copy_from_slice(wire));
        let mut sends = node.drain_actions().filter_map(|action| match action {
            Action::Send { frames, .. } => Some(frames),
            _ => None,
        });
        sends.next().expect("forwarded as one run")
    }

    #[test]
    fn a_run_is_one_slice_and_resumes_mid_frame() {
        let mut queue = WriteQueue::default();
        let wire: Vec<u8> = [&b"ab"[..], b"cde"]
            .iter()
            .flat_map(|p| encode(p))
            .collect();
        queue.push(run_of(&wire));
        queue.push(frame(b"f"));
        let mut slices = [IoSlice::new(&[]); 8];
        assert_eq!(
            queue.io_slices(&mut slices),
            3,
            "the run, then header and payload"
        );
        assert_eq!(queue.advance(7), 7);
        assert_eq!(collect(&queue, 8), [&wire[7..], b"\0\0\0\x01f"].concat());
        assert_eq!(queue.advance(100), wire.len() - 7 + 5);
        assert!(queue.is_empty());
    }

    #[test]
    fn slice_limit_is_respected() {
        let mut queue = WriteQueue::default();
        for _ in 0..10 {
            queue.push(frame(b"abc"));
        }
        assert_eq!(collect(&queue, 3), b"\0\0\0\x03abc\0\0\0\x03");
    }

    #[test]
    fn advancing_past_the_end_is_clamped() {
        let mut queue = WriteQueue::default();
        queue.push(frame(b"a"));
        assert_eq!(queue.advance(100), 5);
        assert!(queue.is_empty());
    }
}
