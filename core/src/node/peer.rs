//! Per-peer state: the frame decoder and the output-queue accounting.

use std::time::{Duration, Instant};

use crate::FrameDecoder;

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
