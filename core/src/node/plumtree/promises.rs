//! The node's side of plumtree's [promises](crate::plumtree::Promises): what it
//! announced to a lazy peer is kept until that peer has it, and sent to it whole when
//! the cache lets it go first; what does not fit the peer's queue then is owed, and
//! sent as the queue drains.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use crate::node::Node;
use crate::plumtree::wire::ShortId;
use crate::plumtree::{LetGo, CACHED_MESSAGE_OVERHEAD};
use crate::PeerId;

impl Node {
    /// `peer` has message `id` (it showed it, or was sent it): this node no longer owes
    /// it the message.
    pub(in crate::node) fn release(&mut self, peer: PeerId, id: &ShortId) {
        let slot = self.peers.get(peer).and_then(|state| state.promise_slot);
        if let (Some(slot), Some(plumtree)) = (slot, self.plumtree.as_mut()) {
            plumtree.cache.release(id, slot);
        }
    }

    /// Sends each promised message the cache let go to the peers it was promised to,
    /// whole (see [`Promises`](crate::plumtree::Promises)); to a peer whose queue has
    /// no room it is owed (`Peer::owed`), and the queue is marked full, so the node
    /// takes nothing new until it drains. The cache lets go of messages only as the
    /// node takes new ones (which, but for stall escapes, it does not while such a
    /// peer is full) or as they expire; escapes stop while what is owed fills the
    /// cache's and the total's budgets together (`escape_deadline`).
    pub(in crate::node) fn keep_promises(&mut self, now: Instant) {
        let Some(plumtree) = self.plumtree.as_mut() else {
            return;
        };
        let let_go = plumtree.cache.take_let_go();
        if let_go.is_empty() {
            return;
        }
        for LetGo {
            message,
            round,
            promised,
        } in let_go
        {
            for slot in promised.slots() {
                let holder = self
                    .plumtree
                    .as_ref()
                    .and_then(|p| p.slots.get(usize::from(slot)));
                let Some(&Some(peer)) = holder else {
                    continue;
                };
                let Some(state) = self.peers.get_mut(peer) else {
                    continue;
                };
                if state.owed.is_empty() && self.push(now, peer, message.clone(), round) {
                    continue;
                }
                if let Some(state) = self.peers.get_mut(peer) {
                    state.owed.push_back((message.clone(), round));
                    self.owed_bytes += owed_charge_of(&message);
                }
            }
        }
    }

    /// Sends what waits for room in `peer`'s queue, oldest first, for as long as its
    /// queue is not full and they fit: messages owed to it (promised, and let go by
    /// the cache; or missed while its protocol was settled), then the grafts it sent
    /// while its queue was full. Called when its queue has drained, or something else
    /// has.
    pub(in crate::node) fn send_waiting(&mut self, now: Instant, peer: PeerId) {
        loop {
            let Some(state) = self.peers.get_mut(peer) else {
                return;
            };
            if state.is_full() {
                return;
            }
            let Some((message, round)) = state.owed.front().cloned() else {
                break;
            };
            if !self.push(now, peer, message.clone(), round) {
                return;
            }
            if let Some(state) = self.peers.get_mut(peer) {
                state.owed.pop_front();
                self.owed_bytes -= owed_charge_of(&message);
            }
        }
        self.answer_deferred_grafts(now, peer);
    }

    /// Sends `peer` `message` whole (see [`send_whole`](Self::send_whole)): a promise
    /// kept to a plumtree peer, a message a plain peer missed while its protocol was
    /// settled (see [`peer_connected_since`](Self::peer_connected_since)). Returns
    /// whether it was sent.
    fn push(&mut self, now: Instant, peer: PeerId, message: Bytes, round: u16) -> bool {
        let plumtree = self
            .peers
            .get(peer)
            .is_some_and(|state| state.is_plumtree());
        let sent = u64::from(self.send_whole(now, peer, message, round));
        match plumtree {
            true => self.stats.promises_kept += sent,
            false => self.stats.messages_caught_up += sent,
        }
        sent == 1
    }
}

/// What a message owed to a peer is charged: as if it were still cached.
pub(in crate::node) fn owed_charge_of(message: &Bytes) -> usize {
    message.len() + CACHED_MESSAGE_OVERHEAD
}

/// What messages owed to a peer are charged in all.
pub(in crate::node) fn owed_charge(owed: &VecDeque<(Bytes, u16)>) -> usize {
    owed.iter()
        .map(|(message, _)| owed_charge_of(message))
        .sum()
}
