//! Plumtree peers' frames in: Gossip frames gathered into batches, duplicates that
//! prune their sender or are taken as shortcuts, and IHave, Graft and Prune frames.

use std::time::Instant;

use bytes::Bytes;

use super::gossip_batch::Received;
use super::{from_short, set_eager, Plumtree};
use crate::node::peer::{Shortcut, Wire};
use crate::node::read_buffer::Read;
use crate::node::{Node, BATCH};
use crate::plumtree::wire::{self, Frame, ShortId, WireError};
use crate::plumtree::{MAX_DEFERRED_GRAFTS, SHORTCUT_ROUNDS};
use crate::seen::Keying;
use crate::{DisconnectReason, MessageId, PeerId};

impl Node {
    /// Handles the complete frames buffered for plumtree peer `peer`, in order:
    /// consecutive Gossip frames a batch at a time (`take_gossip`), control frames one
    /// by one. Flow control as for plain peers: while the node cannot take new messages
    /// from the peer, its duplicates and control frames are still handled and the first
    /// new message is held. Called from `decode_frames`, which has brought the node's
    /// fullness up to date.
    pub(in crate::node) fn decode_plumtree(&mut self, now: Instant, peer: PeerId, read: &Read) {
        let overload = self.config.overload;
        if let Some(state) = self.peers.get(peer) {
            if self.flow.takes_from(overload, state) {
                self.take_held(now, peer);
            }
        }
        let Some(mut batch) = self.plumtree.as_mut().map(Plumtree::take_batch) else {
            return;
        };
        let ended = self.decode_plumtree_frames(now, peer, read, &mut batch);
        if let Some(plumtree) = self.plumtree.as_mut() {
            plumtree.put_batch(batch);
        }
        if let Err(reason) = ended {
            self.stats.protocol_errors += 1;
            self.disconnect(now, peer, reason);
            return;
        }
        self.sync_reading(now, peer);
    }

    /// The loop of `decode_plumtree`, gathering Gossip frames in `batch`. Whether the
    /// node can take new messages from the peer changes only when queues do, so it holds
    /// for the whole of a batch; while the queues have room for the batch (counted as if
    /// every frame were new). A frame that may not fit is handled on its own.
    pub(in crate::node) fn decode_plumtree_frames(
        &mut self,
        now: Instant,
        peer: PeerId,
        read: &Read,
        batch: &mut Vec<Received>,
    ) -> Result<(), DisconnectReason> {
        let overload = self.config.overload;
        let mut headroom = None;
        let result = loop {
            let Some(state) = self.peers.get_mut(peer) else {
                break Ok(());
            };
            if state.held.is_some() {
                break Ok(());
            }
            let takeable = self.flow.takes_from(overload, state);
            let frame = match state.decoder.next_frame() {
                Ok(Some(payload)) => Frame::parse(&payload),
                Ok(None) => break Ok(()),
                Err(error) => break Err(DisconnectReason::Protocol(error)),
            };
            let handled = match frame {
                Ok(Frame::Gossip { message, .. }) if message.len() > self.config.max_frame_len => {
                    Err(WireError::TooLarge)
                }
                Ok(Frame::Gossip { round, message })
                    if takeable
                        && headroom
                            .get_or_insert_with(|| self.headroom(Some(peer)))
                            .take(message.len())
                            .is_ok() =>
                {
                    let id = MessageId::of(&message);
                    batch.push(Received { id, round, message });
                    if batch.len() == BATCH {
                        self.take_gossip(now, peer, batch, read);
                    }
                    Ok(())
                }
                Ok(Frame::Gossip { round, message }) => {
                    self.take_gossip(now, peer, batch, read);
                    headroom = None;
                    self.on_gossip(now, peer, round, message)
                }
                Ok(control) => {
                    // It may make a peer eager or lazy: the room is looked at anew.
                    headroom = None;
                    self.take_gossip(now, peer, batch, read);
                    self.stats.control_frames_in += 1;
                    self.on_control(now, peer, control);
                    Ok(())
                }
                Err(error) => Err(error),
            };
            if let Err(error) = handled {
                break Err(DisconnectReason::Plumtree(error));
            }
        };
        // What came before an error is handled as it would have been alone.
        self.take_gossip(now, peer, batch, read);
        result
    }

