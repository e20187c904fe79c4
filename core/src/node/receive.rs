//! Bytes in from a peer: frames decoded and handled a batch at a time, partial frames
//! charged to their budget, the peer's rate limit, and whether the node wants its bytes.

use std::time::Instant;

use bytes::Bytes;

use super::plumtree::Received;
use super::read_buffer::{self, Read};
use super::{Node, BATCH};
use crate::{Action, Delivery, DisconnectReason, PeerId};

impl Node {
    /// Bytes arrived from `peer`, in any chunking: part of a frame, many frames, or both.
    /// The bytes are copied once; [`handle_received_bytes`](Self::handle_received_bytes)
    /// avoids that.
    ///
    /// New messages are delivered and forwarded; a framing error disconnects the peer.
    /// Bytes from an unknown peer are ignored.
    pub fn handle_received(&mut self, now: Instant, peer: PeerId, data: &[u8]) {
        if self.peers.contains(peer) {
            self.handle_received_bytes(now, peer, Bytes::copy_from_slice(data));
        }
    }

    /// Like [`handle_received`](Self::handle_received), for a buffer the caller owns:
    /// payloads that lie within it are delivered and forwarded as slices of it, with no
    /// copy. This is what the socket adapters use with each read.
    ///
    /// A slice keeps the whole buffer in memory while it is queued or delivered, so when
    /// the new messages in `data` are less than a quarter of it (a read of mostly
    /// duplicates), they are copied out instead, and counted in
    /// [`Stats::payloads_copied`](crate::Stats::payloads_copied). Either way a buffer
    /// stays alive for at most four times the bytes of the messages that keep it.
    pub fn handle_received_bytes(&mut self, now: Instant, peer: PeerId, data: Bytes) {
        if let Some(state) = self.peers.get_mut(peer) {
            let bytes = data.len() as u64;
            self.stats.bytes_in += bytes;
            state.counters.bytes_in += bytes;
            let first_before = state.counters.first_deliveries;
            let read = Read::of(&data);
            state.decoder.push(data);
            self.read_frames(now, peer, read);
            self.pace(now, peer, bytes, first_before);
            self.settle(now);
        }
    }

    /// Charges what `peer` sent against its rate limit, if there is one, and stops
    /// reading it while it is over.
    pub(super) fn pace(&mut self, now: Instant, peer: PeerId, bytes: u64, first_before: u64) {
        let Some(limit) = self.config.peer_rate_limit else {
            return;
        };
        let Some(state) = self.peers.get_mut(peer) else {
            return;
        };
        let messages = state.counters.first_deliveries - first_before;
        let (bytes_pacer, messages_pacer) = &mut state.pacers;
        let until = [
            bytes_pacer.charge(now, bytes, limit.bytes_per_second),
            messages_pacer.charge(now, messages, limit.messages_per_second),
        ]
        .into_iter()
        .flatten()
        .max();
        if until.is_some() && state.rate_paused_until.is_none() {
            self.stats.rate_limit_pauses += 1;
        }
        state.rate_paused_until = until.max(state.rate_paused_until);
        self.sync_reading(now, peer);
    }

    /// Tells the caller to pause or resume reading `peer` if what the node wants of it
    /// changed since it last said. A partial frame's timeout starts over on resuming:
    /// the peer could not complete it while not read.
    pub(super) fn sync_reading(&mut self, now: Instant, peer: PeerId) {
        let Some(state) = self.peers.get_mut(peer) else {
            return;
        };
        let wants = state.wants_bytes();
        if wants == state.reading_announced {
            return;
        }
        state.reading_announced = wants;
        self.actions.push_back(match wants {
            true => {
                state.partial_since = state.partial_since.map(|since| since.max(now));
                Action::ResumeReading { peer }
            }
            false => Action::PauseReading { peer },
        });
    }

    /// Decodes what `peer` sent, then charges its partial frame, if it is left with one,
    /// to the partial-frame budget, disconnecting the oldest partial frames' peers while
    /// the budget is passed.
    pub(super) fn read_frames(&mut self, now: Instant, peer: PeerId, read: Read) {
        let Some(state) = self.peers.get(peer) else {
            return;
        };
        let frames_before = state.counters.frames_in;
        self.decode_frames(now, peer, read);
        let Some(state) = self.peers.get_mut(peer) else {
            return;
        };
        let held = state.decoder.partial_capacity();
        self.partial_bytes = self.partial_bytes - state.partial_bytes + held;
        state.partial_bytes = held;
        let completed = state.counters.frames_in > frames_before;
        state.partial_since = match held {
            0 => None,
            _ if completed => Some(now),
            _ => state.partial_since.or(Some(now)),
        };
        while self.partial_bytes > self.config.partial_frame_budget_bytes {
            let oldest = self
                .peers
                .iter()
                .filter(|(_, state)| state.partial_bytes > 0)
                .min_by_key(|(id, state)| (state.partial_since, *id))
                .map(|(id, state)| (id, state.partial_bytes));
            let Some((victim, held)) = oldest else {
                break;
            };
            self.stats.partial_frame_disconnects += 1;
            self.disconnect(
                now,
                victim,
                DisconnectReason::PartialFramesOverBudget { held },
            );
        }
    }

