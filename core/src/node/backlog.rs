//! A peer's backlog: what the node queued for a plain peer beyond what it has handed to
//! the caller, kept back so that a copy the peer turns out to have is never sent.
//!
//! The caller writes what it is handed to the socket, and a node cannot take a `Send`
//! back. So the node hands a peer's queue over only while less than
//! [`Config::send_ahead_bytes`](crate::Config::send_ahead_bytes) of it is unwritten, and
//! keeps the rest here, in order. When the peer sends the node a message that waits
//! here for it, the peer has it: its copy is dropped unsent, and the queue budgets get
//! its charge back at once. In a mesh with full queues most of what waits is such
//! copies (each node floods what it takes to every peer, and its peers take the same
//! messages from elsewhere), so this saves link bandwidth and lets full queues drain
//! by reading duplicates, which a node does even while it takes nothing new.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;

use super::peer::RunId;
use crate::seen::SeenKey;
use crate::{Frames, SeenHasher};

/// Consecutive frames kept back for a peer: one `Send` as queued.
#[derive(Debug)]
pub(crate) struct Kept {
    pub(crate) frames: Frames,
    /// The shared run they are a copy of, if they are one.
    pub(crate) run: Option<RunId>,
    /// Each frame, in order.
    each: Vec<KeptFrame>,
    /// Frames not dropped.
    left: usize,
}

/// One frame kept back: its key, its wire length, and whether it was dropped (the peer
/// showed it has it).
#[derive(Debug, Clone, Copy)]
struct KeptFrame {
    key: SeenKey,
    wire_len: usize,
    dropped: bool,
}

impl Kept {
    /// Frames not dropped.
    pub(crate) fn left(&self) -> usize {
        self.left
    }

    /// Wire bytes of the frames not dropped.
    pub(crate) fn left_wire_len(&self) -> usize {
        (self.each.iter())
            .filter(|frame| !frame.dropped)
            .map(|frame| frame.wire_len)
            .sum()
    }

    /// The stretches of frames not dropped, in order: where they lie in `frames`
    /// (byte offsets) and how many.
    pub(crate) fn stretches(&self) -> Vec<(Range<usize>, usize)> {
        let mut stretches: Vec<(Range<usize>, usize)> = Vec::new();
        let mut at = 0;
        for frame in &self.each {
            let len = frame.wire_len;
            if !frame.dropped {
                match stretches.last_mut() {
                    Some((bytes, count)) if bytes.end == at => {
                        bytes.end += len;
                        *count += 1;
                    }
                    _ => stretches.push((at..at + len, 1)),
                }
            }
            at += len;
        }
        stretches
    }
}

/// A copy dropped from the backlog: what it was charged, and its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dropped {
    pub(crate) wire_len: usize,
    pub(crate) run: Option<RunId>,
    /// Whether it was the last frame of its `Send` left: a copy of a shared run is then
    /// done with.
    pub(crate) send_emptied: bool,
}

/// What the node keeps back for one peer, oldest first, with an index by key.
#[derive(Debug, Default)]
pub(crate) struct Backlog {
    kept: VecDeque<Kept>,
    /// Number of the front entry of `kept`; entries are numbered as they come.
    front: u64,
    /// Where each kept frame is: its entry's number and its place in it.
    index: HashMap<SeenKey, (u64, usize), SeenHasher>,
}

impl Backlog {
    pub(crate) fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// Wire bytes kept and not dropped.
    #[cfg(test)]
    fn wire_len(&self) -> usize {
        self.kept.iter().map(Kept::left_wire_len).sum()
    }

    /// Frames kept and not dropped.
    pub(crate) fn frames(&self) -> usize {
        self.kept.iter().map(Kept::left).sum()
    }

    /// Keeps `frames` (a copy of `run`, if shared), whose frames have these `keys` and
    /// wire `lens`.
    pub(crate) fn push(
        &mut self,
        frames: Frames,
        run: Option<RunId>,
        keys: &[SeenKey],
        lens: &[usize],
    ) {
        debug_assert_eq!(keys.len(), frames.count());
        debug_assert_eq!(lens.iter().sum::<usize>(), frames.wire_len());
        let number = self.front + self.kept.len() as u64;
        for (place, &key) in keys.iter().enumerate() {
            // A key kept twice (the seen set forgot it in between): the newer copy is
            // the one a duplicate drops; the older one goes out.
            self.index.insert(key, (number, place));
        }
        let each = (keys.iter().zip(lens))
            .map(|(&key, &wire_len)| KeptFrame {
                key,
                wire_len,
                dropped: false,
            })
            .collect();
        self.kept.push_back(Kept {
            frames,
            run,
            each,
            left: keys.len(),
        });
    }

