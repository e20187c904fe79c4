//! Plumtree Gossip frames taken a batch at a time. Consecutive Gossip frames from one
//! peer are checked against the seen set together (their cache misses overlap, as for
//! plain frames), and their new messages are copied, framed for the peers that get them
//! whole, into one buffer, which is at once the cached copy of each message, the
//! deliveries, and the run of frames each of those peers is sent: one copy, one
//! allocation and one `Send` per peer for the whole batch, where one message at a time
//! took one of each per message. Messages from plain peers go to plumtree peers the
//! same way. A node that sends a batch whole to no one (a leaf of the tree) copies
//! nothing: it caches and delivers the messages where they were read
//! ([`Framed::in_place`]).

use std::ops::Range;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};

use super::{set_eager, Target};
use crate::frame::HEADER_LEN;
use crate::node::peer::Wire;
use crate::node::read_buffer::Read;
use crate::node::{Node, BATCH};
use crate::plumtree::wire::{self, short_id, GOSSIP_OVERHEAD};
use crate::plumtree::{MessageCache, Promises};
use crate::seen::{Keying, SeenKey};
use crate::{Delivery, Frames, MessageId, PeerId};

/// A Gossip frame received and not handled yet.
#[derive(Debug)]
pub(in crate::node) struct Received {
    pub(in crate::node) id: MessageId,
    pub(in crate::node) round: u16,
    pub(in crate::node) message: Bytes,
}

impl Node {
    /// Handles `batch` (at most [`BATCH`] Gossip frames from `peer`, in order, received
    /// while the node could take new messages from it, most in `read`) and empties it.
    /// Outcomes are those of one frame at a time: each new message is delivered, cached
    /// and sent on (whole to eager peers, announced to lazy ones, plain peers get a
    /// plain frame); the sender becomes eager on a new message, and lazy, told by a
    /// Prune, on a duplicate while eager.
    pub(in crate::node) fn take_gossip(
        &mut self,
        now: Instant,
        peer: PeerId,
        batch: &mut Vec<Received>,
        read: &Read,
    ) {
        let count = batch.len();
        if count == 0 {
            return;
        }
        debug_assert!(count <= BATCH);
        let mut new = [false; BATCH];
        // A node that speaks plumtree keys its seen set by ids (`Keying::for_node`).
        debug_assert!(matches!(self.keying, Keying::Ids));
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
        let mut stays = new;
        if fresh < count {
            // A duplicate may be a shortcut, which keeps its sender on the tree.
            for (received, stays) in batch.iter().zip(&mut stays).filter(|(_, s)| !**s) {
                let id = short_id(&received.id);
                *stays = self.on_duplicate(now, peer, &id, received.round);
            }
        }
        self.place_sender_in_tree(now, peer, &stays[..count]);
        if fresh > 0 {
            let mut is_new = new.iter();
            batch.retain(|_| is_new.next().copied().unwrap_or(false));
            self.take_framed(now, Some(peer), batch, true, Some(read));
        }
        batch.clear();
    }

    /// Sends the new messages of `batch`, which plain peer `from` sent and the caller
    /// delivered and sends on to plain peers, to the plumtree peers (and caches them),
    /// and empties it.
    pub(in crate::node) fn send_on_to_plumtree(
        &mut self,
        now: Instant,
        from: PeerId,
        batch: &mut Vec<Received>,
    ) {
        if !batch.is_empty() {
            self.take_framed(now, Some(from), batch, false, None);
            batch.clear();
        }
    }

    /// Moves plumtree peer `peer` through the tree as its Gossip frames `new` (whether
    /// each was new, in order) do: a new message puts it on the tree's path (eager), a
    /// duplicate while eager takes it off (lazy), and it is told so with a Prune.
    pub(in crate::node) fn place_sender_in_tree(
        &mut self,
        now: Instant,
        peer: PeerId,
        new: &[bool],
    ) {
        let Some(state) = self.peers.get_mut(peer) else {
            return;
        };
        let mut prunes = 0;
        for &is_new in new {
            let Wire::Plumtree { eager, .. } = state.wire else {
                return;
            };
            // One that cannot be lazy here (no promise slot) is not told each time.
            if !is_new && eager && state.promise_slot.is_some() {
                prunes += 1;
            }
            set_eager(state, is_new);
        }
        // A Prune only saves bytes later: none is queued where there is no room.
        for _ in 0..prunes {
            let prune = wire::prune();
            if self.control_fits(peer, prune.len()).is_ok() {
                self.stats.prunes_sent += 1;
                self.queue_control(now, peer, prune);
            }
        }
    }

