//! Plumtree Gossip frames taken a batch at a time. Consecutive Gossip frames from one
//! peer are checked against the seen set together (their cache misses overlap, as for
//! plain frames), and their new messages are framed for the next hop (round + 1) into
//! one buffer, which is at once the cached copy of each message, the deliveries, and the
//! run of frames every eager peer is sent: one copy, one allocation and one `Send` per
//! peer for the whole batch, where one message at a time took one of each per message.

use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};

use super::peer::Wire;
use super::{Node, BATCH};
use crate::frame::HEADER_LEN;
use crate::plumtree::wire::{self, short_id, GOSSIP_OVERHEAD};
use crate::{Delivery, Frames, MessageId, PeerId};

/// A Gossip frame received and not handled yet.
#[derive(Debug)]
pub(super) struct Received {
    pub(super) id: MessageId,
    pub(super) round: u16,
    pub(super) message: Bytes,
}

/// Wire bytes a Gossip frame adds to its message.
const GOSSIP_HEAD: usize = HEADER_LEN + GOSSIP_OVERHEAD;

impl Node {
    /// Handles `batch` (at most [`BATCH`] Gossip frames from `peer`, in order, received
    /// while the node could take new messages from it) and empties it. Outcomes are
    /// those of one frame at a time: each new message is delivered, cached and sent on
    /// (whole to eager peers, announced to lazy ones, plain peers get a plain frame);
    /// the sender becomes eager on a new message, and lazy, told by a Prune, on a
    /// duplicate while eager.
    pub(super) fn take_gossip(&mut self, now: Instant, peer: PeerId, batch: &mut Vec<Received>) {
        let count = batch.len();
        if count == 0 {
            return;
        }
        debug_assert!(count <= BATCH);
        let mut new = [false; BATCH];
        let ids = batch.iter().map(|received| &received.id);
        self.seen.insert_many(ids, now, &mut new[..count]);
        let fresh = new[..count].iter().filter(|&&is_new| is_new).count();
        let Some(state) = self.peers.get_mut(peer) else {
            batch.clear();
            return;
        };
        self.stats.frames_in += count as u64;
        self.stats.duplicates += (count - fresh) as u64;
        state.counters.frames_in += count as u64;
        state
            .counters
            .record(now, fresh as u64, (count - fresh) as u64);
        self.place_sender_in_tree(now, peer, &new[..count]);
        if fresh > 0 {
            let (wire, frames) = frame_for_next_hop(batch, &new[..count]);
            self.take_framed(now, peer, &wire, &frames, true);
        }
        batch.clear();
    }

    /// Sends the new messages of `batch`, which plain peer `from` sent and the caller
    /// delivered and sends on to plain peers, to the plumtree peers (and caches them),
    /// and empties it.
    pub(super) fn send_on_to_plumtree(
        &mut self,
        now: Instant,
        from: PeerId,
        batch: &mut Vec<Received>,
    ) {
        if !batch.is_empty() {
            let new = [true; BATCH];
            let (wire, frames) = frame_for_next_hop(batch, &new[..batch.len()]);
            self.take_framed(now, from, &wire, &frames, false);
            batch.clear();
        }
    }

    /// Moves plumtree peer `peer` through the tree as its Gossip frames `new` (whether
    /// each was new, in order) do: a new message puts it on the tree's path (eager), a
    /// duplicate while eager takes it off (lazy), and it is told so with a Prune.
    pub(super) fn place_sender_in_tree(&mut self, now: Instant, peer: PeerId, new: &[bool]) {
        let Some(Wire::Plumtree { eager, .. }) = self.peers.get_mut(peer).map(|s| &mut s.wire)
        else {
            return;
        };
        let mut prunes = 0;
        for &is_new in new {
            if !is_new && *eager {
                prunes += 1;
            }
            *eager = is_new;
        }
        for _ in 0..prunes {
            self.stats.prunes_sent += 1;
            self.queue_control(now, peer, wire::prune());
        }
    }

