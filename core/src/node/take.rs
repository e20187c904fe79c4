//! Taking a peer's messages: a new one delivered and forwarded, a duplicate dropped, a
//! copy kept back for that peer dropped either way (it has the message), and the first
//! that does not fit the queues held, with reading paused, until it does.

use std::time::Instant;

use bytes::Bytes;

use super::forward::refresh_full;
use super::headroom;
use super::peer::CopyProgress;
use super::Node;
use crate::seen::{Identified, SeenKey};
use crate::{Action, Delivery, DisconnectReason, Overload, PeerId, QUEUED_FRAME_OVERHEAD};

impl Node {
    /// Delivers a new message from `peer` (received at plumtree `round`, 0 from a plain
    /// peer) and forwards it on its own.
    pub(super) fn deliver_and_forward(
        &mut self,
        now: Instant,
        peer: PeerId,
        (identified, payload): (Identified, Bytes),
        round: u16,
    ) {
        let delivery = Delivery::with_known_id(identified.known_id(), payload.clone(), peer);
        self.deliver(delivery);
        self.forward_one(now, Some(peer), (identified, payload), round);
    }

    /// Hands a new message to the application, charged to its delivery queue; unless it
    /// has stalled (or, with shedding, its queue is full): then it is dropped for it and
    /// counted.
    pub(super) fn deliver(&mut self, delivery: Delivery) {
        // Every new message taken from a peer comes through here: its escape round
        // pays what `headroom` checked it against.
        if self.flow.escaping {
            if let Some(state) = self.peers.get_mut(delivery.from) {
                let cost = headroom::plain_charge(delivery.payload.len());
                state.escape_room = state.escape_room.saturating_sub(cost);
            }
        }
        let charge = delivery.payload.len() + QUEUED_FRAME_OVERHEAD;
        let app = &mut self.application;
        let shed = self.config.overload == Overload::Shed
            && app.queued + charge > self.config.delivery_queue_bytes;
        if app.stalled || shed {
            self.stats.deliveries_dropped += 1;
            return;
        }
        app.queued += charge;
        self.stats.messages_delivered += 1;
        self.actions.push_back(Action::Deliver(delivery));
    }

    /// The application took `count` deliveries, of `bytes` payload bytes in all: their
    /// room in its delivery queue is free again (see
    /// [`Config::delivery_queue_bytes`](crate::Config::delivery_queue_bytes)). An
    /// application that had stalled gets its deliveries again from now on.
    pub fn handle_delivered(&mut self, now: Instant, count: usize, bytes: usize) {
        let app = &mut self.application;
        let charge = bytes.saturating_add(count.saturating_mul(QUEUED_FRAME_OVERHEAD));
        app.queued = app.queued.saturating_sub(charge);
        if count > 0 {
            app.last_progress = Some(now);
            app.stalled = false;
        }
        self.settle(now);
    }

    /// Takes the message held from `peer`, if any, now that the node takes new messages
    /// from it: it came before everything buffered after it, and is new unless a copy
    /// came another way while it waited. If it still does not fit the queues it goes
    /// to, it stays held and the queue it does not fit is marked full. Returns whether
    /// nothing is held from `peer` now.
    pub(super) fn take_held(&mut self, now: Instant, peer: PeerId) -> bool {
        let Some(state) = self.peers.get_mut(peer) else {
            return false;
        };
        let Some((identified, payload)) = state.held.take() else {
            return true;
        };
        // 0 for a plain peer: it is never set.
        let round = state.held_round;
        let taken = self
            .take_or_hold(now, peer, (identified, payload), round)
            .is_some();
        if let Some(state) = self.peers.get_mut(peer).filter(|_| taken) {
            state.held_since = None;
        }
        taken
    }

