//! What the simulator records of each message published, for the [`Report`](super::Report).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;

use super::schedule::SimTime;
use super::MessageReport;
use crate::{MessageId, SeenHasher};

/// Every message published in the run, with where and when it was delivered.
#[derive(Debug, Default)]
pub(super) struct Tracker {
    tracks: Vec<Track>,
    /// Looked up for every delivery, by payload: nodes that speak only flood do not
    /// work out the ids of what they deliver, and hashing each delivery with BLAKE3
    /// here would cost the simulation what it spares them. A fast hasher (its seed does
    /// not matter, the map is never walked).
    index: HashMap<Bytes, usize, SeenHasher>,
}

#[derive(Debug)]
struct Track {
    id: MessageId,
    origin: usize,
    published_at: SimTime,
    /// Hops from the origin at which each node got it; `u32::MAX` = not yet.
    hops: Vec<u32>,
    deliveries: Vec<u16>,
    frames_sent: u64,
    last_delivery_at: SimTime,
    last_delivery_hops: u32,
}

impl Tracker {
    /// Starts tracking a message published at `origin` of `nodes` (if new); returns its
    /// track.
    pub(super) fn track(
        &mut self,
        (id, payload): (MessageId, Bytes),
        origin: usize,
        nodes: usize,
        now: SimTime,
    ) -> usize {
        let index = *self.index.entry(payload).or_insert(self.tracks.len());
        if index == self.tracks.len() {
            let mut hops = vec![u32::MAX; nodes];
            hops[origin] = 0;
            self.tracks.push(Track {
                id,
                origin,
                published_at: now,
                hops,
                deliveries: vec![0; nodes],
                frames_sent: 0,
                last_delivery_at: now,
                last_delivery_hops: 0,
            });
        }
        index
    }

    /// The track of the message `payload`, if it is tracked.
    pub(super) fn get(&self, payload: &[u8]) -> Option<usize> {
        self.index.get(payload).copied()
    }

    /// `count` frames carrying the message of `track` were sent.
    pub(super) fn frames_sent(&mut self, track: usize, count: u64) {
        self.tracks[track].frames_sent += count;
    }

    /// Node `node` delivered the message of `track`, from node `sender` (`None`: from a
    /// raw peer).
    pub(super) fn delivered(
        &mut self,
        track: usize,
        node: usize,
        sender: Option<usize>,
        now: SimTime,
    ) {
        let track = &mut self.tracks[track];
        let hops = sender.map_or(1, |s| track.hops[s].saturating_add(1));
        track.deliveries[node] = track.deliveries[node].saturating_add(1);
        if track.hops[node] == u32::MAX {
            track.hops[node] = hops;
        }
        track.last_delivery_at = now;
        track.last_delivery_hops = hops;
    }

    /// The figures of each message, in the order they were published.
    pub(super) fn reports(&self) -> Vec<MessageReport> {
        self.tracks
            .iter()
            .map(|track| MessageReport {
                id: track.id,
                origin: track.origin,
                reached: track.hops.iter().filter(|&&h| h != u32::MAX).count(),
                delivered_again: track.deliveries.iter().filter(|&&d| d > 1).count(),
                frames_sent: track.frames_sent,
                last_delivery_hops: track.last_delivery_hops,
                last_delivery_after: Duration::from_nanos(
                    track.last_delivery_at - track.published_at,
                ),
            })
            .collect()
    }
}
