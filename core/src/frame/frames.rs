//! [`Frames`]: the wire bytes of one `Send`, shared between every peer they go to.

use std::fmt;

use bytes::Bytes;

use super::HEADER_LEN;

/// The longest head of a single frame: a plumtree Gossip frame's length, type and round.
const MAX_HEAD: usize = 8;

/// Wire bytes for a peer: one or more whole frames, to be written as they are.
///
/// Either one payload behind its length prefix ([`Frames::single`], what a publish
/// sends), or a run of consecutive frames exactly as they arrived in one read: the node
/// forwards the new messages of a read to each peer as one run, so a read of hundreds of
/// frames costs each peer one `Send` and one write slice, not hundreds. Cloning bumps a
/// reference count; the bytes are never copied.
///
/// ```
/// use bytes::Bytes;
/// use gossip_core::Frames;
///
/// let frames = Frames::single(Bytes::from_static(b"hi")).unwrap();
/// assert_eq!((frames.count(), frames.wire_len()), (1, 6));
/// let [head, rest] = frames.parts(); // write `head`, then `rest`
/// assert_eq!([head, rest].concat(), [0, 0, 0, 2, b'h', b'i']);
/// assert_eq!(frames.payloads().collect::<Vec<_>>(), [b"hi"]);
/// ```
#[derive(Clone)]
pub struct Frames {
    /// The head of a single frame (its length prefix, and for a plumtree Gossip frame
    /// its type and round); unused (`head_len` 0) for a run.
    header: [u8; MAX_HEAD],
    head_len: u8,
    /// The payload of a single frame, or the whole wire bytes of a run.
    body: Bytes,
    count: u32,
    /// For a run: bytes of each frame, after its length prefix, before its payload (a
    /// plumtree Gossip frame's type and round; 0 for plain frames).
    skip: u8,
}

impl Frames {
    /// One frame carrying `payload`. `None` if it does not fit a `u32` length prefix.
    pub fn single(payload: Bytes) -> Option<Self> {
        let len = u32::try_from(payload.len()).ok()?;
        Some(Self::with_head(&len.to_be_bytes(), payload))
    }

    /// One frame whose wire bytes are `head` (at most 8 bytes: the length prefix and
    /// what a frame type puts before its payload) then `payload`; its payload, as
    /// [`payloads`](Self::payloads) gives it, is `payload`.
    pub(crate) fn with_head(head: &[u8], payload: Bytes) -> Self {
        let mut header = [0; MAX_HEAD];
        header[..head.len()].copy_from_slice(head);
        Frames {
            header,
            head_len: head.len() as u8,
            body: payload,
            count: 1,
            skip: 0,
        }
    }

    /// `count` consecutive whole frames, as they are on the wire. The caller (the node)
    /// has parsed them: `wire` holds exactly `count` frames.
    pub(crate) fn run(wire: Bytes, count: usize) -> Self {
        debug_assert_eq!(Payloads::of(&wire).count(), count);
        Frames {
            header: [0; MAX_HEAD],
            head_len: 0,
            body: wire,
            // A run lies in one read, so it has fewer frames than that read has bytes;
            // reads are far smaller than 4 GiB.
            count: u32::try_from(count).unwrap_or(u32::MAX),
            skip: 0,
        }
    }

    /// `count` consecutive whole frames whose payloads each start with `skip` bytes that
    /// are not part of the message (a plumtree Gossip frame's type and round):
    /// [`payloads`](Self::payloads) gives the messages.
    pub(crate) fn run_skipping(wire: Bytes, count: usize, skip: u8) -> Self {
        Frames {
            skip,
            ..Self::run(wire, count)
        }
    }

    /// `count` of these frames, lying at `bytes` (offsets from the first frame's
    /// start): a slice of a run, or a single frame whole.
    pub(crate) fn part(&self, bytes: std::ops::Range<usize>, count: usize) -> Self {
        if self.head_len == 0 {
            Self::run_skipping(self.body.slice(bytes), count, self.skip)
        } else {
            debug_assert_eq!((bytes.start, bytes.end, count), (0, self.wire_len(), 1));
            self.clone()
        }
    }

    /// How many frames (messages) these are.
    pub fn count(&self) -> usize {
        self.count as usize
    }

    /// Bytes on the wire, headers included.
    pub fn wire_len(&self) -> usize {
        usize::from(self.head_len) + self.body.len()
    }

