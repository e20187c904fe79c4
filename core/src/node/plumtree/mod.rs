//! The node's side of [`plumtree`](crate::plumtree): its state and plumtree peers
//! connecting, here; their frames in (`receive`), Gossip, IHave, Graft and Prune frames
//! out (`send`), the protocol's timers (`timers`), new messages taken a batch at a time
//! (`gossip_batch`), the messages announced to lazy peers and owed to them
//! (`promises`), and what a plain peer settled late is sent (`catch_up`).

mod catch_up;
mod gossip_batch;
mod promises;
mod receive;
mod send;
mod timers;

use std::time::{Duration, Instant};

use crate::node::peer::{Peer, Shortcut, Wire};
use crate::node::Node;
use crate::plumtree::wire::{self, ShortId};
use crate::plumtree::{Lateness, MessageCache, Missing, NodeId, PlumtreeConfig, PROMISE_SLOTS};
use crate::{Action, Direction, DisconnectReason, MessageId, PeerId};
pub(in crate::node) use gossip_batch::Received;
pub(in crate::node) use promises::owed_charge;

/// What a node that speaks plumtree keeps.
#[derive(Debug)]
pub(in crate::node) struct Plumtree {
    pub(in crate::node) config: PlumtreeConfig,
    pub(in crate::node) cache: MessageCache,
    pub(in crate::node) missing: Missing,
    /// How late announced messages come: stretches the graft timers.
    pub(in crate::node) lateness: Lateness,
    /// When the announcements gathered for lazy peers go out.
    ihave_due: Option<Instant>,
    /// Plumtree peers connected.
    pub(in crate::node) peers: usize,
    /// Scratch for `plumtree_targets`: the plumtree peers to send to.
    pub(in crate::node) targets: Vec<Target>,
    /// The peer holding each promise slot (grown as needed, up to `PROMISE_SLOTS`).
    pub(in crate::node) slots: Vec<Option<PeerId>>,
    /// Scratch for `decode_plumtree`: Gossip frames gathered for `take_gossip`.
    batch: Vec<Received>,
}

impl Plumtree {
    pub(in crate::node) fn new(config: PlumtreeConfig) -> Self {
        Plumtree {
            cache: MessageCache::new(config.cache_bytes, config.cache_retention),
            missing: Missing::new(config.max_missing, config.cache_retention),
            lateness: Lateness::default(),
            config,
            ihave_due: None,
            peers: 0,
            targets: Vec::new(),
            slots: Vec::new(),
            batch: Vec::new(),
        }
    }

    /// The graft timeout and retry at `now`: the configured ones, stretched alike to
    /// how late announced messages come (see [`Lateness`]; the stretch halves every
    /// `graft_timeout_max` without a late message).
    pub(in crate::node) fn graft_timers(&mut self, now: Instant) -> (Duration, Duration) {
        self.lateness.decay(now, self.config.graft_timeout_max);
        self.current_graft_timers()
    }

    /// The graft timeout and retry as of the last [`graft_timers`](Self::graft_timers).
    pub(in crate::node) fn current_graft_timers(&self) -> (Duration, Duration) {
        let config = &self.config;
        let timeout = self
            .lateness
            .timeout(config.graft_timeout, config.graft_timeout_max);
        let floor = config.graft_timeout.as_nanos();
        if floor == 0 {
            return (timeout, config.graft_retry);
        }
        let retry = config
            .graft_retry
            .as_nanos()
            .saturating_mul(timeout.as_nanos())
            / floor;
        let retry = Duration::from_nanos(u64::try_from(retry).unwrap_or(u64::MAX));
        (timeout, retry)
    }

    /// Gives `peer` a free promise slot, if one is left. A slot whose peer went while
    /// messages were promised to it is free again only once the cache has let all of
    /// them go (they are then sent to no one): so a peer's disconnection costs nothing,
    /// where clearing its promises would cost a pass over the whole cache, a price a
    /// peer that connects and goes again and again could make the node pay.
    fn take_slot(&mut self, peer: PeerId) -> Option<u8> {
        let cache = &self.cache;
        let free = self.slots.iter().enumerate().position(|(slot, holder)| {
            holder.is_none() && u8::try_from(slot).is_ok_and(|slot| cache.promised_to(slot) == 0)
        });
        let free = match free {
            Some(free) => free,
            None if self.slots.len() < PROMISE_SLOTS => {
                self.slots.push(None);
                self.slots.len() - 1
            }
            None => return None,
        };
        self.slots[free] = Some(peer);
        u8::try_from(free).ok()
    }

    /// The peer of `slot` is gone: what was promised to it is no longer owed (see
    /// `take_slot`).
    pub(in crate::node) fn free_slot(&mut self, slot: u8) {
        if let Some(holder) = self.slots.get_mut(usize::from(slot)) {
            *holder = None;
        }
    }

    /// The scratch buffer for gathering Gossip frames (to hand back with `put_batch`).
    pub(in crate::node) fn take_batch(&mut self) -> Vec<Received> {
        std::mem::take(&mut self.batch)
    }