    /// The peer has the message of `key`: drops its copy if one is kept.
    pub(crate) fn drop_copy(&mut self, key: SeenKey) -> Option<Dropped> {
        let (number, place) = self.index.remove(&key)?;
        let kept = self
            .kept
            .get_mut(usize::try_from(number - self.front).ok()?)?;
        let frame = kept.each.get_mut(place)?;
        frame.dropped = true;
        let wire_len = frame.wire_len;
        kept.left -= 1;
        Some(Dropped {
            wire_len,
            run: kept.run,
            send_emptied: kept.left == 0,
        })
    }

    /// Takes the oldest kept `Send` off the backlog.
    pub(crate) fn pop(&mut self) -> Option<Kept> {
        let kept = self.kept.pop_front()?;
        let number = self.front;
        self.front += 1;
        for (place, frame) in kept.each.iter().enumerate() {
            if self.index.get(&frame.key) == Some(&(number, place)) {
                self.index.remove(&frame.key);
            }
        }
        Some(kept)
    }

    /// Everything kept, oldest first, for a peer that is gone.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Kept> + '_ {
        self.index.clear();
        self.front += self.kept.len() as u64;
        self.kept.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn run_of(payloads: &[&[u8]]) -> (Frames, Vec<usize>) {
        let mut wire = Vec::new();
        let mut lens = Vec::new();
        for payload in payloads {
            wire.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            wire.extend_from_slice(payload);
            lens.push(4 + payload.len());
        }
        (Frames::run(Bytes::from(wire), payloads.len()), lens)
    }

    fn key(n: u128) -> SeenKey {
        SeenKey(n)
    }

    #[test]
    fn a_dropped_copy_leaves_the_others_in_stretches() {
        let mut backlog = Backlog::default();
        let (frames, lens) = run_of(&[b"a", b"bb", b"ccc"]);
        backlog.push(frames, Some(3), &[key(1), key(2), key(3)], &lens);
        assert_eq!((backlog.wire_len(), backlog.frames()), (18, 3));
        let dropped = backlog.drop_copy(key(2)).unwrap();
        assert_eq!(
            dropped,
            Dropped {
                wire_len: 6,
                run: Some(3),
                send_emptied: false
            }
        );
        assert_eq!(backlog.drop_copy(key(2)), None, "dropped once");
        assert_eq!(backlog.drop_copy(key(9)), None, "never kept");
        assert_eq!((backlog.wire_len(), backlog.frames()), (12, 2));
        let kept = backlog.pop().unwrap();
        assert_eq!(kept.stretches(), [(0..5, 1), (11..18, 1)]);
        assert!(backlog.is_empty());
        assert_eq!(backlog.wire_len(), 0);
    }

    #[test]
    fn a_send_whose_every_copy_is_dropped_says_so_and_a_popped_one_is_not_found() {
        let mut backlog = Backlog::default();
        let (first, first_lens) = run_of(&[b"a"]);
        let (second, second_lens) = run_of(&[b"b", b"c"]);
        backlog.push(first, None, &[key(1)], &first_lens);
        backlog.push(second, None, &[key(2), key(3)], &second_lens);
        assert!(backlog.drop_copy(key(1)).unwrap().send_emptied);
        assert_eq!(backlog.pop().unwrap().left(), 0);
        let kept = backlog.pop().unwrap();
        assert_eq!(kept.stretches(), [(0..10, 2)]);
        assert_eq!(backlog.drop_copy(key(3)), None, "handed over already");
    }

    #[test]
    fn a_key_kept_twice_drops_the_newer_copy_and_the_older_goes_out() {
        let mut backlog = Backlog::default();
        let (old, lens) = run_of(&[b"x"]);
        let (new, _) = run_of(&[b"x"]);
        backlog.push(old, None, &[key(7)], &lens);
        backlog.push(new, None, &[key(7)], &lens);
        assert!(backlog.drop_copy(key(7)).is_some());
        assert_eq!(backlog.pop().unwrap().left(), 1, "the older copy stays");
        assert_eq!(backlog.pop().unwrap().left(), 0);
        let mut gone = Backlog::default();
        let (frames, lens) = run_of(&[b"y"]);
        gone.push(frames, None, &[key(8)], &lens);
        assert_eq!(gone.drain().count(), 1);
        assert_eq!(gone.drop_copy(key(8)), None);
        assert!(gone.is_empty());
    }
}
