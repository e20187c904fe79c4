//! The gossip state machine: [`Node`].

mod admission;
mod peer;
mod read_buffer;
mod run;

use std::collections::VecDeque;
use std::ops::Range;
use std::time::Instant;

use bytes::Bytes;
use thiserror::Error;

use crate::{
    Action, Config, ConfigError, Delivery, DisconnectReason, Frames, MessageId, PeerId, SeenSet,
    Stats,
};
use admission::Room;
use peer::{Peer, PeerTable};
use read_buffer::Read;
use run::Run;

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
///   with an id already connected is ignored. After an [`Action::Disconnect`] the node
///   has already forgotten the peer: close the connection, drop anything still queued
///   for it, and do not report it (a late `peer_disconnected` is harmless).
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
///   from these reports. Reporting more than was queued is clamped.
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
    actions: VecDeque<Action>,
    stats: Stats,
    queued_bytes: usize,
    /// Frames being handled, with their ids; kept to reuse its allocation.
    batch: Vec<(MessageId, Bytes)>,
    /// New frames of the read being handled, not forwarded yet; kept to reuse its
    /// allocation.
    run: Run,
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
}

impl Node {
    /// A node with no peers. Fails if the configuration is inconsistent.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Node {
            seen: SeenSet::new(config.seen_capacity(), config.seen_retention),
            config,
            peers: PeerTable::default(),
            actions: VecDeque::new(),
            stats: Stats::default(),
            queued_bytes: 0,
            batch: Vec::with_capacity(BATCH),
            run: Run::default(),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A new connection to `peer` is up. If the node is full it is refused with
    /// [`DisconnectReason::TooManyPeers`]; an id that is already connected is ignored.
    pub fn peer_connected(&mut self, _now: Instant, peer: PeerId) {
        if self.peers.contains(peer) {
            return;
        }
        if self.peers.len() >= self.config.max_peers {
            self.stats.peers_refused += 1;
            let limit = self.config.max_peers;
            self.actions.push_back(Action::Disconnect {
                peer,
                reason: DisconnectReason::TooManyPeers { limit },
            });
            return;
        }
        self.peers
            .insert(peer, Peer::new(self.config.max_frame_len));
        self.stats.peers_connected += 1;
    }

