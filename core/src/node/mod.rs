//! The gossip state machine: [`Node`].
//!
//! This file has the node's state and its peers' lifecycle (connect, evict, forget) and
//! `settle`, which takes held messages once queues drain. Its work is split by event:
//! `receive` (bytes in from a peer), `take` (a peer's messages delivered, dropped or
//! held), `forward` (queueing for the plain peers, and flushes), `publish`, `timers`
//! (stall escapes, slow-peer cuts and other deadlines), and `plumtree/` for the
//! plumtree protocol, split the same way. The policies they apply have modules of their
//! own (`flow`, `headroom`, `admission`, `backlog`, `eviction`, `pacer`).

mod admission;
mod backlog;
pub mod eviction;
mod flow;
mod forward;
mod headroom;
mod pacer;
mod peer;
mod plumtree;
mod publish;
mod read_buffer;
mod receive;
mod run;
mod shared_runs;
mod take;
mod timers;

pub use publish::{PublishError, PublishOutcome};

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::seen::{Identified, Keying};
use crate::{
    Action, Config, ConfigError, Direction, DisconnectReason, MessageId, Overload, PeerId,
    PeerStats, SeenSet, Stats,
};
use flow::{Application, Flow};
use peer::{Peer, PeerTable, Wire};
use plumtree::owed_charge;
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
/// - **Writing.** Write each `Send`'s [`Frames::parts`] to the peer's socket in order and
///   report the bytes written with [`handle_flushed`](Self::handle_flushed), in any
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
///
/// [`Frames`]: crate::Frames
/// [`Frames::parts`]: crate::Frames::parts
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

    /// Whether the node wants bytes from `peer` now, as its last
    /// [`Action::PauseReading`] / [`Action::ResumeReading`] for it said (`false` for an
    /// unknown peer).
    pub fn is_reading(&self, peer: PeerId) -> bool {
        self.peers.get(peer).is_some_and(Peer::wants_bytes)
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
                    self.flow.lazy_round = false;
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