    /// Caches and sends on to the plumtree peers the new messages framed in `wire` (from
    /// `from`); with `from_plumtree`, also delivers them and sends them to the plain
    /// peers (for a plain sender's messages the plain path does).
    fn take_framed(
        &mut self,
        now: Instant,
        from: PeerId,
        wire: &Bytes,
        frames: &[(MessageId, u16, usize)],
        from_plumtree: bool,
    ) {
        let plain_peers =
            from_plumtree && self.peers.len() > self.plumtree.as_ref().map_or(0, |p| p.peers);
        let mut at = 0;
        let mut cached = Vec::with_capacity(frames.len());
        for &(id, round, frame_len) in frames {
            let message = wire.slice(at + GOSSIP_HEAD..at + frame_len);
            at += frame_len;
            if from_plumtree {
                self.deliver(Delivery {
                    id,
                    payload: message.clone(),
                    from,
                });
            }
            if let Some(plumtree) = self.plumtree.as_mut() {
                if plumtree.missing.received(&short_id(&id)) {
                    self.stats.repairs += 1;
                }
            }
            // A slice of `wire`, which holds only messages cached now: it keeps nothing
            // else alive.
            cached.push((id, message, round));
        }
        if plain_peers {
            // Plain peers get the messages as plain frames: a second copy, framed for
            // them, sent as one run.
            let (plain, plain_lens) = plain_run(&cached);
            self.forward(now, Some(from), &plain_lens, |bytes, count| {
                Frames::run(plain.slice(bytes), count)
            });
        }
        if let Some(plumtree) = self.plumtree.as_mut() {
            plumtree.cache.insert_many(now, &cached, Some(from));
        }
        let frame_lens: Vec<usize> = frames.iter().map(|&(_, _, len)| len).collect();
        let targets = self.plumtree_targets(Some(from));
        for &(peer, eager) in &targets {
            if eager {
                let (peers, mut queues) = self.queues();
                if let Some(state) = peers.get_mut(peer) {
                    queues.admit(now, (peer, state), &frame_lens, |bytes, count| {
                        Frames::run_skipping(wire.slice(bytes), count, GOSSIP_OVERHEAD as u8)
                    });
                }
            } else {
                for &(id, round, _) in frames {
                    self.announce(now, peer, short_id(&id), round.saturating_add(1));
                }
            }
        }
        if let Some(plumtree) = self.plumtree.as_mut() {
            plumtree.targets = targets;
        }
    }
}

/// Frames the messages of `batch` that are `new` for the next hop, back to back in one
/// buffer of their own. Returns it, with each frame's message id, received round and
/// wire length.
fn frame_for_next_hop(batch: &[Received], new: &[bool]) -> (Bytes, Vec<(MessageId, u16, usize)>) {
    let new_messages = || batch.iter().zip(new).filter(|(_, &is_new)| is_new);
    let size = new_messages()
        .map(|(received, _)| GOSSIP_HEAD + received.message.len())
        .sum();
    let mut buffer = BytesMut::with_capacity(size);
    let mut frames = Vec::with_capacity(batch.len());
    for (Received { id, round, message }, _) in new_messages() {
        // Every message was checked against `max_frame_len`, which `Config::validate`
        // keeps within what a frame can carry.
        let Some(head) = wire::gossip_head(message.len(), round.saturating_add(1)) else {
            continue;
        };
        buffer.put_slice(&head);
        buffer.put_slice(message);
        frames.push((*id, *round, GOSSIP_HEAD + message.len()));
    }
    (buffer.freeze(), frames)
}

/// `messages` as plain frames, back to back in one buffer, with each frame's wire length.
fn plain_run(messages: &[(MessageId, Bytes, u16)]) -> (Bytes, Vec<usize>) {
    let size = messages.iter().map(|(_, m, _)| HEADER_LEN + m.len()).sum();
    let mut buffer = BytesMut::with_capacity(size);
    let mut frame_lens = Vec::with_capacity(messages.len());
    for (_, message, _) in messages {
        // Every message was checked against `max_frame_len`, which fits a u32.
        let Ok(len) = u32::try_from(message.len()) else {
            continue;
        };
        buffer.put_u32(len);
        buffer.put_slice(message);
        frame_lens.push(HEADER_LEN + message.len());
    }
    (buffer.freeze(), frame_lens)
}