    /// The wire bytes as two slices to write one after the other (either may be empty):
    /// for a vectored write, with no copy.
    pub fn parts(&self) -> [&[u8]; 2] {
        [&self.header[..usize::from(self.head_len)], &self.body]
    }

    /// The payloads, in order, borrowed from the shared buffer.
    pub fn payloads(&self) -> Payloads<'_> {
        if self.head_len == 0 {
            Payloads {
                skip: usize::from(self.skip),
                ..Payloads::of(&self.body)
            }
        } else {
            Payloads {
                wire: &[],
                single: Some(&self.body),
                skip: 0,
            }
        }
    }

    /// Appends the wire bytes to `out` (a copy; runtimes that can write vectored should
    /// write [`parts`](Self::parts) instead, as `gossip-net` does).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        for part in self.parts() {
            out.extend_from_slice(part);
        }
    }

    /// Whether each payload starts right after its length prefix (plain frames, which
    /// a node forwards as they are; not plumtree Gossip frames).
    pub(crate) fn payloads_at_frame_start(&self) -> bool {
        self.skip == 0
    }

    /// For a run, its wire bytes (a slice of the read it came from).
    pub(crate) fn run_wire(&self) -> Option<&Bytes> {
        (self.head_len == 0).then_some(&self.body)
    }

    /// The same run, over a copy of its bytes.
    pub(crate) fn with_run_wire(&self, wire: Bytes) -> Self {
        debug_assert_eq!(self.head_len, 0);
        debug_assert_eq!(wire, self.body);
        Frames {
            body: wire,
            ..self.clone()
        }
    }
}

/// Two `Frames` are equal when they carry the same frames, however they were built.
impl PartialEq for Frames {
    fn eq(&self, other: &Self) -> bool {
        fn bytes(frames: &Frames) -> impl Iterator<Item = u8> + '_ {
            frames.parts().into_iter().flatten().copied()
        }
        self.count == other.count && bytes(self).eq(bytes(other))
    }
}

impl Eq for Frames {}

impl fmt::Debug for Frames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frames")
            .field("count", &self.count)
            .field("wire_len", &self.wire_len())
            .finish()
    }
}

/// The payloads of a [`Frames`], from [`Frames::payloads`].
#[derive(Debug, Clone)]
pub struct Payloads<'a> {
    /// Wire bytes of the run not yet iterated.
    wire: &'a [u8],
    single: Option<&'a [u8]>,
    /// Bytes of each frame before its payload, after the length prefix.
    skip: usize,
}

impl<'a> Payloads<'a> {
    fn of(wire: &'a [u8]) -> Self {
        Payloads {
            wire,
            single: None,
            skip: 0,
        }
    }
}

impl<'a> Iterator for Payloads<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if let Some(payload) = self.single.take() {
            return Some(payload);
        }
        let header = self.wire.first_chunk::<HEADER_LEN>()?;
        let end = HEADER_LEN.checked_add(u32::from_be_bytes(*header) as usize)?;
        // Runs hold whole frames only; a truncated one would end the iteration.
        let Some((frame, rest)) = self.wire.split_at_checked(end) else {
            self.wire = &[];
            return None;
        };
        self.wire = rest;
        frame.get(HEADER_LEN + self.skip..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode;

    fn run_of(payloads: &[&[u8]]) -> Frames {
        let wire: Vec<u8> = payloads.iter().flat_map(|p| encode(p)).collect();
        Frames::run(Bytes::from(wire), payloads.len())
    }

    #[test]
    fn a_run_is_its_wire_bytes_and_yields_each_payload() {
        let run = run_of(&[b"ab", b"", b"cde"]);
        assert_eq!((run.count(), run.wire_len()), (3, 17));
        assert_eq!(run.parts()[0], b"");
        assert_eq!(run.parts()[1], b"\0\0\0\x02ab\0\0\0\0\0\0\0\x03cde");
        let payloads: Vec<&[u8]> = run.payloads().collect();
        assert_eq!(payloads, [&b"ab"[..], b"", b"cde"]);
        // Slices of the run's buffer, not copies.
        assert_eq!(payloads[0].as_ptr(), run.parts()[1][4..].as_ptr());
    }

    #[test]
    fn a_single_frame_equals_the_run_of_the_same_frame() {
        let single = Frames::single(Bytes::from_static(b"xyz")).unwrap();
        assert_eq!(single, run_of(&[b"xyz"]));
        assert_ne!(single, run_of(&[b"xy"]));
        let mut wire = Vec::new();
        single.write_to(&mut wire);
        assert_eq!(wire, encode(b"xyz"));
    }
}
