//! Simulated TCP connections: a link between two nodes, one pipe per direction.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::schedule::SimTime;
use crate::{Frames, PeerId};

/// One direction of a link: frames in flight, in order.
#[derive(Debug, Default)]
pub(super) struct Pipe {
    in_flight: VecDeque<(SimTime, Frames)>,
    /// Bytes of the front frame already read by the receiver.
    read_of_front: usize,
    /// Arrival time of the last frame sent, so later frames never overtake it.
    last_arrival: SimTime,
    /// When the sender finishes putting the bytes sent so far on the wire (with a
    /// bandwidth limit).
    busy_until: SimTime,
    /// Whether an arrival event is scheduled for this pipe.
    pub(super) arrival_scheduled: bool,
    /// Whether the receiver has paused reading (bytes wait in the pipe).
    pub(super) paused: bool,
}

impl Pipe {
    /// When `len` bytes sent at `now` have left the sender: at once without a
    /// `bandwidth` (bytes per second), else after the bytes before them and their own
    /// transmission time.
    pub(super) fn transmit(&mut self, now: SimTime, len: usize, bandwidth: Option<u64>) -> SimTime {
        let Some(bandwidth) = bandwidth else {
            return now;
        };
        let nanos = (len as u128 * 1_000_000_000 / u128::from(bandwidth.max(1))) as u64;
        self.busy_until = self.busy_until.max(now).saturating_add(nanos);
        self.busy_until
    }

    /// Puts `frames` in flight to arrive at `at`, or with the frames before them if
    /// those arrive later (order is kept). Returns when they arrive.
    pub(super) fn push(&mut self, at: SimTime, frames: Frames) -> SimTime {
        let at = at.max(self.last_arrival);
        self.last_arrival = at;
        self.in_flight.push_back((at, frames));
        at
    }

    /// Bytes that have arrived by `now` and are not read yet.
    pub(super) fn arrived(&self, now: SimTime) -> usize {
        let arrived: usize = self
            .in_flight
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, frames)| frames.wire_len())
            .sum();
        arrived - self.read_of_front
    }

    /// The wire length of the front run of frames if it has wholly arrived by `now`
    /// and none of it was read yet: a read of exactly it hands its bytes on without a
    /// copy.
    pub(super) fn whole_front_run(&self, now: SimTime) -> Option<usize> {
        let (at, frames) = self.in_flight.front()?;
        let whole = *at <= now && self.read_of_front == 0;
        frames
            .run_wire()
            .filter(|_| whole && frames.payloads_at_frame_start())
            .map(Bytes::len)
    }

    /// Takes `len` bytes (no more than [`arrived`](Self::arrived)) off the front, copied
    /// into a buffer of their own as a socket read would; except when they are exactly
    /// the front run of frames, whose bytes are handed on as they are (the same bytes,
    /// without the copy: most of a flood's reads).
    pub(super) fn read(&mut self, len: usize) -> Bytes {
        if let Some((_, frames)) = self.in_flight.front() {
            let whole = self.read_of_front == 0 && frames.wire_len() == len;
            if let Some(wire) = frames.run_wire().filter(|_| whole).cloned() {
                self.in_flight.pop_front();
                return wire;
            }
        }
        let mut buffer = BytesMut::with_capacity(len);
        while buffer.len() < len {
            let Some((_, frames)) = self.in_flight.front() else {
                break;
            };
            let mut offset = self.read_of_front;
            while offset < frames.wire_len() && buffer.len() < len {
                let [head, rest] = frames.parts();
                let part = match offset.checked_sub(head.len()) {
                    None => &head[offset..],
                    Some(in_rest) => &rest[in_rest..],
                };
                let take = part.len().min(len - buffer.len());
                buffer.extend_from_slice(&part[..take]);
                offset += take;
            }
            if offset == frames.wire_len() {
                self.in_flight.pop_front();
                self.read_of_front = 0;
            } else {
                self.read_of_front = offset;
            }
        }
        buffer.freeze()
    }

    /// When the next unread bytes arrive (`now` at the earliest), if any are in flight.
    pub(super) fn next_arrival(&self, now: SimTime) -> Option<SimTime> {
        self.in_flight.front().map(|(at, _)| (*at).max(now))
    }
}

/// A connection between two nodes, and the graph edge it runs over (it can break and
/// come back).
#[derive(Debug)]
pub(super) struct Link {
    pub(super) ends: [usize; 2],
    pub(super) latency: SimTime,
    pub(super) up: bool,
    /// Bumped on every break, so events of an old connection are ignored.
    pub(super) epoch: u64,
    /// `pipes[s]` carries bytes from `ends[s]` to the other end.
    pub(super) pipes: [Pipe; 2],
}

impl Link {
    /// A link between `a` and `b`, not connected yet.
    pub(super) fn new(a: usize, b: usize, latency: SimTime) -> Self {
        Link {
            ends: [a, b],
            latency,
            up: false,
            epoch: 0,
            pipes: Default::default(),
        }
    }
}

/// Peer ids with this bit set are raw peers attached by the test, not simulated nodes.
pub(super) const RAW_PEER: u64 = 1 << 63;

/// The id under which `ends[side]` of `link` knows the other end.
pub(super) fn peer_id(link: usize, side: usize) -> PeerId {
    PeerId(((link as u64) << 1) | side as u64)
}

/// The inverse of [`peer_id`]: the link and the side that holds the id.
pub(super) fn link_of(peer: PeerId) -> (usize, usize) {
    ((peer.0 >> 1) as usize, (peer.0 & 1) as usize)
}
