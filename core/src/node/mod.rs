//! The gossip state machine: [`Node`].

mod admission;
mod backlog;
mod catch_up;
pub mod eviction;
mod flow;
mod gossip_batch;
mod headroom;
mod pacer;
mod peer;
mod plumtree;
mod promises;
mod read_buffer;
mod run;
mod shared_runs;

use std::collections::VecDeque;
use std::ops::Range;
use std::time::{Duration, Instant};

use bytes::Bytes;
use thiserror::Error;

use crate::seen::{Identified, Keying, SeenKey};
use crate::{
    Action, Config, ConfigError, Delivery, Direction, DisconnectReason, Frames, MessageId,
    Overload, PeerId, PeerStats, SeenSet, Stats, QUEUED_FRAME_OVERHEAD,
};
use admission::Room;
use flow::{Application, Flow};
use gossip_batch::Received;
use peer::{CopyProgress, Peer, PeerTable, RunId, Wire};
use promises::owed_charge;
use read_buffer::Read;
use run::Run;
use shared_runs::SharedRuns;

/// One gossip node: events in, [`Action`]s out.
///
/// Every method takes the current time from the caller (`now`, from any monotonic clock;
/// the simulator passes virtual time). After each call, drain the actions with
/// [`poll_action`](Self::poll_action) or [`drain_actions`](Self::drain_actions) and
/// carry them out, and arrange to call [`handle_timeout`](Self::handle_timeout) at
/// [`poll_timeout`](Self::poll_timeout). No method panics on any input.
///
/// Flooding rule: a message not seen before is delivered once and forwarded to every
/// connected peer except the one it came from; a message already seen is dropped and
/// counted as a duplicate. The new messages of one read that lie back to back in it are
/// forwarded to each peer as one [`Frames`] run: one `Send` per peer and read, not per
/// message.
///
/// See the [crate documentation](crate) for a complete example.
///
/// # Call contract
///
/// What a driver (an async runtime adapter, a simulator, a test) must do, and may rely
/// on. `gossip-net` is one driver written to it.
///
/// - **Peers.** The caller names each connection with a [`PeerId`] of its choosing,
///   unique among the connections open now; an id may be reused after
///   [`peer_disconnected`](Self::peer_disconnected) and then names a fresh peer.
///   Calls naming an unknown id are ignored; [`peer_connected`](Self::peer_connected)
///   (or [`plumtree_peer_connected`](Self::plumtree_peer_connected), or
///   [`peer_connected_since`](Self::peer_connected_since) for a plain peer whose
///   protocol the caller took a while to settle) with an id already connected is
///   ignored. After an [`Action::Disconnect`] the node has already forgotten the peer:
///   close the connection, drop anything still queued for it, and do not report it (a
///   late `peer_disconnected` is harmless).
/// - **Inputs and draining.** Any number of inputs may come before the actions are
///   drained: actions queue up, oldest first, and their order is kept. Within it, a
///   message's [`Action::Deliver`] comes before any `Send` carrying it; the `Send`s to
///   one peer are in the order their bytes must go on the wire; no `Send` for a peer
///   follows its `Disconnect`. [`poll_action`](Self::poll_action) and
///   [`drain_actions`](Self::drain_actions) take from the same queue: drain when you
///   carry everything out at once (the queue keeps its allocation), poll when you must
///   stop between actions (to await a full channel, say). Draining promptly keeps the
///   queue short; the node never drops an action.
/// - **Writing.** Write each `Send`'s [`Frames::parts`] to the peer's socket in order
///   and report the bytes written with [`handle_flushed`](Self::handle_flushed), in any
///   increments, as they go out: the node releases queue budget and judges slow peers
///   from these reports. Reporting more than was queued is clamped. A report can bring
///   `Send`s: what the node kept back of the peer's queue while
///   [`Config::send_ahead_bytes`] of it were unwritten (so drain the actions after it
///   too).
/// - **Delivering.** Report what the application took of the
///   [`Action::Deliver`]s with [`handle_delivered`](Self::handle_delivered) (how many,
///   and their payload bytes), at once if it takes them as they come. Deliveries not
///   reported count against [`Config::delivery_queue_bytes`]: a caller that never
///   reports has its node hold every new message once 16 MiB are out, until the
///   slow-peer rule gives up on the application and relays without delivering.
/// - **Time.** Every call takes `now` from the caller (any monotonic clock; the node
///   reads none). After any call that takes `now`, [`poll_timeout`](Self::poll_timeout)
///   may have moved (a peer became overloaded, drained, or went away): read it again
///   once the actions are carried out, and call [`handle_timeout`](Self::handle_timeout)
///   when it is reached. Calling `handle_timeout` early, late or repeatedly is safe: it
///   does only what is due by its `now`. Time that goes backwards is tolerated: nothing
///   panics, and deadlines are computed from the times given, so a timer fires as much
///   earlier or later as the clock stepped. Deadlines too far ahead to represent are
///   treated as never.
/// - **No panics, bounded memory.** No input makes a method panic, and every structure
///   the node keeps is bounded by its [`Config`] (see the README's guarantees).
#[derive(Debug)]
pub struct Node {
    config: Config,
    peers: PeerTable,
    seen: SeenSet,
    /// What the seen set is keyed by: ids if the node speaks plumtree, payload
    /// fingerprints otherwise.
    keying: Keying,
    actions: VecDeque<Action>,
    stats: Stats,
    /// What is queued for all peers together, as the total budget counts it: each
    /// shared run's bytes once (see `shared_runs`).
    queued_bytes: usize,
    shared_runs: SharedRuns,
    /// What the announcements gathered for lazy plumtree peers, and not queued yet,
    /// will be charged (the sum of their `Peer::gathered_charge`).
    gathered_bytes: usize,
    /// What the messages owed to plumtree peers (`Peer::owed`) are charged (see
    /// `owed_charge`): reported with the cache, whose bytes they were, and bounded by
    /// its budget and the total's together (`escape_deadline`).
    owed_bytes: usize,
    flow: Flow,
    application: Application,
    /// Frames being handled, with their seen-set keys; kept to reuse its allocation.
    batch: Vec<(Identified, Bytes)>,
    /// New frames of the read being handled, not forwarded yet; kept to reuse its
    /// allocation.
    run: Run,
    /// Bytes held by partial frames across all peers.
    partial_bytes: usize,
    /// The peer whose held message was taken last when queues drained: the next round
    /// starts after it, so that no peer is always served first.
    resume_cursor: Option<PeerId>,
    /// The plumtree state, if the node speaks it.
    plumtree: Option<plumtree::Plumtree>,
}

