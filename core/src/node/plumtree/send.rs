//! Plumtree frames out: messages sent whole to eager peers or from the cache to peers
//! that graft them, announcements gathered for lazy peers, control frames.

use std::time::Instant;

use bytes::Bytes;

use super::gossip_batch::Received;
use super::{set_eager, Target};
use crate::node::peer::Wire;
use crate::node::Node;
use crate::plumtree::wire::{self, ShortId};
use crate::{Frames, MessageId, PeerId};

impl Node {
    /// Sends `peer` the cached message of short id `id`, if it is still cached, one hop
    /// further than this node got it. Returns `false`, sending nothing, if it does not
    /// fit the queues (the one it does not fit is marked full).
    pub(in crate::node) fn send_grafted(
        &mut self,
        now: Instant,
        peer: PeerId,
        id: &ShortId,
    ) -> bool {
        let Some((message, round)) = self.plumtree.as_ref().and_then(|p| p.cache.get(id)) else {
            self.stats.grafts_uncached += 1;
            return true;
        };
        if !self.send_whole(now, peer, message, round) {
            return false;
        }
        self.release(peer, id);
        true
    }

    /// Sends `peer` `message` (received at `round`) whole, in a frame to it alone (a
    /// Gossip frame, or a plain one to a plain peer), if it fits its queue and the
    /// total: a graft answered, a promise kept, a message a plain peer missed. Returns
    /// `false`, sending nothing, if it does not fit (the queue it does not fit is marked
    /// full).
    pub(in crate::node) fn send_whole(
        &mut self,
        now: Instant,
        peer: PeerId,
        message: Bytes,
        round: u16,
    ) -> bool {
        if let Err(binding) = self.grafted_fits(peer, message.len()) {
            self.mark_full(now, binding);
            return false;
        }
        let plain = self
            .peers
            .get(peer)
            .is_some_and(|state| !state.is_plumtree());
        let frames = match plain {
            true => Frames::single(message),
            false => wire::gossip_head(message.len(), round.saturating_add(1))
                .map(|head| Frames::with_head(&head, message)),
        };
        if let Some(frames) = frames {
            self.queue(now, peer, frames);
        }
        true
    }

    /// Answers the grafts `peer` sent while its queue was full, oldest first, for as
    /// long as its queue is not full and they fit.
    pub(in crate::node) fn answer_deferred_grafts(&mut self, now: Instant, peer: PeerId) {
        loop {
            let Some(state) = self.peers.get_mut(peer) else {
                return;
            };
            if state.is_full() {
                return;
            }
            let Some(id) = state.deferred_grafts.pop_front() else {
                return;
            };
            if !self.send_grafted(now, peer, &id) {
                if let Some(state) = self.peers.get_mut(peer) {
                    state.deferred_grafts.push_front(id);
                }
                return;
            }
        }
    }

    /// Tree optimisation: `better` (a lazy peer) becomes eager, and `old` (the eager
    /// peer the message came from, if a plumtree peer) lazy; both are told.
    pub(in crate::node) fn swap_eager(
        &mut self,
        now: Instant,
        better: PeerId,
        old: Option<PeerId>,
    ) {
        // An improvement can wait for the next IHave: none where there is no room.
        if self.control_fits(better, wire::graft(None).len()).is_err() {
            return;
        }
        let Some(state) = self.peers.get_mut(better) else {
            return;
        };
        if matches!(state.wire, Wire::Plumtree { eager: false, .. }) {
            set_eager(state, true);
            self.stats.tree_swaps += 1;
            self.queue_control(now, better, wire::graft(None));
        }
        if let Some(old) = old {
            // Off the tree as if it had sent a duplicate: lazy, and told if it was eager.
            self.place_sender_in_tree(now, old, &[false]);
        }
    }

    /// Sends a new message (received at `round`) to the plumtree peers but `except`:
    /// whole to eager ones, announced to lazy ones; and caches it. Returns how many
    /// peers it was queued for. A batch of one (see `take_framed`).
    pub(in crate::node) fn forward_plumtree(
        &mut self,
        now: Instant,
        except: Option<PeerId>,
        id: MessageId,
        message: &Bytes,
        round: u16,
    ) -> usize {
        if self.plumtree.is_none() {
            return 0;
        }
        let message = message.clone();
        self.take_framed(now, except, &[Received { id, round, message }], false, None)
    }

    /// The plumtree peers but `except` (in a buffer to hand back to
    /// `Plumtree::targets` when done, to reuse).
    pub(in crate::node) fn plumtree_targets(&mut self, except: Option<PeerId>) -> Vec<Target> {
        let mut targets = self
            .plumtree
            .as_mut()
            .map(|plumtree| std::mem::take(&mut plumtree.targets))
            .unwrap_or_default();
        targets.clear();
        targets.extend(
            self.peers
                .iter()
                .filter_map(|(id, state)| match state.wire {
                    Wire::Plumtree { eager, .. } if Some(id) != except => Some(Target {
                        peer: id,
                        eager,
                        slot: state.promise_slot,
                    }),
                    _ => None,
                }),
        );
        targets
    }

    /// Gathers `id` for lazy peer `peer`'s next IHave; a full batch goes at once.
    pub(in crate::node) fn announce(
        &mut self,
        now: Instant,
        peer: PeerId,
        id: ShortId,
        round: u16,
    ) {
        let (Some(state), Some(plumtree)) = (self.peers.get_mut(peer), self.plumtree.as_mut())
        else {
            return;
        };
        let before = state.gathered_charge();
        state.ihaves.push((id, round));
        self.gathered_bytes += state.gathered_charge() - before;
        let full = state.ihaves.len() >= wire::MAX_IHAVE;
        let interval = plumtree.config.ihave_interval;
        if plumtree.ihave_due.is_none() {
            plumtree.ihave_due = now.checked_add(interval).or(Some(now));
        }
        if full {
            self.send_ihaves(now, peer);
        }
    }

    /// Sends `peer` the announcements gathered for it.
    pub(in crate::node) fn send_ihaves(&mut self, now: Instant, peer: PeerId) {
        let Some(state) = self.peers.get_mut(peer) else {
            return;
        };
        self.gathered_bytes -= state.gathered_charge();
        let mut entries = std::mem::take(&mut state.ihaves);
        for chunk in entries.chunks(wire::MAX_IHAVE) {
            self.stats.ihave_ids_sent += chunk.len() as u64;
            self.queue_control(now, peer, wire::ihave(chunk));
        }
        // The buffer goes back for the next batch (at most `MAX_IHAVE` entries, 18 KiB:
        // a full batch goes at once), so it does not grow anew every interval.
        entries.clear();
        if let Some(state) = self.peers.get_mut(peer) {
            state.ihaves = entries;
        }
    }

    /// Queues a control frame (its whole wire bytes) for `peer`.
    pub(in crate::node) fn queue_control(&mut self, now: Instant, peer: PeerId, wire: Bytes) {
        self.stats.control_frames_out += 1;
        self.queue(now, peer, Frames::run(wire, 1));
    }

    /// Queues one frame for `peer` if it has room (always with reading pauses; with
    /// shedding, within its queue and the total); returns whether it was queued.
    pub(in crate::node) fn queue(&mut self, now: Instant, peer: PeerId, frames: Frames) -> bool {
        let wire_len = frames.wire_len();
        let (peers, mut queues) = self.queues();
        let Some(state) = peers.get_mut(peer) else {
            return false;
        };
        queues.admit(now, (peer, state), (&[wire_len], None), None, |_, _| {
            frames.clone()
        })
    }
}