    /// Caches and sends on `messages` (new, in order, from `from`; `None`: published
    /// here) to the plumtree peers; with `from_plumtree`, also delivers them and sends
    /// them to the plain peers (for other messages the plain path does). Returns how
    /// many eager peers took them.
    ///
    /// The messages are copied once, framed for whoever gets them whole (the eager
    /// plumtree peers, or else the plain ones), and that copy is also what is cached and
    /// delivered. Only a node with both eager plumtree peers and plain peers frames them
    /// a second time, for the plain ones. A node that sends them whole to no one (a
    /// leaf of the tree: more than half the nodes) copies nothing when they lie in
    /// `read` and are nearly all of it (see [`DENSE_READ`]): it caches and delivers
    /// them in place, and the cache is charged for the whole read.
    pub(in crate::node) fn take_framed(
        &mut self,
        now: Instant,
        from: Option<PeerId>,
        messages: &[Received],
        from_plumtree: bool,
        read: Option<&Read>,
    ) -> usize {
        let targets = self.plumtree_targets(from);
        // A lazy round of a stall escape announces to the eager peers too (see
        // `flow::lazy_round`).
        let announce_only = self.flow.lazy_round;
        let whole = |target: &Target| target.eager && !announce_only;
        let eager = targets.iter().any(whole);
        // Announcing a message to a lazy peer promises it (see `Promises`).
        let lazy = targets
            .iter()
            .filter(|target| !whole(target))
            .filter_map(|target| target.slot)
            .fold(Promises::NONE, Promises::with);
        let plain_peers =
            from_plumtree && self.peers.len() > self.plumtree.as_ref().map_or(0, |p| p.peers);
        let framing = match (eager, plain_peers) {
            (false, true) => Framing::Plain,
            _ => Framing::Gossip,
        };
        let in_place = read.filter(|_| !eager && !plain_peers).and_then(|read| {
            let cache = &self.plumtree.as_ref()?.cache;
            Framed::in_place(messages, read, cache)
        });
        let framed = in_place.unwrap_or_else(|| Framed::new(messages, framing));
        // Where each message lies in the framed copy, which holds only messages cached
        // now: it keeps nothing else alive (or in the read, see `Framed::in_place`).
        let mut cached: Vec<(MessageId, Range<usize>, u16, Promises)> = framed
            .messages()
            .map(|(id, range, round)| (id, range, round, lazy))
            .collect();
        // How many of the messages each target announced, by its place in `targets`
        // (left empty while none did).
        let mut announced: Vec<usize> = Vec::new();
        for (at, (id, range, _, promised)) in cached.iter_mut().enumerate() {
            if let (true, Some(from)) = (from_plumtree, from) {
                let payload = framed.payload(at, range.clone());
                self.deliver(Delivery::with_known_id(Some(*id), payload, from));
            }
            if let Some(plumtree) = self.plumtree.as_mut() {
                // Peers that announced it have it: nothing is promised to them.
                let arrival = plumtree
                    .missing
                    .received_from(&short_id(id), from, |holder| {
                        let Some(at) = targets.iter().position(|target| target.peer == holder)
                        else {
                            return;
                        };
                        announced.resize(targets.len(), 0);
                        announced[at] += 1;
                        if let Some(slot) = targets[at].slot {
                            *promised = promised.without(slot);
                        }
                    });
                if let Some(announced) = arrival.announced_at {
                    let late = now.saturating_duration_since(announced);
                    plumtree.lateness.sample(now, late);
                }
                if arrival.grafted {
                    self.stats.repairs += 1;
                }
            }
        }
        if plain_peers {
            let plain = match framing {
                Framing::Plain => framed.clone(),
                Framing::Gossip => Framed::new(messages, Framing::Plain),
            };
            let keys: Vec<SeenKey> = plain.messages.iter().map(|(id, _)| id.into()).collect();
            self.forward(
                now,
                from,
                (&plain.frame_lens, Some(&keys)),
                |bytes, count| plain.frames(bytes, count),
            );
        }
        // An eager peer that announced every one of them has them: it is not sent them
        // again, only told this node has them too, as a lazy peer is (which lets it stop
        // keeping them for this node; see `Promises`). A node back from a restart, say,
        // is announced everything cached by each neighbour and grafts it from one: the
        // others are not sent it back.
        let has_all = |at: usize| announced.get(at) == Some(&cached.len());
        let gets_whole = |at: usize| whole(&targets[at]) && !has_all(at);
        let mut took = 0;
        // The eager peers get one framed copy.
        let shared = self.share_among(|_| (0..targets.len()).filter(|&at| gets_whole(at)).count());
        for (at, &Target { peer, .. }) in targets.iter().enumerate() {
            if gets_whole(at) {
                let (peers, mut queues) = self.queues();
                if let Some(state) = peers.get_mut(peer) {
                    let lens = (&framed.frame_lens[..], shared);
                    let sent = queues.admit(now, (peer, state), lens, None, |bytes, count| {
                        framed.frames(bytes, count)
                    });
                    took += usize::from(sent);
                }
            } else {
                for (id, _, round, _) in &cached {
                    self.announce(now, peer, short_id(id), round.saturating_add(1));
                }
            }
        }
        self.charge_shared(shared, took, &framed.frame_lens);
        if let Some(plumtree) = self.plumtree.as_mut() {
            plumtree.targets = targets;
            framed.cache_into(&mut plumtree.cache, now, cached, from);
            self.keep_promises(now);
        }
        took
    }
}