/// Frames handled per pass of [`Node::decode_frames`]: enough for the seen-set checks of
/// a pass to overlap, few enough that the scratch buffer stays small (4 KiB).
const BATCH: usize = 64;

/// What [`Node::publish`] did with a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    /// New message: marked seen and queued for `peers` peers (those with room in their
    /// queue; the others count as shed).
    Sent {
        /// The message id.
        id: MessageId,
        /// Peers it was queued for.
        peers: usize,
    },
    /// The same payload (so the same id) is still remembered: nothing was sent. Identical
    /// bytes are one message, so publishing them again is a no-op within the retention
    /// window.
    AlreadySeen {
        /// The message id.
        id: MessageId,
    },
}

impl PublishOutcome {
    /// The message id, whatever the outcome.
    pub fn id(&self) -> MessageId {
        match *self {
            PublishOutcome::Sent { id, .. } | PublishOutcome::AlreadySeen { id } => id,
        }
    }
}

/// Why [`Node::publish`] refused a payload. A refused payload is not marked seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PublishError {
    /// The payload is longer than [`Config::max_frame_len`].
    #[error("payload of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// The payload length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The message does not fit the queues ([`Overload::PauseReading`]): the node is
    /// full, or would be past a budget with it. It takes no new message until its
    /// queues drain. Publish again once [`Node::can_publish`] says so (it says `false`
    /// from now until then); an adapter holds the payload and does that for you.
    #[error("the node's queues are full; publish again once they drain")]
    Congested,
}