    /// A message from `peer` (received at plumtree `round`, 0 from a plain peer), which
    /// the node takes new messages from: dropped if a duplicate, taken if new and it
    /// fits the queues it goes to; otherwise held (reading pauses), and the queue it
    /// does not fit marked full. Returns whether it was new, `None` if it is held. The
    /// caller tells the adapter whether to read the peer (`sync_reading`) once done
    /// with it, so a message taken and the next one held do not resume and pause it.
    pub(super) fn take_or_hold(
        &mut self,
        now: Instant,
        peer: PeerId,
        (identified, payload): (Identified, Bytes),
        round: u16,
    ) -> Option<bool> {
        if !self.seen.contains_key(identified.key) {
            if let Err(binding) = self.headroom(Some(peer)).take(payload.len()) {
                self.mark_full(now, binding);
                if let Some(state) = self.peers.get_mut(peer) {
                    state.hold(now, (identified, payload), round);
                }
                return None;
            }
        }
        Some(self.take_new(now, peer, identified, payload, round))
    }

    /// Returns whether it was new.
    pub(super) fn take_new(
        &mut self,
        now: Instant,
        peer: PeerId,
        identified: Identified,
        payload: Bytes,
        round: u16,
    ) -> bool {
        let new = self.seen.insert(identified.key, now);
        if let Some(state) = self.peers.get_mut(peer) {
            state.counters.record(now, u64::from(new), u64::from(!new));
        }
        // `peer` has it, new or not (a new one the seen set may have forgotten while a
        // copy of it was still kept for `peer`).
        self.drop_kept_copy(now, peer, identified.key);
        if new {
            self.deliver_and_forward(now, peer, (identified, payload), round);
        } else {
            self.stats.duplicates += 1;
        }
        new
    }

    /// `peer` sent the message of `key`, so it has it: a copy of it kept back for the
    /// peer (see `backlog`) is dropped unsent, and the budgets get its charge back.
    pub(super) fn drop_kept_copy(&mut self, now: Instant, peer: PeerId, key: SeenKey) {
        let Some(state) = self.peers.get_mut(peer) else {
            return;
        };
        let Some(dropped) = state.backlog.drop_copy(key) else {
            return;
        };
        let charge = crate::config::queue_charge(dropped.wire_len, 1);
        state.queued_bytes -= charge;
        self.queued_bytes -= match dropped.run {
            None => charge,
            Some(run) => {
                self.shared_runs.progress.push(CopyProgress {
                    run,
                    written: dropped.wire_len,
                    complete: dropped.send_emptied,
                });
                QUEUED_FRAME_OVERHEAD + self.shared_runs.release()
            }
        };
        self.stats.copies_not_sent += 1;
        refresh_full(&mut self.flow, &self.config, state, false, now);
    }

    /// While the node cannot take new messages from `peer`: drops the duplicates at the
    /// front of what it sent (they cost nothing and free its queue), and holds the first
    /// new message, with everything after it left undecoded, until the node can take it;
    /// the caller stops reading the peer meanwhile. In a network with cycles most of
    /// what a peer sends is duplicates, so this keeps rings of full nodes turning.
    pub(super) fn take_duplicates(&mut self, now: Instant, peer: PeerId) {
        loop {
            let Some(state) = self.peers.get_mut(peer) else {
                return;
            };
            if state.held.is_some() {
                break;
            }
            match state.decoder.next_frame() {
                Ok(Some(payload)) => {
                    self.stats.frames_in += 1;
                    state.counters.frames_in += 1;
                    let identified = self.keying.identify(&payload);
                    if self.seen.contains_key(identified.key) {
                        self.stats.duplicates += 1;
                        state.counters.record(now, 0, 1);
                        self.drop_kept_copy(now, peer, identified.key);
                    } else {
                        state.hold(now, (identified, payload), 0);
                    }
                }
                Ok(None) => return,
                Err(error) => {
                    self.stats.protocol_errors += 1;
                    self.disconnect(now, peer, DisconnectReason::Protocol(error));
                    return;
                }
            }
        }
        self.sync_reading(now, peer);
    }
}