/// The share of a read (numerator, denominator) that a leaf's new frames must make up
/// for it to keep them in the read rather than copy them: the cache is charged for the
/// whole read, so what else the read holds (duplicates, control frames) takes room
/// from messages, and the cache is sized to outlast the queues under load (see
/// `PlumtreeConfig::cache_bytes`). At seven eighths that is at most a seventh of what
/// the kept messages are charged; a read of new messages only, as a leaf gets them
/// from its parent, passes whole.
const DENSE_READ: (usize, usize) = (7, 8);

/// How a batch's new messages are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Plumtree Gossip frames for the next hop (round + 1).
    Gossip,
    /// Plain frames.
    Plain,
}

impl Framing {
    /// Wire bytes a frame adds before its message.
    fn head_len(self) -> usize {
        match self {
            Framing::Gossip => HEADER_LEN + GOSSIP_OVERHEAD,
            Framing::Plain => HEADER_LEN,
        }
    }
}

/// New messages framed back to back in one buffer of their own, or left where they
/// were read ([`Framed::in_place`]).
#[derive(Debug, Clone)]
struct Framed {
    framing: Framing,
    /// The frames; or the read the messages lie in, which nothing is sent from.
    wire: Bytes,
    /// Whether `wire` is the read.
    in_place: bool,
    /// Each message's id and received round.
    messages: Vec<(MessageId, u16)>,
    /// Where each message lies.
    places: Vec<Place>,
    /// Each frame's wire length.
    frame_lens: Vec<usize>,
}

/// Where a message of a [`Framed`] lies.
#[derive(Debug, Clone)]
enum Place {
    /// In `wire`, from this offset.
    Wire(usize),
    /// In place, outside the read: assembled by the decoder across reads, in a buffer
    /// of its own.
    Own(Bytes),
}

impl Framed {
    /// Frames `messages`. Every message was checked against `max_frame_len`, which
    /// `Config::validate` keeps within what a frame can carry; one that would not fit is
    /// left out.
    fn new(messages: &[Received], framing: Framing) -> Self {
        let head_len = framing.head_len();
        let size = messages.iter().map(|r| head_len + r.message.len()).sum();
        let mut buffer = BytesMut::with_capacity(size);
        let mut framed = Framed {
            framing,
            wire: Bytes::new(),
            in_place: false,
            messages: Vec::with_capacity(messages.len()),
            places: Vec::with_capacity(messages.len()),
            frame_lens: Vec::with_capacity(messages.len()),
        };
        for Received { id, round, message } in messages {
            let head = match framing {
                Framing::Gossip => wire::gossip_head(message.len(), round.saturating_add(1)),
                Framing::Plain => u32::try_from(message.len()).ok().map(|len| {
                    let mut head = [0; HEADER_LEN + GOSSIP_OVERHEAD];
                    head[..HEADER_LEN].copy_from_slice(&len.to_be_bytes());
                    head
                }),
            };
            let Some(head) = head else {
                continue;
            };
            buffer.put_slice(&head[..head_len]);
            framed.places.push(Place::Wire(buffer.len()));
            buffer.put_slice(message);
            framed.messages.push((*id, *round));
            framed.frame_lens.push(head_len + message.len());
        }
        framed.wire = buffer.freeze();
        framed
    }

