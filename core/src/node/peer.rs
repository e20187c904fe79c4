//! Per-peer state: the frame decoder and the output-queue accounting.

use std::time::{Duration, Instant};

use crate::{FrameDecoder, PeerId};

/// What a node knows about one connected peer.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) decoder: FrameDecoder,
    /// Wire bytes sent to the caller for this peer and not yet reported flushed.
    pub(crate) queued_bytes: usize,
    /// When this peer's queue first overflowed, if it has not drained since.
    pub(crate) overloaded_since: Option<Instant>,
}

impl Peer {
    pub(crate) fn new(max_frame_len: usize) -> Self {
        Peer {
            decoder: FrameDecoder::new(max_frame_len),
            queued_bytes: 0,
            overloaded_since: None,
        }
    }

    /// When this peer must be disconnected if it is still overloaded.
    pub(crate) fn slow_deadline(&self, timeout: Duration) -> Option<Instant> {
        // An overflowing deadline means "never".
        self.overloaded_since?.checked_add(timeout)
    }

    /// Accounts `bytes` as written; returns how many were actually outstanding.
    pub(crate) fn flushed(&mut self, bytes: usize, queue_budget: usize) -> usize {
        let flushed = bytes.min(self.queued_bytes);
        self.queued_bytes -= flushed;
        if self.queued_bytes <= queue_budget / 2 {
            self.overloaded_since = None;
        }
        flushed
    }
}

/// The connected peers, sorted by id: a flood walks them in a fixed order (so runs are
/// deterministic) over contiguous memory, and lookups are a binary search.
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
