//! The node's side of [`plumtree`](crate::plumtree): plumtree peers' frames in, their
//! Gossip, IHave, Graft and Prune frames out, and the protocol's timers.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::gossip_batch::Received;
use super::peer::{Peer, Shortcut, Wire};
use super::read_buffer::Read;
use super::{Node, BATCH};
use crate::plumtree::wire::{self, Frame, ShortId, WireError};
use crate::plumtree::{
    Lateness, MessageCache, Missing, NodeId, PlumtreeConfig, MAX_DEFERRED_GRAFTS, PROMISE_SLOTS,
    SHORTCUT_ROUNDS,
};
use crate::seen::Keying;
use crate::{Action, Direction, DisconnectReason, Frames, MessageId, PeerId};

/// What a node that speaks plumtree keeps.
#[derive(Debug)]
pub(super) struct Plumtree {
    pub(super) config: PlumtreeConfig,
    pub(super) cache: MessageCache,
    pub(super) missing: Missing,
    /// How late announced messages come: stretches the graft timers.
    pub(super) lateness: Lateness,
    /// When the announcements gathered for lazy peers go out.
    ihave_due: Option<Instant>,
    /// Plumtree peers connected.
    pub(super) peers: usize,
    /// Scratch for `plumtree_targets`: the plumtree peers to send to.
    pub(super) targets: Vec<Target>,
    /// The peer holding each promise slot (grown as needed, up to `PROMISE_SLOTS`).
    pub(super) slots: Vec<Option<PeerId>>,
    /// Scratch for `decode_plumtree`: Gossip frames gathered for `take_gossip`.
    batch: Vec<Received>,
}