    /// A Gossip frame from `peer`: a new message is delivered and forwarded (and its
    /// sender becomes eager), or held while the node cannot take it; a duplicate from an
    /// eager peer makes it lazy, and it is told so (Prune).
    pub(in crate::node) fn on_gossip(
        &mut self,
        now: Instant,
        peer: PeerId,
        round: u16,
        message: Bytes,
    ) -> Result<(), WireError> {
        if message.len() > self.config.max_frame_len {
            return Err(WireError::TooLarge);
        }
        let overload = self.config.overload;
        let Some(state) = self.peers.get_mut(peer) else {
            return Ok(());
        };
        self.stats.frames_in += 1;
        state.counters.frames_in += 1;
        let identified = self.keying.identify(&message);
        let takeable = self.flow.takes_from(overload, state);
        if !takeable && !self.seen.contains_key(identified.key) {
            state.hold(now, (identified, message), round);
            return Ok(());
        }
        // Plumtree nodes key by id: this computes nothing.
        let id = identified.id(&message);
        if let Some(new) = self.take_or_hold(now, peer, (identified, message), round) {
            let stays = new || self.on_duplicate(now, peer, &wire::short_id(&id), round);
            self.place_sender_in_tree(now, peer, &[stays]);
        }
        Ok(())
    }

    /// A duplicate Gossip frame (short id `id`, at `round`) from `peer`: the peer has the
    /// message, so it is no longer owed it. Returns whether it was taken as a shortcut,
    /// which keeps the sender on the tree; otherwise the caller makes it lazy (a Prune),
    /// as usual. A shortcut is a duplicate from an eager peer that came
    /// [`SHORTCUT_ROUNDS`] or more rounds closer to the origin than the copy the node
    /// took, within `shortcut_window` of it (see [`PlumtreeConfig::shortcut_window`](crate::plumtree::PlumtreeConfig::shortcut_window)):
    /// the sender becomes the node's way to the tree and is sent an empty Graft, as it
    /// prunes this node on the copy this node sent it (that Prune, already on its way,
    /// is ignored), and the peer the first copy came from goes lazy, told by a Prune.
    /// Without room for the Graft it is no shortcut.
    pub(in crate::node) fn on_duplicate(
        &mut self,
        now: Instant,
        peer: PeerId,
        id: &ShortId,
        round: u16,
    ) -> bool {
        self.release(peer, id);
        // Eager, able to be lazy (it has a promise slot), not taken as one before.
        let candidate = self.peers.get(peer).is_some_and(|state| {
            let never = matches!(
                state.wire,
                Wire::Plumtree {
                    eager: true,
                    shortcut: Shortcut::Never,
                    ..
                }
            );
            never && state.promise_slot.is_some()
        });
        // A zero window turns shortcuts off before any cache lookup.
        let Some(plumtree) = self
            .plumtree
            .as_ref()
            .filter(|p| candidate && !p.config.shortcut_window.is_zero())
        else {
            return false;
        };
        let window = plumtree.config.shortcut_window;
        let Some(first) = plumtree.cache.received(id) else {
            return false;
        };
        let shorter = first.round.saturating_sub(round) >= SHORTCUT_ROUNDS;
        let soon = now.saturating_duration_since(first.at) <= window;
        let Some(from) = first.from.filter(|&from| from != peer && shorter && soon) else {
            return false;
        };
        if self.control_fits(peer, wire::graft(None).len()).is_err() {
            return false;
        }
        if let Some(plumtree) = self.plumtree.as_mut() {
            plumtree.cache.set_received(id, round, peer);
        }
        self.stats.shortcuts += 1;
        if let Some(state) = self.peers.get_mut(peer) {
            if let Wire::Plumtree { shortcut, .. } = &mut state.wire {
                *shortcut = Shortcut::StalePruneDue;
            }
        }
        self.queue_control(now, peer, wire::graft(None));
        // Off the tree as if it had sent a duplicate: lazy, and told.
        self.place_sender_in_tree(now, from, &[false]);
        true
    }