impl Node {
    /// A node with no peers. Fails if the configuration is inconsistent.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        config.validate()?;
        let plumtree = config.plumtree.clone().map(plumtree::Plumtree::new);
        Ok(Node {
            seen: SeenSet::new(config.seen_capacity(), config.seen_retention),
            keying: Keying::for_node(config.plumtree.is_some()),
            config,
            peers: PeerTable::default(),
            actions: VecDeque::new(),
            stats: Stats::default(),
            queued_bytes: 0,
            shared_runs: SharedRuns::default(),
            gathered_bytes: 0,
            owed_bytes: 0,
            flow: Flow::default(),
            application: Application::default(),
            batch: Vec::with_capacity(BATCH),
            run: Run::default(),
            partial_bytes: 0,
            resume_cursor: None,
            plumtree,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A new connection to `peer` is up; `direction` says who dialled. Each direction
    /// has its own slots ([`Config::max_outbound_peers`], [`Config::max_inbound_peers`]).
    /// When an inbound newcomer finds every inbound slot taken, the least useful inbound
    /// peer is evicted for it ([`DisconnectReason::Evicted`]; see [`eviction`] for the
    /// rule); if none may be evicted, or the outbound slots are full, the newcomer is
    /// refused with [`DisconnectReason::TooManyPeers`]. An id that is already connected
    /// is ignored.
    ///
    /// ```
    /// use std::time::Instant;
    /// use gossip_core::{Action, Config, Direction, DisconnectReason, Node, PeerId};
    ///
    /// let now = Instant::now();
    /// let config = Config { max_inbound_peers: 1, ..Config::default() };
    /// let mut node = Node::new(config)?;
    /// node.peer_connected(now, PeerId(1), Direction::Inbound);
    /// node.peer_connected(now, PeerId(2), Direction::Outbound); // its own slot
    /// node.peer_connected(now, PeerId(3), Direction::Inbound); // evicts 1, never 2
    /// assert_eq!(
    ///     node.drain_actions().collect::<Vec<_>>(),
    ///     [Action::Disconnect { peer: PeerId(1), reason: DisconnectReason::Evicted }]
    /// );
    /// # Ok::<(), gossip_core::ConfigError>(())
    /// ```
    pub fn peer_connected(&mut self, now: Instant, peer: PeerId, direction: Direction) {
        self.connect(now, peer, direction, Wire::Plain);
    }

    /// Takes a new connection in its direction's slots (evicting or refusing as
    /// [`peer_connected`](Self::peer_connected) says); returns whether it was taken.
    fn connect(&mut self, now: Instant, peer: PeerId, direction: Direction, wire: Wire) -> bool {
        if self.peers.contains(peer) {
            return false;
        }
        let limit = match direction {
            Direction::Outbound => self.config.max_outbound_peers,
            Direction::Inbound => self.config.max_inbound_peers,
        };
        let connected = self
            .peers
            .iter()
            .filter(|(_, state)| state.direction == direction)
            .count();
        if connected >= limit {
            let victim = match direction {
                Direction::Outbound => None,
                Direction::Inbound => eviction::choose_victim(
                    self.peers.iter().map(|(id, state)| (id, state.stats())),
                    now,
                    self.config.eviction_protection,
                ),
            };
            let Some(victim) = victim else {
                self.stats.peers_refused += 1;
                self.actions.push_back(Action::Disconnect {
                    peer,
                    reason: DisconnectReason::TooManyPeers { direction, limit },
                });
                return false;
            };
            self.stats.peers_evicted += 1;
            self.disconnect(now, victim, DisconnectReason::Evicted);
            self.settle(now);
        }
        let max_frame_len = match wire {
            Wire::Plain => self.config.max_frame_len,
            Wire::Plumtree { .. } => self.config.max_wire_payload(),
        };
        self.peers
            .insert(peer, Peer::new(now, direction, wire, max_frame_len));
        self.stats.peers_connected += 1;
        true
    }

    /// What the node observed of `peer`, if it is connected.
    pub fn peer_stats(&self, peer: PeerId) -> Option<PeerStats> {
        self.peers.get(peer).map(Peer::stats)
    }

    /// What the node observed of every connected peer, in id order.
    pub fn peers(&self) -> impl Iterator<Item = (PeerId, PeerStats)> + '_ {
        self.peers.iter().map(|(id, state)| (id, state.stats()))
    }

    /// The connection to `peer` is gone. Its queued output is forgotten. Unknown ids are
    /// ignored.
    pub fn peer_disconnected(&mut self, now: Instant, peer: PeerId) {
        self.forget(now, peer);
        self.settle(now);
    }

    /// Whether `peer` is connected.
    pub fn is_connected(&self, peer: PeerId) -> bool {
        self.peers.contains(peer)
    }

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
    /// [`Stats::payloads_copied`]. Either way a buffer stays alive for at most four times
    /// the bytes of the messages that keep it.
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
    fn pace(&mut self, now: Instant, peer: PeerId, bytes: u64, first_before: u64) {
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
    fn sync_reading(&mut self, now: Instant, peer: PeerId) {
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
    fn read_frames(&mut self, now: Instant, peer: PeerId, read: Read) {
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
    fn decode_frames(&mut self, now: Instant, peer: PeerId, read: Read) {
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
                if !is_new {
                    self.stats.duplicates += 1;
                    if keeps_copies {
                        self.drop_kept_copy(now, peer, identified.key);
                    }
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

    /// Delivers a new message from `peer` (received at plumtree `round`, 0 from a plain
    /// peer) and forwards it on its own.
    fn deliver_and_forward(
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
    fn deliver(&mut self, delivery: Delivery) {
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
    /// [`Config::delivery_queue_bytes`]). An application that had stalled gets its
    /// deliveries again from now on.
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
    fn take_held(&mut self, now: Instant, peer: PeerId) -> bool {
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
    fn take_or_hold(
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
    fn take_new(
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
        if new {
            self.deliver_and_forward(now, peer, (identified, payload), round);
        } else {
            self.stats.duplicates += 1;
            self.drop_kept_copy(now, peer, identified.key);
        }
        new
    }

    /// `peer` sent the message of `key`, so it has it: a copy of it kept back for the
    /// peer (see `backlog`) is dropped unsent, and the budgets get its charge back.
    fn drop_kept_copy(&mut self, now: Instant, peer: PeerId, key: SeenKey) {
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
    fn take_duplicates(&mut self, now: Instant, peer: PeerId) {
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

    /// The caller wrote `bytes` bytes of queued frames to `peer`'s socket.
    pub fn handle_flushed(&mut self, now: Instant, peer: PeerId, bytes: usize) {
        let Some(state) = self.peers.get_mut(peer) else {
            return;
        };
        let flushed = state.flushed(now, bytes, &mut self.shared_runs.progress);
        self.queued_bytes -= flushed.released_from_total + self.shared_runs.release();
        self.stats.bytes_flushed += flushed.wire_bytes as u64;
        let send_ahead = self.config.send_ahead_bytes;
        while state.has_send_room(send_ahead) {
            let Some(kept) = state.backlog.pop() else {
                break;
            };
            let stretches = kept.stretches();
            let last = stretches.len().checked_sub(1);
            for (place, (bytes, count)) in stretches.into_iter().enumerate() {
                let wire_len = bytes.len();
                state.hand_over(wire_len, count, kept.run, Some(place) == last);
                self.stats.frames_out += count as u64;
                self.stats.bytes_out += wire_len as u64;
                let frames = kept.frames.part(bytes, count);
                self.actions.push_back(Action::Send { peer, frames });
            }
        }
        refresh_full(&mut self.flow, &self.config, state, false, now);
        if !state.is_full() && state.has_waiting_sends() {
            self.send_waiting(now, peer);
        }
        self.settle(now);
    }

    /// Publishes `payload` from this node: marks it seen and queues it for every peer.
    ///
    /// The publisher gets no [`Action::Deliver`] for its own message (it already has
    /// it). Publishing bytes that are still remembered returns
    /// [`PublishOutcome::AlreadySeen`] and sends nothing.
    ///
    /// ```
    /// use std::time::Instant;
    /// use gossip_core::{Config, Node, PublishError, PublishOutcome};
    ///
    /// let now = Instant::now();
    /// let mut node = Node::new(Config { max_frame_len: 4, ..Config::default() })?;
    /// assert!(matches!(node.publish(now, &b"ping"[..]), Ok(PublishOutcome::Sent { .. })));
    /// assert!(matches!(node.publish(now, &b"ping"[..]), Ok(PublishOutcome::AlreadySeen { .. })));
    /// assert_eq!(
    ///     node.publish(now, &b"pings"[..]),
    ///     Err(PublishError::TooLarge { len: 5, max: 4 })
    /// );
    /// # Ok::<(), gossip_core::ConfigError>(())
    /// ```
    pub fn publish(
        &mut self,
        now: Instant,
        payload: impl Into<Bytes>,
    ) -> Result<PublishOutcome, PublishError> {
        let payload = payload.into();
        let max = self.config.max_frame_len;
        if payload.len() > max {
            return Err(PublishError::TooLarge {
                len: payload.len(),
                max,
            });
        }
        let refused = match self.can_publish() {
            false => true,
            // Not full, but this message would pass a budget: that queue is full now.
            true => match self.headroom(None).take(payload.len()) {
                Ok(()) => false,
                Err(binding) => {
                    self.mark_full(now, binding);
                    self.settle(now);
                    true
                }
            },
        };
        if refused {
            self.stats.publishes_refused += 1;
            return Err(PublishError::Congested);
        }
        let id = MessageId::of(&payload);
        let identified = self.keying.with_id(id, &payload);
        if !self.seen.insert(identified.key, now) {
            self.stats.duplicates += 1;
            return Ok(PublishOutcome::AlreadySeen { id });
        }
        self.stats.messages_published += 1;
        let peers = self.forward_one(now, None, (identified, payload), 0);
        self.settle(now);
        Ok(PublishOutcome::Sent { id, peers })
    }

    /// Whether [`publish`](Self::publish) may take a new message now: always with
    /// [`Overload::Shed`]; with [`Overload::PauseReading`], while no queue is full. A
    /// message that would still pass a budget is refused with
    /// [`PublishError::Congested`] all the same, and from then on this says `false`
    /// until the queue it did not fit has drained to half: wait for that, then publish
    /// it again.
    pub fn can_publish(&self) -> bool {
        self.config.overload == Overload::Shed || !self.flow.congested()
    }

    /// Whether the node wants bytes from `peer` now, as its last
    /// [`Action::PauseReading`] / [`Action::ResumeReading`] for it said (`false` for an
    /// unknown peer).
    pub fn is_reading(&self, peer: PeerId) -> bool {
        self.peers.get(peer).is_some_and(Peer::wants_bytes)
    }

    /// Runs what was due by `now`: disconnects peers that took none of their queued bytes
    /// for `slow_peer_timeout` while the node waited on them, and peers that left a frame
    /// incomplete for `frame_timeout`; takes new messages again (until the total is
    /// full) after a stall of `stall_escape`; reads peers again that are back within
    /// their rate limit; and forgets expired message ids.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.seen.expire(now);
        if self.application_deadline().is_some_and(|at| at <= now) {
            self.application.stalled = true;
            self.stats.application_stalls += 1;
        }
        let (stall, overdue) = self.escape_deadlines();
        let stalled = stall.is_some_and(|at| at <= now);
        if stalled || overdue.is_some_and(|at| at <= now) {
            self.escape_round(now, stalled);
        }
        for (peer, queued_bytes) in self.slow_peers(now) {
            self.stats.slow_peer_disconnects += 1;
            self.disconnect(now, peer, DisconnectReason::SlowPeer { queued_bytes });
        }
        let timeout = self.config.frame_timeout;
        let trickling: Vec<(PeerId, usize)> = self
            .peers
            .iter()
            .filter(|(_, state)| state.frame_deadline(timeout).is_some_and(|d| d <= now))
            .map(|(peer, state)| (peer, state.decoder.partial_announced().unwrap_or(0)))
            .collect();
        for (peer, announced) in trickling {
            self.stats.frame_timeouts += 1;
            self.disconnect(now, peer, DisconnectReason::FrameTimeout { announced });
        }
        let rested: Vec<PeerId> = self
            .peers
            .iter_mut()
            .filter(|(_, state)| state.rate_paused_until.is_some_and(|at| at <= now))
            .map(|(peer, state)| {
                state.rate_paused_until = None;
                peer
            })
            .collect();
        for peer in rested {
            self.sync_reading(now, peer);
        }
        self.plumtree_timeout(now);
        self.settle(now);
    }

    /// Starts a round of a stall escape at `now`: what the node may take from each peer
    /// past its budgets, within the total. A round of a stall (`stalled`) takes half a
    /// peer budget, shared among the peers `flow::escapes_from` names; in any round, a
    /// peer held too long (`flow::hold_limit`) gets its held message taken.
    fn escape_round(&mut self, now: Instant, stalled: bool) {
        self.flow.escaping = true;
        self.flow.escaped_at = Some(now);
        let waits_on_a_held_peer = self
            .peers
            .iter()
            .any(|(_, state)| state.held.is_some() && state.is_full());
        let takes =
            |state: &Peer| stalled && flow::escapes_from(waits_on_a_held_peer, state.is_full());
        let count = self.peers.iter().filter(|(_, state)| takes(state)).count();
        let room = flow::escape_room(
            self.config.peer_queue_bytes,
            count,
            headroom::plain_charge(self.config.max_frame_len),
        );
        let hold_limit = flow::hold_limit(self.config.slow_peer_timeout);
        let overdue = |state: &Peer| {
            state
                .held_overdue_at(hold_limit)
                .is_some_and(|at| at <= now)
        };
        for (_, state) in self.peers.iter_mut() {
            state.escape_room = match &state.held {
                _ if takes(state) => room,
                Some((_, message)) if overdue(state) => headroom::plain_charge(message.len()),
                _ => 0,
            };
        }
        self.flow.dirty = true;
        self.stats.stall_escapes += u64::from(stalled);
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work, if ever. Only peers
    /// the node waits on while full, peers in the middle of a frame and peers paused
    /// for their rate set a deadline; expired ids are also forgotten lazily, so an idle
    /// node is never woken.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let (stall, overdue) = self.escape_deadlines();
        let node = [
            stall,
            overdue,
            self.application_deadline(),
            self.plumtree_deadline(),
        ];
        // Most calls find no peer waited on, mid-frame or paused for its rate: then no
        // peer has a deadline, and the peers need not be looked at.
        let waiting = self.flow.congested();
        let partial = self.partial_bytes > 0;
        if !waiting && !partial && self.config.peer_rate_limit.is_none() {
            return node.into_iter().flatten().min();
        }
        let timeout = self.config.frame_timeout;
        let per_peer = self.peers.iter().flat_map(|(_, state)| {
            [
                self.slow_deadline(state),
                state.frame_deadline(timeout),
                state.rate_paused_until,
            ]
        });
        per_peer.chain(node).flatten().min()
    }

    /// When the application is taken for stalled if it takes nothing: while its queue
    /// is full, `slow_peer_timeout` after it became full or last took something.
    fn application_deadline(&self) -> Option<Instant> {
        let since = self.application.waited_since()?;
        since.checked_add(self.config.slow_peer_timeout)
    }

    /// When the next round of a stall escape comes, and when the next one for peers held
    /// too long comes (see `flow::hold_limit`; that one takes only from them).
    ///
    /// The node escapes a stall (takes new messages again until the total is full)
    /// if nothing it waits on has moved: a `stall_escape` after it became full or after
    /// the last progress of a peer it waits on, whichever is later. Not while the total
    /// has no room at all; while it is full but has drained below its budget, an escape
    /// takes what fits (a ring whose totals all stayed marked full would otherwise stop
    /// until one of them drained to half, which in a ring none does).
    ///
    /// Nor while the messages owed to plumtree peers fill the cache's budget and the
    /// total's together: outside escapes the node takes nothing while a peer they are
    /// owed to is full, so they grow only with escape rounds (what a round takes pushes
    /// cached messages out), and so stay within that bound plus one round. They do not
    /// count in the total itself: two nodes whose totals were full of them could never
    /// escape a wait on each other (seen as a slow-peer cut in a clique of six).
    fn escape_deadlines(&self) -> (Option<Instant>, Option<Instant>) {
        let owed_cap = self.config.plumtree.as_ref().map_or(0, |p| p.cache_bytes)
            + self.config.total_queue_bytes;
        if self.config.overload == Overload::Shed
            || self.committed_bytes() >= self.config.total_queue_bytes
            || self.owed_bytes >= owed_cap
        {
            return (None, None);
        }
        let Some(since) = self.flow.congested_since else {
            return (None, None);
        };
        let since = self.flow.escaped_at.map_or(since, |at| at.max(since));
        let waited_on = self
            .peers
            .iter()
            .filter(|(_, state)| state.queued_bytes > 0 && state.is_full());
        let progress = waited_on.map(|(_, state)| state.last_progress).max();
        let stalled = progress
            .map_or(since, |p| p.max(since))
            .checked_add(self.config.stall_escape);
        // A peer held too long is taken from at once, a stall or not, but no sooner
        // than a `stall_escape` after the last round.
        let hold_limit = flow::hold_limit(self.config.slow_peer_timeout);
        let overdue_at = self
            .peers
            .iter()
            .filter_map(|(_, s)| s.held_overdue_at(hold_limit));
        let overdue = overdue_at
            .min()
            .zip(since.checked_add(self.config.stall_escape))
            .map(|(overdue, next_round)| overdue.max(next_round));
        (stalled, overdue)
    }

    /// The peers to cut as slow at `now`, with what they have queued: those the node
    /// waited on for `slow_peer_timeout` while they took nothing, and with them (with
    /// reading pauses) every peer more than half full that took nothing in that time
    /// either. Peers that stopped reading together fill their queues a few messages
    /// apart (their kernel buffers took different amounts), and the node waits on only
    /// the first to fill; without the second rule they were cut a timeout after one
    /// another while the node held everything back.
    fn slow_peers(&self, now: Instant) -> Vec<(PeerId, usize)> {
        let timeout = self.config.slow_peer_timeout;
        let due = |state: &Peer| self.slow_deadline(state).filter(|at| *at <= now);
        let mut slow = Vec::new();
        // The latest start of a wait that ends in a cut now.
        let mut waited_from = None;
        for (peer, state) in self.peers.iter() {
            if let Some(deadline) = due(state) {
                slow.push((peer, state.queued_bytes));
                waited_from = waited_from.max(deadline.checked_sub(timeout));
            }
        }
        if let (Some(from), Overload::PauseReading) = (waited_from, self.config.overload) {
            let half = self.config.peer_queue_bytes / 2;
            let stuck_as_long = self.peers.iter().filter(|(_, state)| {
                state.queued_bytes > 0
                    && state.committed_bytes() > half
                    && state.last_progress <= from
                    && due(state).is_none()
            });
            slow.extend(stuck_as_long.map(|(peer, state)| (peer, state.queued_bytes)));
        }
        slow
    }

    /// When `state`'s peer is cut if it takes nothing: the node waits on a full peer,
    /// and on every peer with bytes queued while the total is full.
    fn slow_deadline(&self, state: &Peer) -> Option<Instant> {
        let waited_since = state.full_since.or(self.flow.total_full_since);
        state.slow_deadline(waited_since, self.config.slow_peer_timeout)
    }

    /// The next action, oldest first.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Drains every pending action, oldest first. The internal queue keeps its
    /// allocation, so steady-state operation allocates nothing for actions.
    pub fn drain_actions(&mut self) -> impl Iterator<Item = Action> + '_ {
        self.actions.drain(..)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        Stats {
            peers_current: self.peers.len(),
            queued_bytes: self.queued_bytes,
            delivery_queued_bytes: self.application.queued,
            seen_len: self.seen.len(),
            seen_evicted: self.seen.evicted(),
            seen_memory_bytes: self.seen.memory_bytes(),
            congested: self.flow.congested(),
            partial_frame_bytes: self.partial_bytes,
            plumtree_cache_bytes: self.plumtree_cache_bytes(),
            grafts_given_up: self.plumtree.as_ref().map_or(0, |p| p.missing.given_up()),
            messages_missed: self.plumtree.as_ref().map_or(0, |p| p.missing.missed()),
            graft_timeout: self
                .plumtree
                .as_ref()
                .map_or(Duration::ZERO, |p| p.current_graft_timers().0),
            ..self.stats
        }
    }

    /// Whether the node remembers `payload` as seen (published, or received).
    ///
    /// ```
    /// use std::time::Instant;
    /// use gossip_core::{Config, Node};
    ///
    /// let mut node = Node::new(Config::default()).unwrap();
    /// node.publish(Instant::now(), &b"m"[..]).unwrap();
    /// assert!(node.has_seen(b"m") && !node.has_seen(b"n"));
    /// ```
    pub fn has_seen(&self, payload: &[u8]) -> bool {
        self.seen.contains_key(self.keying.identify(payload).key)
    }

    /// Whether the node remembers the message `id` as seen; `None` if it cannot tell by
    /// the id alone: a node that speaks only flood remembers payloads by a fingerprint
    /// (see [`Fingerprinter`](crate::Fingerprinter)), so ask it
    /// [`has_seen`](Self::has_seen) with the payload.
    pub fn has_seen_id(&self, id: &MessageId) -> Option<bool> {
        let key = self.keying.key_of_id(id)?;
        Some(self.seen.contains_key(key))
    }

    /// Forwards `run` (new frames of `read` from `from`) and empties it.
    fn forward_run(&mut self, now: Instant, from: PeerId, read: &Read, run: &mut Run) {
        if !run.is_empty() {
            let lens = (run.frame_lens(), Some(run.keys()));
            self.forward(now, Some(from), lens, |bytes, count| {
                run.frames(read, bytes, count)
            });
            run.clear();
        }
    }

    /// Queues one message (received at plumtree `round`, 0 if plain or published) for
    /// every peer but `except`; returns how many took it.
    fn forward_one(
        &mut self,
        now: Instant,
        except: Option<PeerId>,
        (identified, payload): (Identified, Bytes),
        round: u16,
    ) -> usize {
        let plumtree = match self.plumtree.is_some() {
            true => {
                let id = identified.id(&payload);
                self.forward_plumtree(now, except, id, &payload, round)
            }
            false => 0,
        };
        // `max_frame_len` fits a u32 (checked by `Config::validate`) and every payload was
        // checked against it, so framing cannot fail.
        let Some(frames) = Frames::single(payload) else {
            return plumtree;
        };
        let lens = (&[frames.wire_len()][..], Some(&[identified.key][..]));
        plumtree + self.forward(now, except, lens, |_, _| frames.clone())
    }

    /// Queues consecutive frames, of wire lengths `frame_lens`, for every peer but
    /// `except`; `frames(bytes, count)` gives the [`Frames`] for `count` of them lying at
    /// `bytes` (offsets from the first frame's start). Each frame goes to each peer with
    /// room for it in its queue and in the total. A peer's own queue decides exactly as if
    /// the frames came one by one; the total, shared, is filled peer by peer (all of a
    /// run for the first peer, then the next), not message by message. A peer gets the
    /// frames it takes in one `Send`, or one per stretch between frames shed for it.
    /// Returns how many peers took at least one frame.
    fn forward(
        &mut self,
        now: Instant,
        except: Option<PeerId>,
        (frame_lens, keys): (&[usize], Option<&[SeenKey]>),
        frames: impl Fn(Range<usize>, usize) -> Frames,
    ) -> usize {
        let mut took = 0;
        let shared = self.share_among(|node| node.plain_peers_but(except));
        let (peers, mut queues) = self.queues();
        for (peer, state) in peers.iter_mut() {
            // Plumtree peers get their own frames (`forward_plumtree`).
            if Some(peer) == except || state.is_plumtree() {
                continue;
            }
            let target = (peer, state);
            let run = (frame_lens, shared);
            took += usize::from(queues.admit(now, target, run, keys, &frames));
        }
        self.charge_shared(shared, took, frame_lens);
        took
    }

    /// A shared run for frames about to be queued for as many peers as `peers` counts:
    /// with reading pauses each takes them whole, so their copies share the bytes (see
    /// `shared_runs`). The caller charges them with `charge_shared`.
    fn share_among(&mut self, peers: impl FnOnce(&Self) -> usize) -> Option<RunId> {
        match self.config.overload {
            Overload::PauseReading => {
                let peers = peers(self);
                self.shared_runs.new_run(peers)
            }
            Overload::Shed => None,
        }
    }

    /// Charges the total, once, for the bytes of the shared `run` (frames of wire lengths
    /// `frame_lens`) that `copies` peers took.
    fn charge_shared(&mut self, run: Option<RunId>, copies: usize, frame_lens: &[usize]) {
        if let Some(run) = run {
            let wire_len = frame_lens.iter().sum();
            self.queued_bytes += self.shared_runs.queued(run, copies, wire_len);
        }
    }

    /// How many plain peers there are but `except`.
    fn plain_peers_but(&self, except: Option<PeerId>) -> usize {
        let excepted = usize::from(except.is_some_and(|peer| self.peers.contains(peer)));
        match self.plumtree {
            // All peers are plain.
            None => self.peers.len() - excepted,
            Some(_) => self
                .peers
                .iter()
                .filter(|&(peer, state)| Some(peer) != except && !state.is_plumtree())
                .count(),
        }
    }

    /// The peers, and what queueing frames for one of them touches besides it.
    fn queues(&mut self) -> (&mut PeerTable, Queues<'_>) {
        let queues = Queues {
            config: &self.config,
            queued_bytes: &mut self.queued_bytes,
            stats: &mut self.stats,
            actions: &mut self.actions,
            flow: &mut self.flow,
        };
        (&mut self.peers, queues)
    }

    fn disconnect(&mut self, now: Instant, peer: PeerId, reason: DisconnectReason) {
        if self.forget(now, peer) {
            self.actions.push_back(Action::Disconnect { peer, reason });
        }
    }

    /// Removes `peer` and what is queued for it (counted as lost). Returns whether it
    /// was connected.
    fn forget(&mut self, now: Instant, peer: PeerId) -> bool {
        let Some(mut state) = self.peers.remove(peer) else {
            return false;
        };
        let unwritten = state.unwritten_frames();
        self.queued_bytes -= state.released_when_gone(&mut self.shared_runs.progress);
        self.queued_bytes -= self.shared_runs.release();
        self.gathered_bytes -= state.gathered_charge();
        self.partial_bytes -= state.partial_bytes;
        if let (true, Some(plumtree)) = (state.is_plumtree(), self.plumtree.as_mut()) {
            plumtree.peers -= 1;
            plumtree.missing.peer_gone(now, peer);
            if let Some(slot) = state.promise_slot {
                plumtree.free_slot(slot);
            }
        }
        let held = usize::from(state.held.is_some());
        let owed = state.owed.len();
        self.owed_bytes -= owed_charge(&state.owed);
        self.stats.frames_lost_on_disconnect += (unwritten + held + owed) as u64;
        if state.is_full() {
            self.flow.full_peers -= 1;
            self.flow.dirty = true;
        }
        true
    }

    /// Brings the application queue's fullness up to date (with reading pauses; with
    /// shedding its deliveries are dropped instead). A stalled application holds no one.
    fn update_application(&mut self, now: Instant) {
        if self.config.overload == Overload::PauseReading {
            let app = &mut self.application;
            let budget = self.config.delivery_queue_bytes;
            app.full_since = match app.stalled {
                true => None,
                false => flow::fullness(app.full_since, app.queued, budget, now),
            };
            let full = app.full_since.is_some();
            self.flow.dirty |= full != self.flow.application_full;
            self.flow.application_full = full;
        }
    }

    /// Brings the total's fullness up to date (with reading pauses; with shedding the
    /// total is never passed).
    fn update_total(&mut self, now: Instant) {
        if self.config.overload == Overload::PauseReading {
            let total = self.config.total_queue_bytes;
            let was = self.flow.total_full_since;
            let since = flow::fullness(was, self.committed_bytes(), total, now);
            self.flow.dirty |= since.is_some() != was.is_some();
            self.flow.total_full_since = since;
        }
    }

    /// After queues changed: brings the total's fullness up to date and, when something
    /// became full or stopped being full, takes the messages held from the peers the
    /// node can take new messages from now (which resumes reading them).
    fn settle(&mut self, now: Instant) {
        loop {
            self.update_total(now);
            self.update_application(now);
            if !std::mem::take(&mut self.flow.dirty) {
                return;
            }
            match (self.flow.congested(), self.flow.congested_since) {
                (true, None) => {
                    self.stats.congestion_episodes += 1;
                    self.flow.congested_since = Some(now);
                }
                (false, Some(_)) => {
                    self.flow.congested_since = None;
                    self.flow.escaping = false;
                    self.flow.escaped_at = None;
                }
                _ => {}
            }
            // Take the messages held while the node was full, from the peers it can take
            // new messages from now. Taking them can fill a queue again: go round until
            // nothing changes.
            let overload = self.config.overload;
            let mut ready: Vec<PeerId> = self
                .peers
                .iter()
                .filter(|(_, state)| state.held.is_some() && self.flow.takes_from(overload, state))
                .map(|(peer, _)| peer)
                .collect();
            // Round robin: start after the peer served last, so that when the room runs
            // out part way, it is not always the same peers who wait.
            if let Some(cursor) = self.resume_cursor {
                let after = ready.partition_point(|&peer| peer <= cursor);
                ready.rotate_left(after);
            }
            for peer in ready {
                self.read_frames(now, peer, Read::of(&Bytes::new()));
                if self
                    .peers
                    .get(peer)
                    .is_some_and(|state| state.held.is_none())
                {
                    self.resume_cursor = Some(peer);
                }
            }
            // Promised and grafted messages that did not fit the total may fit now.
            if self.plumtree.is_some() {
                let waiting: Vec<PeerId> = self
                    .peers
                    .iter()
                    .filter(|(_, state)| state.has_waiting_sends() && !state.is_full())
                    .map(|(peer, _)| peer)
                    .collect();
                for peer in waiting {
                    self.send_waiting(now, peer);
                }
            }
        }
    }
}

/// What queueing frames for a peer changes besides the peer: the total, the counters,
/// the actions, the node's fullness.
struct Queues<'a> {
    config: &'a Config,
    queued_bytes: &'a mut usize,
    stats: &'a mut Stats,
    actions: &'a mut VecDeque<Action>,
    flow: &'a mut Flow,
}

impl Queues<'_> {
    /// Queues for `peer` the frames (of wire lengths `frame_lens`) its queue and the
    /// total take (all of them with reading pauses); `frames(bytes, count)` gives the
    /// [`Frames`] for `count` of them lying at `bytes`. With a `shared` run, they are a
    /// copy of it, taken whole, charged to the total without its bytes (the caller
    /// charges them once for every copy). Returns whether any was queued.
    ///
    /// With the frames' seen-set `keys`, what the peer's queue takes is kept back in its
    /// backlog while the caller has `send_ahead_bytes` of it unwritten (see `backlog`).
    fn admit(
        &mut self,
        now: Instant,
        (peer, state): (PeerId, &mut Peer),
        (frame_lens, shared): (&[usize], Option<RunId>),
        keys: Option<&[SeenKey]>,
        frames: impl Fn(Range<usize>, usize) -> Frames,
    ) -> bool {
        let send_ahead = self.config.send_ahead_bytes;
        let room = Room::for_peer(self.config, state.queued_bytes, *self.queued_bytes);
        let mut sent = false;
        let shed = admission::admit(frame_lens, room, |stretch| {
            let wire_len = stretch.bytes.len();
            let charge = state.charge(now, wire_len, stretch.count);
            *self.queued_bytes += match shared {
                Some(_) => stretch.count * QUEUED_FRAME_OVERHEAD,
                None => charge,
            };
            let taken = stretch.first..stretch.first + stretch.count;
            let frames = frames(stretch.bytes, stretch.count);
            // Behind what is kept back already, or past `send_ahead_bytes` unwritten.
            let keep = !state.backlog.is_empty() || !state.has_send_room(send_ahead);
            match keys {
                Some(keys) if keep => {
                    state
                        .backlog
                        .push(frames, shared, &keys[taken.clone()], &frame_lens[taken]);
                }
                _ => {
                    state.hand_over(wire_len, stretch.count, shared, true);
                    self.stats.frames_out += stretch.count as u64;
                    self.stats.bytes_out += wire_len as u64;
                    self.actions.push_back(Action::Send { peer, frames });
                }
            }
            sent = true;
        });
        self.stats.frames_shed += shed.frames as u64;
        // With shedding, only a peer's own backlog counts against it; a full total
        // queue is resolved by disconnecting the peers that filled it.
        refresh_full(self.flow, self.config, state, shed.own_budget, now);
        sent
    }
}

/// Brings a peer's fullness up to date after its queue changed (`shed_for_it`: a frame
/// was just shed for lack of room in its own queue).
fn refresh_full(
    flow: &mut Flow,
    config: &Config,
    state: &mut Peer,
    shed_for_it: bool,
    now: Instant,
) {
    let budget = config.peer_queue_bytes;
    let was_full = state.is_full();
    state.full_since = match config.overload {
        Overload::PauseReading => {
            flow::fullness(state.full_since, state.committed_bytes(), budget, now)
        }
        // Full from a frame shed for it until it drains to half.
        Overload::Shed if shed_for_it => state.full_since.or(Some(now)),
        Overload::Shed => state.full_since.filter(|_| state.queued_bytes > budget / 2),
    };
    if was_full != state.is_full() {
        if was_full {
            flow.full_peers -= 1;
        } else {
            flow.full_peers += 1;
        }
        flow.dirty = true;
    }
}