    pub(in crate::node) fn put_batch(&mut self, batch: Vec<Received>) {
        self.batch = batch;
    }
}

impl Node {
    /// A new connection to `peer` that speaks plumtree (the caller exchanged
    /// [preambles](crate::plumtree::wire)); `node_id` is the one the peer's preamble
    /// gave. Slots, eviction and refusal are as for
    /// [`peer_connected`](Self::peer_connected); a node without
    /// [`Config::plumtree`](crate::Config::plumtree) takes it as a plain peer.
    ///
    /// One connection per node: a connection to this node itself, or a second one to a
    /// node already connected, is closed with [`DisconnectReason::SameNode`] (of two,
    /// the one dialled by the lower node id is kept, so both ends keep the same one).
    /// The new peer starts eager, and is sent an IHave for every message in the cache
    /// (the newest whose ids fit half its queue's budget): what it
    /// missed while it was away is grafted if it is still cached.
    pub fn plumtree_peer_connected(
        &mut self,
        now: Instant,
        peer: PeerId,
        direction: Direction,
        node_id: NodeId,
    ) {
        let Some(own) = self.plumtree.as_ref().map(|p| p.config.node_id) else {
            self.peer_connected(now, peer, direction);
            return;
        };
        if self.peers.contains(peer) {
            return;
        }
        let dialler = |direction| match direction {
            Direction::Outbound => own,
            Direction::Inbound => node_id,
        };
        let same_node = DisconnectReason::SameNode { node_id };
        let other = self.peers.iter().find_map(|(id, state)| match state.wire {
            Wire::Plumtree { node_id: n, .. } if n == node_id => Some((id, state.direction)),
            _ => None,
        });
        let keep_new = match other {
            _ if node_id == own => false,
            Some((_, other_direction)) => dialler(direction) < dialler(other_direction),
            None => true,
        };
        if !keep_new {
            self.stats.same_node_disconnects += 1;
            self.actions.push_back(Action::Disconnect {
                peer,
                reason: same_node,
            });
            return;
        }
        if let Some((other, _)) = other {
            self.stats.same_node_disconnects += 1;
            self.disconnect(now, other, same_node);
        }
        let wire = Wire::Plumtree {
            node_id,
            eager: true,
            shortcut: Shortcut::Never,
        };
        if !self.connect(now, peer, direction, wire) {
            return;
        }
        let Some(plumtree) = self.plumtree.as_mut() else {
            return;
        };
        plumtree.peers += 1;
        let slot = plumtree.take_slot(peer);
        let announced = repair_ids(self.config.peer_queue_bytes);
        let older = plumtree.cache.len().saturating_sub(announced);
        let cached: Vec<(ShortId, u16)> = plumtree.cache.ids().skip(older).collect();
        if let Some(state) = self.peers.get_mut(peer) {
            state.promise_slot = slot;
        }
        for chunk in cached.chunks(wire::MAX_IHAVE) {
            self.stats.ihave_ids_sent += chunk.len() as u64;
            self.queue_control(now, peer, wire::ihave(chunk));
        }
        self.settle(now);
    }

    /// Bytes the message cache holds, with the messages it let go that are owed to
    /// peers (0 without plumtree).
    pub(in crate::node) fn plumtree_cache_bytes(&self) -> usize {
        let cache = self.plumtree.as_ref().map_or(0, |p| p.cache.bytes());
        cache + self.owed_bytes
    }
}

/// The most cached ids announced to a plumtree peer that connects, with queues of
/// `peer_queue_bytes`: what half the empty queue holds (18 bytes an IHave entry, plus
/// its share of the frame), so the announcement stays within the budget and leaves
/// room for the messages that follow. The newest go: they are the likeliest missed.
/// With the default 4 MiB, 110,376 ids: all of a full default cache of messages of
/// 1 KiB or more.
pub(in crate::node) fn repair_ids(peer_queue_bytes: usize) -> usize {
    let per_id = wire::MAX_IHAVE_FRAME / wire::MAX_IHAVE + 1;
    peer_queue_bytes / 2 / per_id
}

/// An id with `short`'s first 16 bytes: enough for the seen set, which remembers no
/// more of an id.
fn from_short(short: ShortId) -> MessageId {
    let mut id = [0; 32];
    id[..short.len()].copy_from_slice(&short);
    MessageId(id)
}

/// A plumtree peer a new message may go to.
#[derive(Debug, Clone, Copy)]
pub(in crate::node) struct Target {
    pub(in crate::node) peer: PeerId,
    /// Whether it gets messages whole (else announced).
    pub(in crate::node) eager: bool,
    /// Its promise slot.
    pub(in crate::node) slot: Option<u8>,
}

/// Makes a plumtree peer eager or lazy (plain peers are always sent everything); one
/// without a promise slot stays eager: nothing may be announced to it.
pub(in crate::node) fn set_eager(state: &mut Peer, to: bool) {
    let keeps_promises = state.promise_slot.is_some();
    if let Wire::Plumtree { eager, .. } = &mut state.wire {
        *eager = to || !keeps_promises;
    }
}