    /// `messages` where they lie in `read`, not copied, for a node that sends them whole
    /// to no one. The cache is charged for the read whole (see
    /// `MessageCache::insert_from_read`), so only if their frames are a [`DENSE_READ`]
    /// share of it, or the cache keeps the read already (for its batch before: these
    /// cost only their overhead), and it is at most a quarter of the cache's budget.
    /// A message the decoder assembled across reads (the first of a read, mostly) is in
    /// a buffer of its own and is kept as it is. Nothing can be sent from this.
    fn in_place(messages: &[Received], read: &Read, cache: &MessageCache) -> Option<Self> {
        let head_len = Framing::Gossip.head_len();
        // Decided before anything is gathered: a leaf that copies allocates nothing here.
        let kept: usize = messages
            .iter()
            .filter(|r| read.offset(&r.message).is_some())
            .map(|r| head_len + r.message.len())
            .sum();
        let (share, of) = DENSE_READ;
        let dense = kept > 0 && kept.saturating_mul(of) >= read.bytes().len().saturating_mul(share);
        let worth_it = dense || cache.keeps_read(read.bytes());
        if !worth_it || read.bytes().len() > cache.budget_bytes() / 4 {
            return None;
        }
        let places = messages.iter().map(|r| match read.offset(&r.message) {
            Some(start) => Place::Wire(start),
            None => Place::Own(r.message.clone()),
        });
        Some(Framed {
            framing: Framing::Gossip,
            wire: read.bytes().clone(),
            in_place: true,
            messages: messages.iter().map(|r| (r.id, r.round)).collect(),
            places: places.collect(),
            frame_lens: messages
                .iter()
                .map(|r| head_len + r.message.len())
                .collect(),
        })
    }

    /// Each message (id, where it lies in the buffer, received round), in order; one
    /// outside it, where it lies in its payload.
    fn messages(&self) -> impl Iterator<Item = (MessageId, Range<usize>, u16)> + '_ {
        let head_len = self.framing.head_len();
        let lens = self.frame_lens.iter().map(move |len| len - head_len);
        self.messages
            .iter()
            .zip(&self.places)
            .zip(lens)
            .map(|((&(id, round), place), len)| {
                let start = match place {
                    Place::Wire(start) => *start,
                    Place::Own(_) => 0,
                };
                (id, start..start + len, round)
            })
    }

    /// Message `at`, lying at `range` (as [`messages`](Self::messages) gives it).
    fn payload(&self, at: usize, range: Range<usize>) -> Bytes {
        match &self.places[at] {
            Place::Wire(_) => self.wire.slice(range),
            Place::Own(message) => message.slice(range),
        }
    }

    /// Keeps `cached` (the messages as [`messages`](Self::messages) gives them, with
    /// their promises) in `cache`, in order: a framed copy as the one buffer it is;
    /// in place, those in the read as slices of it, any other in its own buffer.
    fn cache_into(
        &self,
        cache: &mut MessageCache,
        now: Instant,
        cached: Vec<(MessageId, Range<usize>, u16, Promises)>,
        from: Option<PeerId>,
    ) {
        if !self.in_place {
            cache.insert_many(now, &self.wire, cached, from);
            return;
        }
        let mut in_read = Vec::with_capacity(cached.len());
        for (place, cached) in self.places.iter().zip(cached) {
            let Place::Own(message) = place else {
                in_read.push(cached);
                continue;
            };
            cache.insert_from_read(now, &self.wire, in_read.drain(..), from);
            cache.insert_many(now, message, [cached], from);
        }
        cache.insert_from_read(now, &self.wire, in_read, from);
    }

    /// The `count` frames at `bytes` (offsets into the buffer), for a `Send`.
    fn frames(&self, bytes: Range<usize>, count: usize) -> Frames {
        let wire = self.wire.slice(bytes);
        match self.framing {
            Framing::Gossip => Frames::run_skipping(wire, count, GOSSIP_OVERHEAD as u8),
            Framing::Plain => Frames::run(wire, count),
        }
    }
}