    /// Handles the complete frames buffered for `peer`, [`BATCH`] at a time in three
    /// passes: split and hash them, check them against the seen set, then deliver the new
    /// ones and gather them into runs to forward. The seen-set checks run back to back so
    /// that their cache misses (a large set lives outside the caches) overlap instead of
    /// queueing behind each frame's hashing. Frames join a batch while the queues they
    /// go to have room for them (see `headroom`); one that may not fit is handled on
    /// its own once the batch is forwarded, and held if it is new and does not. Outcomes
    /// and the order of what each peer is sent are those of one frame at a time.
    pub(super) fn decode_frames(&mut self, now: Instant, peer: PeerId, read: Read) {
        self.update_total(now);
        self.update_application(now);
        let Some(state) = self.peers.get(peer) else {
            return;
        };
        if state.is_plumtree() {
            self.decode_plumtree(now, peer, &read);
            return;
        };
        if !self.flow.takes_from(self.config.overload, state) {
            // A queue is full: take what costs nothing, hold the first new message.
            self.take_duplicates(now, peer);
            return;
        }
        if !self.take_held(now, peer) {
            self.sync_reading(now, peer);
            return;
        }
        let mut headroom = self.headroom(Some(peer));
        let mut batch = std::mem::take(&mut self.batch);
        let mut run = std::mem::take(&mut self.run);
        let first_action = self.actions.len();
        // Bytes of new payloads that are slices of `read`.
        let mut kept = 0;
        // New messages for the plumtree peers, who get them in frames of their own.
        let mut for_plumtree = self.plumtree.as_mut().map(|p| p.take_batch());
        loop {
            batch.clear();
            let Some(state) = self.peers.get_mut(peer) else {
                break;
            };
            let mut error = None;
            // A frame that may not fit the queues it would go to (the room is counted as
            // if every frame were new): handled on its own after the batch.
            let mut doubtful = None;
            while batch.len() < BATCH {
                match state.decoder.next_frame() {
                    Ok(Some(payload)) if headroom.take(payload.len()).is_err() => {
                        doubtful = Some(payload);
                        break;
                    }
                    Ok(Some(payload)) => batch.push((self.keying.identify(&payload), payload)),
                    Ok(None) => break,
                    Err(frame_error) => {
                        error = Some(frame_error);
                        break;
                    }
                }
            }
            let more = batch.len() == BATCH || doubtful.is_some();
            self.stats.frames_in += batch.len() as u64;
            let mut new = [false; BATCH];
            let keys = batch.iter().map(|(identified, _)| identified.key);
            self.seen.insert_many(keys, now, &mut new[..batch.len()]);
            let first = new[..batch.len()].iter().filter(|&&is_new| is_new).count() as u64;
            state.counters.frames_in += batch.len() as u64;
            state
                .counters
                .record(now, first, batch.len() as u64 - first);
            // Nothing is queued for `peer` while reading it (its messages go to the
            // others), so this holds for the whole batch.
            let keeps_copies = !state.backlog.is_empty();
            for (is_new, (identified, payload)) in new.into_iter().zip(batch.drain(..)) {
                // `peer` has it, new or not: a new one is a message the seen set
                // forgot (see `Config::seen_retention`), possibly still kept for it.
                if keeps_copies {
                    self.drop_kept_copy(now, peer, identified.key);
                }
                if !is_new {
                    self.stats.duplicates += 1;
                    continue;
                }
                let frame = read.frame_range(&payload);
                if !frame.as_ref().is_some_and(|frame| run.accepts(frame)) {
                    self.forward_run(now, peer, &read, &mut run);
                }
                match frame {
                    Some(frame) => {
                        kept += payload.len();
                        let from = peer;
                        if let Some(batch) = for_plumtree.as_mut() {
                            let message = payload.clone();
                            batch.push(Received {
                                id: identified.id(&message),
                                round: 0,
                                message,
                            });
                        }
                        self.deliver(Delivery::with_known_id(
                            identified.known_id(),
                            payload,
                            from,
                        ));
                        run.extend(frame, identified.key);
                    }
                    // Assembled across reads, or empty: forwarded on its own.
                    None => self.deliver_and_forward(now, peer, (identified, payload), 0),
                }
            }
            if let Some(batch) = for_plumtree.as_mut() {
                self.send_on_to_plumtree(now, peer, batch);
            }
            if let Some(payload) = doubtful {
                self.forward_run(now, peer, &read, &mut run);
                self.stats.frames_in += 1;
                if let Some(state) = self.peers.get_mut(peer) {
                    state.counters.frames_in += 1;
                }
                let identified = self.keying.identify(&payload);
                if self
                    .take_or_hold(now, peer, (identified, payload), 0)
                    .is_none()
                {
                    break;
                }
                headroom = self.headroom(Some(peer));
            }
            if let Some(error) = error {
                self.forward_run(now, peer, &read, &mut run);
                self.stats.protocol_errors += 1;
                self.disconnect(now, peer, DisconnectReason::Protocol(error));
                break;
            }
            if !more {
                break;
            }
        }
        self.forward_run(now, peer, &read, &mut run);
        if let (Some(plumtree), Some(batch)) = (self.plumtree.as_mut(), for_plumtree) {
            plumtree.put_batch(batch);
        }
        self.batch = batch;
        self.run = run;
        self.sync_reading(now, peer);
        if read.too_big_for(kept) {
            self.stats.payloads_copied +=
                read_buffer::copy_out(&mut self.actions, first_action, &read);
        }
    }
}
