//! Per-peer state: the frame decoder and the output-queue accounting.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::queue_charge;
use crate::{FrameDecoder, PeerId, QUEUED_FRAME_OVERHEAD};

/// What a node knows about one connected peer.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) decoder: FrameDecoder,
    /// Bytes charged for frames sent to the caller for this peer and not yet flushed:
    /// their unwritten wire bytes, plus [`QUEUED_FRAME_OVERHEAD`] for each frame of a
    /// `Send` not completely written.
    pub(crate) queued_bytes: usize,
    /// Where each queued `Send` ends in the peer's byte stream and how many frames it
    /// carries, oldest first, so that a flush of so many bytes tells how many frames it
    /// completed.
    send_ends: VecDeque<(u64, usize)>,
    /// Wire bytes queued for this peer since it connected.
    queued_total: u64,
    /// Wire bytes reported flushed since it connected.
    flushed_total: u64,
    /// When this peer's queue first overflowed, if it has not drained since.
    pub(crate) overloaded_since: Option<Instant>,
}

/// What a flush accounted for.
pub(crate) struct Flushed {
    /// Wire bytes that were outstanding and are now written.
    pub(crate) wire_bytes: usize,
    /// What the budgets got back: the wire bytes, plus the overhead of each frame of the
    /// `Send`s the flush completed.
    pub(crate) released: usize,
}

impl Peer {
    pub(crate) fn new(max_frame_len: usize) -> Self {
        Peer {
            decoder: FrameDecoder::new(max_frame_len),
            queued_bytes: 0,
            send_ends: VecDeque::new(),
            queued_total: 0,
            flushed_total: 0,
            overloaded_since: None,
        }
    }

    /// Accounts a `Send` of `frames` frames, `wire_len` bytes in all, as queued for this
    /// peer; returns what it is charged.
    pub(crate) fn queue(&mut self, wire_len: usize, frames: usize) -> usize {
        self.queued_total += wire_len as u64;
        self.send_ends.push_back((self.queued_total, frames));
        let charge = queue_charge(wire_len, frames);
        self.queued_bytes += charge;
        charge
    }

    /// When this peer must be disconnected if it is still overloaded.
    pub(crate) fn slow_deadline(&self, timeout: Duration) -> Option<Instant> {
        // An overflowing deadline means "never".
        self.overloaded_since?.checked_add(timeout)
    }

    /// Accounts `bytes` more wire bytes as written (clamped to what was queued).
    pub(crate) fn flushed(&mut self, bytes: usize, queue_budget: usize) -> Flushed {
        let outstanding = self.queued_total - self.flushed_total;
        let wire_bytes = (bytes as u64).min(outstanding);
        self.flushed_total += wire_bytes;
        let mut completed = 0;
        while let Some(&(end, frames)) = self.send_ends.front() {
            if end > self.flushed_total {
                break;
            }
            self.send_ends.pop_front();
            completed += frames;
        }
        // Both fit in usize: they are at most what was charged, which is a usize.
        let wire_bytes = wire_bytes as usize;
        let released = wire_bytes + completed * QUEUED_FRAME_OVERHEAD;
        self.queued_bytes -= released;
        if self.queued_bytes <= queue_budget / 2 {
            self.overloaded_since = None;
        }
        Flushed {
            wire_bytes,
            released,
        }
    }
}

/// The connected peers, sorted by id: a flood walks them in a fixed order (so simulations
/// are deterministic) over contiguous memory, and lookups are a binary search.
#[derive(Debug, Default)]
pub(crate) struct PeerTable {
    entries: Vec<(PeerId, Peer)>,
}

impl PeerTable {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn contains(&self, id: PeerId) -> bool {
        self.position(id).is_ok()
    }

    pub(crate) fn get_mut(&mut self, id: PeerId) -> Option<&mut Peer> {
        let index = self.position(id).ok()?;
        Some(&mut self.entries[index].1)
    }

    /// Adds a peer, replacing any with the same id.
    pub(crate) fn insert(&mut self, id: PeerId, peer: Peer) {
        match self.position(id) {
            Ok(index) => self.entries[index].1 = peer,
            Err(index) => self.entries.insert(index, (id, peer)),
        }
    }

    pub(crate) fn remove(&mut self, id: PeerId) -> Option<Peer> {
        let index = self.position(id).ok()?;
        Some(self.entries.remove(index).1)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (PeerId, &Peer)> {
        self.entries.iter().map(|(id, peer)| (*id, peer))
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (PeerId, &mut Peer)> {
        self.entries.iter_mut().map(|(id, peer)| (*id, peer))
    }

    fn position(&self, id: PeerId) -> Result<usize, usize> {
        self.entries.binary_search_by_key(&id, |(key, _)| *key)
    }
}