    /// The connection to `peer` is gone. Its queued output is forgotten. Unknown ids are
    /// ignored.
    pub fn peer_disconnected(&mut self, _now: Instant, peer: PeerId) {
        if let Some(state) = self.peers.remove(peer) {
            self.queued_bytes -= state.queued_bytes;
        }
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
            self.stats.bytes_in += data.len() as u64;
            let read = Read::of(&data);
            state.decoder.push(data);
            self.decode_frames(now, peer, read);
        }
    }

    /// Handles the complete frames buffered for `peer`, [`BATCH`] at a time in three
    /// passes: split and hash them, check them against the seen set, then deliver the new
    /// ones and gather them into runs to forward. The seen-set checks run back to back so
    /// that their cache misses (a large set lives outside the caches) overlap instead of
    /// queueing behind each frame's hashing. Outcomes and the order of what each peer is
    /// sent are those of one frame at a time.
    fn decode_frames(&mut self, now: Instant, peer: PeerId, read: Read) {
        let mut batch = std::mem::take(&mut self.batch);
        let mut run = std::mem::take(&mut self.run);
        let first_action = self.actions.len();
        // Bytes of new payloads that are slices of `read`.
        let mut kept = 0;
        loop {
            batch.clear();
            let Some(state) = self.peers.get_mut(peer) else {
                break;
            };
            let mut error = None;
            while batch.len() < BATCH {
                match state.decoder.next_frame() {
                    Ok(Some(payload)) => batch.push((MessageId::of(&payload), payload)),
                    Ok(None) => break,
                    Err(frame_error) => {
                        error = Some(frame_error);
                        break;
                    }
                }
            }
            let more = batch.len() == BATCH;
            self.stats.frames_in += batch.len() as u64;
            let mut new = [false; BATCH];
            let ids = batch.iter().map(|(id, _)| id);
            self.seen.insert_many(ids, now, &mut new[..batch.len()]);
            for (is_new, (id, payload)) in new.into_iter().zip(batch.drain(..)) {
                if !is_new {
                    self.stats.duplicates += 1;
                    continue;
                }
                self.stats.messages_delivered += 1;
                let delivery = |payload| {
                    Action::Deliver(Delivery {
                        id,
                        payload,
                        from: peer,
                    })
                };
                let frame = read.frame_range(&payload);
                if !frame.as_ref().is_some_and(|frame| run.accepts(frame)) {
                    self.forward_run(now, peer, &read, &mut run);
                }
                match frame {
                    Some(frame) => {
                        kept += payload.len();
                        self.actions.push_back(delivery(payload));
                        run.extend(frame);
                    }
                    // Assembled across reads, or empty: forwarded on its own.
                    None => {
                        self.actions.push_back(delivery(payload.clone()));
                        self.forward_one(now, Some(peer), payload);
                    }
                }
            }
            if let Some(error) = error {
                self.forward_run(now, peer, &read, &mut run);
                self.stats.protocol_errors += 1;
                self.disconnect(peer, DisconnectReason::Protocol(error));
                break;
            }
            if !more {
                break;
            }
        }
        self.forward_run(now, peer, &read, &mut run);
        self.batch = batch;
        self.run = run;
        if read.too_big_for(kept) {
            self.stats.payloads_copied +=
                read_buffer::copy_out(&mut self.actions, first_action, &read);
        }
    }

    /// The caller wrote `bytes` bytes of queued frames to `peer`'s socket.
    pub fn handle_flushed(&mut self, _now: Instant, peer: PeerId, bytes: usize) {
        let Some(state) = self.peers.get_mut(peer) else {
            return;
        };
        let flushed = state.flushed(bytes, self.config.peer_queue_bytes);
        self.queued_bytes -= flushed.released;
        self.stats.bytes_flushed += flushed.wire_bytes as u64;
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
        let id = MessageId::of(&payload);
        if !self.seen.insert(id, now) {
            self.stats.duplicates += 1;
            return Ok(PublishOutcome::AlreadySeen { id });
        }
        self.stats.messages_published += 1;
        let peers = self.forward_one(now, None, payload);
        Ok(PublishOutcome::Sent { id, peers })
    }

    /// Runs what was due by `now`: disconnects peers that stayed overloaded too long and
    /// forgets expired message ids.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.seen.expire(now);
        let timeout = self.config.slow_peer_timeout;
        let slow: Vec<(PeerId, usize)> = self
            .peers
            .iter()
            .filter(|(_, state)| state.slow_deadline(timeout).is_some_and(|d| d <= now))
            .map(|(peer, state)| (peer, state.queued_bytes))
            .collect();
        for (peer, queued_bytes) in slow {
            self.stats.slow_peer_disconnects += 1;
            self.disconnect(peer, DisconnectReason::SlowPeer { queued_bytes });
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work, if ever. Only
    /// overloaded peers set a deadline; expired ids are also forgotten lazily, so an idle
    /// node is never woken.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timeout = self.config.slow_peer_timeout;
        self.peers
            .iter()
            .filter_map(|(_, state)| state.slow_deadline(timeout))
            .min()
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
            seen_len: self.seen.len(),
            seen_evicted: self.seen.evicted(),
            ..self.stats
        }
    }

    /// The seen set, for inspection.
    pub fn seen(&self) -> &SeenSet {
        &self.seen
    }

    /// Forwards `run` (new frames of `read` from `from`) and empties it.
    fn forward_run(&mut self, now: Instant, from: PeerId, read: &Read, run: &mut Run) {
        if !run.is_empty() {
            self.forward(now, Some(from), run.frame_lens(), |bytes, count| {
                run.frames(read, bytes, count)
            });
            run.clear();
        }
    }

    /// Queues one message for every peer but `except`; returns how many took it.
    fn forward_one(&mut self, now: Instant, except: Option<PeerId>, payload: Bytes) -> usize {
        // `max_frame_len` fits a u32 (checked by `Config::validate`) and every payload was
        // checked against it, so framing cannot fail.
        let Some(frames) = Frames::single(payload) else {
            return 0;
        };
        self.forward(now, except, &[frames.wire_len()], |_, _| frames.clone())
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
        frame_lens: &[usize],
        frames: impl Fn(Range<usize>, usize) -> Frames,
    ) -> usize {
        let mut took = 0;
        for (peer, state) in self.peers.iter_mut() {
            if Some(peer) == except {
                continue;
            }
            let room = Room {
                peer: self
                    .config
                    .peer_queue_bytes
                    .saturating_sub(state.queued_bytes),
                total: self
                    .config
                    .total_queue_bytes
                    .saturating_sub(self.queued_bytes),
            };
            let mut sent = false;
            let shed = admission::admit(frame_lens, room, |stretch| {
                let wire_len = stretch.bytes.len();
                self.queued_bytes += state.queue(wire_len, stretch.count);
                self.stats.frames_out += stretch.count as u64;
                self.stats.bytes_out += wire_len as u64;
                self.actions.push_back(Action::Send {
                    peer,
                    frames: frames(stretch.bytes, stretch.count),
                });
                sent = true;
            });
            self.stats.frames_shed += shed.frames as u64;
            if shed.own_budget {
                // Only a peer's own backlog counts against it; a full total queue is
                // resolved by disconnecting the peers that filled it.
                state.overloaded_since.get_or_insert(now);
            }
            took += usize::from(sent);
        }
        took
    }

    fn disconnect(&mut self, peer: PeerId, reason: DisconnectReason) {
        if let Some(state) = self.peers.remove(peer) {
            self.queued_bytes -= state.queued_bytes;
            self.actions.push_back(Action::Disconnect { peer, reason });
        }
    }
}