    /// An IHave, Graft or Prune frame from `peer`.
    pub(in crate::node) fn on_control(&mut self, now: Instant, peer: PeerId, frame: Frame) {
        let slot = self.peers.get(peer).and_then(|state| state.promise_slot);
        let Some(plumtree) = self.plumtree.as_mut() else {
            return;
        };
        // A node that speaks plumtree keys its seen set by ids (`Keying::for_node`).
        debug_assert!(matches!(self.keying, Keying::Ids));
        match frame {
            Frame::IHave(entries) => {
                let (timeout, _) = plumtree.graft_timers(now);
                let threshold = plumtree.config.optimization_threshold;
                // `u16::MAX` turns it off (no round difference can reach it otherwise
                // than through a hostile round): no cache lookup per announced id.
                let optimising = threshold < u16::MAX;
                let mut swaps = Vec::new();
                let promised = slot.filter(|&slot| plumtree.cache.promised_to(slot) > 0);
                for (id, round) in entries.iter() {
                    // What this node announced to it and still keeps is no longer owed;
                    // and kept means had (one lookup, not two, for most announcements).
                    let kept = promised.and_then(|slot| plumtree.cache.release_kept(&id, slot));
                    if kept.is_none() && !self.seen.contains(&from_short(id)) {
                        plumtree.missing.announce(now, id, peer, round, timeout);
                        continue;
                    }
                    if !optimising {
                        continue;
                    }
                    // Already here: a much shorter path through `peer` improves the tree.
                    let Some(first) = plumtree.cache.received(&id) else {
                        continue;
                    };
                    let from = first.from;
                    if first.round.saturating_sub(round) >= threshold && from != Some(peer) {
                        plumtree.cache.set_received(&id, round, peer);
                        swaps.push(from);
                    }
                }
                for old in swaps {
                    self.swap_eager(now, peer, old);
                }
            }
            Frame::Graft { wanted } => {
                self.stats.grafts_received += 1;
                let Some(state) = self.peers.get_mut(peer) else {
                    return;
                };
                set_eager(state, true);
                let Some((id, _)) = wanted else {
                    return;
                };
                // A peer whose queue is full gets its grafted messages once its queue
                // drains, not now: grafts are a few bytes each and a message up to
                // `max_frame_len`, so a peer that grafts without reading would otherwise
                // grow its queue without bound. Yet a peer that reads, however slowly,
                // gets every message it grafts: the message may be nowhere else (a node
                // whose peers are all lazy announces what it publishes, and only it has
                // it). What waits is an id, at most `MAX_DEFERRED_GRAFTS` per peer.
                let waiting = state.is_full() || !state.deferred_grafts.is_empty();
                if waiting || !self.send_grafted(now, peer, &id) {
                    let Some(state) = self.peers.get_mut(peer) else {
                        return;
                    };
                    if state.deferred_grafts.len() < MAX_DEFERRED_GRAFTS {
                        state.deferred_grafts.push_back(id);
                        self.stats.grafts_deferred += 1;
                    } else {
                        self.stats.grafts_refused += 1;
                    }
                }
            }
            Frame::Prune => {
                if let Some(state) = self.peers.get_mut(peer) {
                    // Sent before it got the Graft of a shortcut through it.
                    if let Wire::Plumtree { shortcut, .. } = &mut state.wire {
                        if *shortcut == Shortcut::StalePruneDue {
                            *shortcut = Shortcut::Taken;
                            return;
                        }
                    }
                    set_eager(state, false);
                }
            }
            Frame::Gossip { .. } => {}
        }
    }
}