impl Plumtree {
    pub(super) fn new(config: PlumtreeConfig) -> Self {
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
    pub(super) fn graft_timers(&mut self, now: Instant) -> (Duration, Duration) {
        self.lateness.decay(now, self.config.graft_timeout_max);
        self.current_graft_timers()
    }

    /// The graft timeout and retry as of the last [`graft_timers`](Self::graft_timers).
    pub(super) fn current_graft_timers(&self) -> (Duration, Duration) {
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
    pub(super) fn free_slot(&mut self, slot: u8) {
        if let Some(holder) = self.slots.get_mut(usize::from(slot)) {
            *holder = None;
        }
    }

    /// The scratch buffer for gathering Gossip frames (to hand back with `put_batch`).
    pub(super) fn take_batch(&mut self) -> Vec<Received> {
        std::mem::take(&mut self.batch)
    }

    pub(super) fn put_batch(&mut self, batch: Vec<Received>) {
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

    /// Handles the complete frames buffered for plumtree peer `peer`, in order:
    /// consecutive Gossip frames a batch at a time (`take_gossip`), control frames one
    /// by one. Flow control as for plain peers: while the node cannot take new messages
    /// from the peer, its duplicates and control frames are still handled and the first
    /// new message is held. Called from `decode_frames`, which has brought the node's
    /// fullness up to date.
    pub(super) fn decode_plumtree(&mut self, now: Instant, peer: PeerId, read: &Read) {
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
    fn decode_plumtree_frames(
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
    fn on_gossip(
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
    /// took, within `shortcut_window` of it (see [`PlumtreeConfig::shortcut_window`]):
    /// the sender becomes the node's way to the tree and is sent an empty Graft, as it
    /// prunes this node on the copy this node sent it (that Prune, already on its way,
    /// is ignored), and the peer the first copy came from goes lazy, told by a Prune.
    /// Without room for the Graft it is no shortcut.
    pub(super) fn on_duplicate(
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
    fn on_control(&mut self, now: Instant, peer: PeerId, frame: Frame) {
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

    /// Sends `peer` the cached message of short id `id`, if it is still cached, one hop
    /// further than this node got it. Returns `false`, sending nothing, if it does not
    /// fit the queues (the one it does not fit is marked full).
    fn send_grafted(&mut self, now: Instant, peer: PeerId, id: &ShortId) -> bool {
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
    pub(super) fn send_whole(
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
    pub(super) fn answer_deferred_grafts(&mut self, now: Instant, peer: PeerId) {
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
    fn swap_eager(&mut self, now: Instant, better: PeerId, old: Option<PeerId>) {
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
    pub(super) fn forward_plumtree(
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
    pub(super) fn plumtree_targets(&mut self, except: Option<PeerId>) -> Vec<Target> {
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
    pub(super) fn announce(&mut self, now: Instant, peer: PeerId, id: ShortId, round: u16) {
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
    fn send_ihaves(&mut self, now: Instant, peer: PeerId) {
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

    /// Bytes the message cache holds, with the messages it let go that are owed to
    /// peers (0 without plumtree).
    pub(super) fn plumtree_cache_bytes(&self) -> usize {
        let cache = self.plumtree.as_ref().map_or(0, |p| p.cache.bytes());
        cache + self.owed_bytes
    }

    /// When the plumtree timers next have work.
    pub(super) fn plumtree_deadline(&self) -> Option<Instant> {
        let plumtree = self.plumtree.as_ref()?;
        [
            plumtree.ihave_due,
            plumtree.missing.next_deadline(),
            plumtree.cache.next_promise_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs the plumtree timers due by `now`: sends gathered announcements, grafts what
    /// has not arrived, and forgets expired cached messages.
    pub(super) fn plumtree_timeout(&mut self, now: Instant) {
        let Some(plumtree) = self.plumtree.as_mut() else {
            return;
        };
        plumtree.cache.expire(now);
        self.keep_promises(now);
        let Some(plumtree) = self.plumtree.as_mut() else {
            return;
        };
        let (patience, retry) = plumtree.graft_timers(now);
        let grafts = plumtree.missing.due(now, retry, patience);
        let ihaves_due = plumtree.ihave_due.is_some_and(|at| at <= now);
        if ihaves_due {
            plumtree.ihave_due = None;
            let waiting: Vec<PeerId> = self
                .peers
                .iter()
                .filter(|(_, state)| !state.ihaves.is_empty())
                .map(|(id, _)| id)
                .collect();
            for peer in waiting {
                self.send_ihaves(now, peer);
            }
        }
        for graft in grafts {
            if self.has_seen_id(&from_short(graft.id)) == Some(true) {
                continue;
            }
            let wanted = wire::graft(Some((graft.id, graft.round)));
            if let Err(binding) = self.control_fits(graft.peer, wanted.len()) {
                // Asked again later: the message may be nowhere else. The queue is
                // full, as for a message: so a peer that announces without reading
                // is judged by the slow-peer rule, not waited for with its ids held.
                self.mark_full(now, binding);
                if let Some(plumtree) = self.plumtree.as_mut() {
                    plumtree.missing.postpone(graft);
                }
                continue;
            }
            let Some(state) = self.peers.get_mut(graft.peer) else {
                continue;
            };
            set_eager(state, true);
            self.stats.grafts_sent += 1;
            self.queue_control(now, graft.peer, wanted);
        }
    }

    /// Queues a control frame (its whole wire bytes) for `peer`.
    pub(super) fn queue_control(&mut self, now: Instant, peer: PeerId, wire: Bytes) {
        self.stats.control_frames_out += 1;
        self.queue(now, peer, Frames::run(wire, 1));
    }

    /// Queues one frame for `peer` if it has room (always with reading pauses; with
    /// shedding, within its queue and the total); returns whether it was queued.
    pub(super) fn queue(&mut self, now: Instant, peer: PeerId, frames: Frames) -> bool {
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

/// The most cached ids announced to a plumtree peer that connects, with queues of
/// `peer_queue_bytes`: what half the empty queue holds (18 bytes an IHave entry, plus
/// its share of the frame), so the announcement stays within the budget and leaves
/// room for the messages that follow. The newest go: they are the likeliest missed.
/// With the default 4 MiB, 110,376 ids: all of a full default cache of messages of
/// 1 KiB or more.
pub(super) fn repair_ids(peer_queue_bytes: usize) -> usize {
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
pub(super) struct Target {
    pub(super) peer: PeerId,
    /// Whether it gets messages whole (else announced).
    pub(super) eager: bool,
    /// Its promise slot.
    pub(super) slot: Option<u8>,
}

/// Makes a plumtree peer eager or lazy (plain peers are always sent everything); one
/// without a promise slot stays eager: nothing may be announced to it.
pub(super) fn set_eager(state: &mut Peer, to: bool) {
    let keeps_promises = state.promise_slot.is_some();
    if let Wire::Plumtree { eager, .. } = &mut state.wire {
        *eager = to || !keeps_promises;
    }
}
