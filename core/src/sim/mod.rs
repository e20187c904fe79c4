//! A deterministic in-memory network of gossip [`Node`]s, for testing gossip setups.
//!
//! The simulator runs many cores with no sockets and no real time. Links behave like TCP
//! connections: bytes arrive in order per direction, after a per-link latency plus
//! jitter, in reads of arbitrary size (part of a frame, several frames). Different links
//! have different delays, so messages race each other across the graph. Connections can
//! break at random and come back, and nodes can crash and restart, all drawn from one
//! seed: a failing run replays exactly from its seed.
//!
//! Use it to property-test your own configuration: build a [`Topology`], publish, run to
//! quiescence, and check the [`Report`] (coverage per message, redundancy, hops, time).
//!
//! ```
//! use gossip_core::sim::{SimConfig, Simulation, Topology};
//!
//! let mut sim = Simulation::new(Topology::ring(10), SimConfig { seed: 7, ..SimConfig::default() });
//! sim.publish(0, &b"block 1"[..])?;
//! sim.publish(5, &b"block 2"[..])?;
//! assert!(sim.run_until_quiet());
//! let report = sim.report();
//! assert!(report.all_delivered_exactly_once());
//! assert!(report.max_hops() <= 5);
//! # Ok::<(), gossip_core::PublishError>(())
//! ```

mod report;
mod rng;
mod topology;

pub use report::{MessageReport, Report};
pub use rng::SimRng;
pub use topology::Topology;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::{Action, Config, DisconnectReason, Frames, MessageId, Node, PeerId, PublishError};

/// How the simulated network behaves. All randomness comes from `seed`.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed for every random choice of the run.
    pub seed: u64,
    /// Configuration of every node.
    pub node: Config,
    /// Each link's latency is drawn uniformly from this range when it is created.
    pub latency: (Duration, Duration),
    /// Each frame is further delayed by up to this much (order within a link is kept).
    pub jitter: Duration,
    /// Each read hands the receiver between 1 and `max_read` of the bytes that have
    /// arrived; `usize::MAX` hands over all of them at once.
    pub max_read: usize,
    /// Probability that sending a frame breaks its connection (the frame and everything
    /// in flight on it are lost). The link reconnects after `reconnect_after`.
    pub link_failure: f64,
    /// Delay before a broken link reconnects.
    pub reconnect_after: Duration,
    /// Random node crashes, if any.
    pub churn: Option<Churn>,
}

impl Default for SimConfig {
    /// Latency 1–50 ms, 5 ms jitter, whole reads, no failures.
    fn default() -> Self {
        SimConfig {
            seed: 0,
            node: Config::default(),
            latency: (Duration::from_millis(1), Duration::from_millis(50)),
            jitter: Duration::from_millis(5),
            max_read: usize::MAX,
            link_failure: 0.0,
            reconnect_after: Duration::from_millis(100),
            churn: None,
        }
    }
}

/// Random crash-and-restart of nodes. A restarted node starts from a fresh [`Node`]
/// (empty seen set) and reconnects its links.
#[derive(Debug, Clone, Copy)]
pub struct Churn {
    /// Time between two crashes, drawn uniformly from zero to twice this.
    pub mean_interval: Duration,
    /// How long a crashed node stays down.
    pub downtime: Duration,
}

/// Virtual time, in nanoseconds since the start of the run.
type SimTime = u64;

/// Peer ids with this bit set are raw peers attached by the test, not simulated nodes.
const RAW_PEER: u64 = 1 << 63;

#[derive(Debug)]
enum Event {
    /// Bytes may have arrived on one direction of a link.
    Arrive {
        link: usize,
        side: usize,
        epoch: u64,
    },
    /// A node's `poll_timeout` deadline.
    Timer { node: usize },
    /// A broken link comes back.
    Reconnect { link: usize },
    /// A node crashes (churn).
    Crash,
    /// A crashed node restarts.
    Restart { node: usize },
}

#[derive(Debug)]
struct Scheduled {
    at: SimTime,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// One direction of a link: frames in flight, in order.
#[derive(Debug, Default)]
struct Pipe {
    in_flight: VecDeque<(SimTime, Frames)>,
    /// Bytes of the front frame already read by the receiver.
    read_of_front: usize,
    /// Arrival time of the last frame sent, so later frames never overtake it.
    last_arrival: SimTime,
    arrival_scheduled: bool,
}

#[derive(Debug)]
struct Link {
    ends: [usize; 2],
    latency: SimTime,
    up: bool,
    /// Bumped on every break, so events of an old connection are ignored.
    epoch: u64,
    /// `pipes[s]` carries bytes from `ends[s]` to the other end.
    pipes: [Pipe; 2],
}

#[derive(Debug)]
struct SimNode {
    /// `None` while crashed.
    node: Option<Node>,
    links: Vec<usize>,
    timer: Option<SimTime>,
    /// Counters of earlier incarnations, kept across restarts.
    frames_received_before: u64,
}

#[derive(Debug)]
struct RawPeer {
    node: usize,
    disconnected: Option<DisconnectReason>,
}

#[derive(Debug)]
struct Track {
    id: MessageId,
    origin: usize,
    published_at: SimTime,
    /// Hops from the origin at which each node got it; `u32::MAX` = not yet.
    hops: Vec<u32>,
    deliveries: Vec<u16>,
    frames_sent: u64,
    last_delivery_at: SimTime,
    last_delivery_hops: u32,
}

/// A simulated network; see the [module documentation](self).
#[derive(Debug)]
pub struct Simulation {
    config: SimConfig,
    rng: SimRng,
    start: Instant,
    now: SimTime,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    nodes: Vec<SimNode>,
    links: Vec<Link>,
    raw_peers: Vec<RawPeer>,
    tracks: Vec<Track>,
    track_index: HashMap<MessageId, usize>,
    frames_sent: u64,
    deliveries: u64,
    disconnects: u64,
    /// Reused between calls.
    actions: Vec<Action>,
    /// Scratch for `process`: tracked messages delivered, by where their payload lies.
    delivered_at: Vec<(*const u8, usize)>,
}

fn nanos(duration: Duration) -> SimTime {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl Simulation {
    /// Builds the network and connects every link at time zero.
    ///
    /// # Panics
    /// If `config.node` is invalid (see [`Config::validate`]).
    pub fn new(topology: Topology, config: SimConfig) -> Self {
        if let Err(error) = config.node.validate() {
            panic!("invalid node configuration: {error}");
        }
        let mut rng = SimRng::new(config.seed);
        let (low, high) = (nanos(config.latency.0), nanos(config.latency.1));
        let mut nodes: Vec<SimNode> = (0..topology.nodes())
            .map(|_| SimNode {
                node: Some(Node::new(config.node.clone()).expect("validated")),
                links: Vec::new(),
                timer: None,
                frames_received_before: 0,
            })
            .collect();
        let links = topology
            .edges()
            .iter()
            .enumerate()
            .map(|(index, &(a, b))| {
                nodes[a].links.push(index);
                nodes[b].links.push(index);
                Link {
                    ends: [a, b],
                    latency: rng.between(low, high),
                    up: false,
                    epoch: 0,
                    pipes: Default::default(),
                }
            })
            .collect();
        let mut sim = Simulation {
            config,
            rng,
            start: Instant::now(),
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            links,
            raw_peers: Vec::new(),
            tracks: Vec::new(),
            track_index: HashMap::new(),
            frames_sent: 0,
            deliveries: 0,
            disconnects: 0,
            actions: Vec::new(),
            delivered_at: Vec::new(),
        };
        for link in 0..sim.links.len() {
            sim.connect(link);
        }
        if let Some(churn) = sim.config.churn {
            sim.schedule_crash(churn);
        }
        sim
    }

    /// Virtual time since the start of the run.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.now)
    }

    /// The node at `index`, or `None` while it is crashed.
    pub fn node(&self, index: usize) -> Option<&Node> {
        self.nodes.get(index)?.node.as_ref()
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the network has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Publishes `payload` at node `index` now. A crashed node publishes nothing (the
    /// message is still tracked, reaching no one).
    ///
    /// # Panics
    /// If `index` is out of range.
    pub fn publish(
        &mut self,
        index: usize,
        payload: impl Into<Bytes>,
    ) -> Result<MessageId, PublishError> {
        let now = self.instant();
        let payload = payload.into();
        let id = match self.nodes[index].node.as_mut() {
            Some(node) => node.publish(now, payload)?.id(),
            None => MessageId::of(&payload),
        };
        let track = self.track(id, index);
        self.process_after(index, Some(track));
        Ok(id)
    }

    /// Connects a raw peer to node `index`: bytes the test sends through it with
    /// [`send_raw`](Self::send_raw) go to the node as they are, and what the node sends
    /// it is read and discarded. Returns the raw peer's handle.
    ///
    /// # Panics
    /// If `index` is out of range.
    pub fn attach_raw_peer(&mut self, index: usize) -> usize {
        let handle = self.raw_peers.len();
        self.raw_peers.push(RawPeer {
            node: index,
            disconnected: None,
        });
        let now = self.instant();
        if let Some(node) = self.nodes[index].node.as_mut() {
            node.peer_connected(now, PeerId(RAW_PEER | handle as u64));
        }
        self.process(index);
        handle
    }

    /// Sends `bytes` from a raw peer to its node, immediately.
    pub fn send_raw(&mut self, raw_peer: usize, bytes: &[u8]) {
        let Some(raw) = self.raw_peers.get(raw_peer) else {
            return;
        };
        let index = raw.node;
        let now = self.instant();
        if let Some(node) = self.nodes[index].node.as_mut() {
            node.handle_received(now, PeerId(RAW_PEER | raw_peer as u64), bytes);
        }
        self.process(index);
    }

    /// Why the node disconnected this raw peer, if it did.
    pub fn raw_peer_disconnected(&self, raw_peer: usize) -> Option<DisconnectReason> {
        self.raw_peers.get(raw_peer)?.disconnected
    }

    /// Runs until nothing is left to happen, or 24 virtual hours pass (with churn or
    /// link failures something always is). Returns whether the network fell quiet.
    pub fn run_until_quiet(&mut self) -> bool {
        self.run_for(Duration::from_secs(24 * 3600))
    }

    /// Runs events for up to `duration` of virtual time. Returns whether the network fell
    /// quiet (no event left) within it.
    pub fn run_for(&mut self, duration: Duration) -> bool {
        let end = self.now.saturating_add(nanos(duration));
        while let Some(Reverse(next)) = self.queue.peek() {
            if next.at > end {
                self.now = end;
                return false;
            }
            let Some(Reverse(Scheduled { at, event, .. })) = self.queue.pop() else {
                break;
            };
            self.now = at;
            self.handle(event);
        }
        true
    }

    /// The figures of the run so far.
    pub fn report(&self) -> Report {
        let nodes = self.nodes.len();
        let messages = self
            .tracks
            .iter()
            .map(|track| MessageReport {
                id: track.id,
                origin: track.origin,
                reached: track.hops.iter().filter(|&&h| h != u32::MAX).count(),
                delivered_again: track.deliveries.iter().filter(|&&d| d > 1).count(),
                frames_sent: track.frames_sent,
                last_delivery_hops: track.last_delivery_hops,
                last_delivery_after: Duration::from_nanos(
                    track.last_delivery_at - track.published_at,
                ),
            })
            .collect();
        let frames_received = self
            .nodes
            .iter()
            .map(|n| {
                n.frames_received_before + n.node.as_ref().map_or(0, |node| node.stats().frames_in)
            })
            .sum();
        Report {
            elapsed: self.elapsed(),
            nodes,
            messages,
            frames_sent: self.frames_sent,
            frames_received,
            deliveries: self.deliveries,
            disconnects: self.disconnects,
        }
    }

    fn instant(&self) -> Instant {
        self.start + Duration::from_nanos(self.now)
    }

    fn schedule(&mut self, at: SimTime, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            event,
        }));
    }

    /// Starts tracking a message (if new); returns its track index.
    fn track(&mut self, id: MessageId, origin: usize) -> usize {
        let nodes = self.nodes.len();
        let index = *self.track_index.entry(id).or_insert(self.tracks.len());
        if index == self.tracks.len() {
            let mut hops = vec![u32::MAX; nodes];
            hops[origin] = 0;
            self.tracks.push(Track {
                id,
                origin,
                published_at: self.now,
                hops,
                deliveries: vec![0; nodes],
                frames_sent: 0,
                last_delivery_at: self.now,
                last_delivery_hops: 0,
            });
        }
        index
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Arrive { link, side, epoch } => self.arrive(link, side, epoch),
            Event::Timer { node } => {
                if self.nodes[node].timer == Some(self.now) {
                    self.nodes[node].timer = None;
                    let now = self.instant();
                    if let Some(n) = self.nodes[node].node.as_mut() {
                        n.handle_timeout(now);
                    }
                    self.process(node);
                }
            }
            Event::Reconnect { link } => self.connect(link),
            Event::Crash => {
                let Some(churn) = self.config.churn else {
                    return;
                };
                let victim = self.rng.below(self.nodes.len() as u64) as usize;
                if let Some(node) = self.nodes[victim].node.take() {
                    self.nodes[victim].frames_received_before += node.stats().frames_in;
                    self.nodes[victim].timer = None;
                    for link in self.nodes[victim].links.clone() {
                        self.break_link(link, false);
                    }
                    let at = self.now.saturating_add(nanos(churn.downtime));
                    self.schedule(at, Event::Restart { node: victim });
                }
                self.schedule_crash(churn);
            }
            Event::Restart { node } => {
                let fresh = Node::new(self.config.node.clone()).expect("validated");
                self.nodes[node].node = Some(fresh);
                for link in self.nodes[node].links.clone() {
                    self.connect(link);
                }
            }
        }
    }

    fn schedule_crash(&mut self, churn: Churn) {
        let gap = self.rng.below(nanos(churn.mean_interval).saturating_mul(2));
        let at = self.now.saturating_add(gap.max(1));
        self.schedule(at, Event::Crash);
    }

    /// Opens a connection over `link` if both ends are up.
    fn connect(&mut self, link: usize) {
        let [a, b] = self.links[link].ends;
        if self.links[link].up || self.nodes[a].node.is_none() || self.nodes[b].node.is_none() {
            return;
        }
        self.links[link].up = true;
        let now = self.instant();
        for side in 0..2 {
            let end = self.links[link].ends[side];
            if let Some(node) = self.nodes[end].node.as_mut() {
                node.peer_connected(now, Self::peer_id(link, side));
            }
        }
        self.process(a);
        self.process(b);
    }

    /// The id under which `ends[side]` knows the other end of `link`.
    fn peer_id(link: usize, side: usize) -> PeerId {
        PeerId(((link as u64) << 1) | side as u64)
    }

    /// The inverse of [`peer_id`](Self::peer_id): the link and the side that holds the id.
    fn link_of(peer: PeerId) -> (usize, usize) {
        ((peer.0 >> 1) as usize, (peer.0 & 1) as usize)
    }

    /// Breaks the connection on `link`; both ends that are up are told. With
    /// `reconnect`, it comes back after the configured delay.
    fn break_link(&mut self, link: usize, reconnect: bool) {
        let state = &mut self.links[link];
        if !state.up {
            return;
        }
        state.up = false;
        state.epoch += 1;
        state.pipes = Default::default();
        let now = self.instant();
        for side in 0..2 {
            let end = self.links[link].ends[side];
            if let Some(node) = self.nodes[end].node.as_mut() {
                node.peer_disconnected(now, Self::peer_id(link, side));
            }
        }
        if reconnect {
            let at = self.now.saturating_add(nanos(self.config.reconnect_after));
            self.schedule(at, Event::Reconnect { link });
        }
    }

    /// Hands the receiver of `link`'s `side` pipe one read of the bytes that arrived.
    fn arrive(&mut self, link: usize, side: usize, epoch: u64) {
        let now = self.now;
        let max_read = self.config.max_read.max(1);
        let state = &mut self.links[link];
        if state.epoch != epoch || !state.up {
            return;
        }
        let pipe = &mut state.pipes[side];
        pipe.arrival_scheduled = false;
        let arrived: usize = pipe
            .in_flight
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, frame)| frame.wire_len())
            .sum::<usize>()
            - pipe.read_of_front;
        let read_len = if max_read == usize::MAX {
            arrived
        } else {
            self.rng.between(1, max_read.min(arrived) as u64) as usize
        };
        // Copy `read_len` bytes out of the in-flight frames into a buffer of their own, as
        // a socket read would, and hand it over without a second copy.
        let mut buffer = BytesMut::with_capacity(read_len);
        let pipe = &mut self.links[link].pipes[side];
        while buffer.len() < read_len {
            let Some((_, frame)) = pipe.in_flight.front() else {
                break;
            };
            let mut offset = pipe.read_of_front;
            while offset < frame.wire_len() && buffer.len() < read_len {
                let [head, rest] = frame.parts();
                let part = match offset.checked_sub(head.len()) {
                    None => &head[offset..],
                    Some(in_rest) => &rest[in_rest..],
                };
                let take = part.len().min(read_len - buffer.len());
                buffer.extend_from_slice(&part[..take]);
                offset += take;
            }
            if offset == frame.wire_len() {
                pipe.in_flight.pop_front();
                pipe.read_of_front = 0;
            } else {
                pipe.read_of_front = offset;
            }
        }
        let next_arrival = pipe.in_flight.front().map(|(at, _)| (*at).max(now));
        let [sender, receiver] = [self.links[link].ends[side], self.links[link].ends[1 - side]];
        let instant = self.instant();
        if let Some(node) = self.nodes[sender].node.as_mut() {
            node.handle_flushed(instant, Self::peer_id(link, side), buffer.len());
        }
        if let Some(node) = self.nodes[receiver].node.as_mut() {
            node.handle_received_bytes(instant, Self::peer_id(link, 1 - side), buffer.freeze());
        }
        if let Some(at) = next_arrival {
            self.links[link].pipes[side].arrival_scheduled = true;
            let epoch = self.links[link].epoch;
            self.schedule(at, Event::Arrive { link, side, epoch });
        }
        self.process(sender);
        self.process(receiver);
    }

    /// Carries out everything node `index` asked for, then re-arms its timer.
    fn process(&mut self, index: usize) {
        self.process_after(index, None);
    }

    /// [`process`](Self::process), after node `index` published the message tracked as
    /// `published`, if any.
    fn process_after(&mut self, index: usize, published: Option<usize>) {
        let Some(node) = self.nodes[index].node.as_mut() else {
            return;
        };
        let mut actions = std::mem::take(&mut self.actions);
        actions.extend(node.drain_actions());
        let mut raw_flushed = Vec::new();
        // Tracked messages delivered here, by where their payload lies: the Sends that
        // forward them carry the same bytes (a message's Deliver precedes them).
        let mut delivered = std::mem::take(&mut self.delivered_at);
        delivered.clear();
        for action in actions.drain(..) {
            match action {
                Action::Send { peer, frames } => {
                    if let Some(track) = published {
                        self.tracks[track].frames_sent += frames.count() as u64;
                    } else if !delivered.is_empty() {
                        for payload in frames.payloads() {
                            let at = payload.as_ptr();
                            if let Some(&(_, track)) = delivered.iter().find(|(p, _)| *p == at) {
                                self.tracks[track].frames_sent += 1;
                            }
                        }
                    }
                    if peer.0 & RAW_PEER != 0 {
                        raw_flushed.push((peer, frames.wire_len()));
                    } else {
                        self.send(peer, frames);
                    }
                }
                Action::Deliver(delivery) => {
                    if let Some(&track) = self.track_index.get(&delivery.id) {
                        if !delivery.payload.is_empty() {
                            delivered.push((delivery.payload.as_ptr(), track));
                        }
                    }
                    self.record_delivery(index, delivery.id, delivery.from)
                }
                Action::Disconnect { peer, reason } => {
                    self.disconnects += 1;
                    if peer.0 & RAW_PEER != 0 {
                        let raw = (peer.0 & !RAW_PEER) as usize;
                        self.raw_peers[raw].disconnected = Some(reason);
                    } else {
                        self.break_link(Self::link_of(peer).0, false);
                    }
                }
            }
        }
        self.actions = actions;
        self.delivered_at = delivered;
        let now = self.instant();
        // Carrying out the actions can change the node (flushes, broken links): ask for its
        // deadline afterwards.
        let Some(node) = self.nodes[index].node.as_mut() else {
            return;
        };
        for (peer, bytes) in raw_flushed {
            node.handle_flushed(now, peer, bytes);
        }
        let deadline = node.poll_timeout();
        self.arm_timer(index, deadline);
    }

    fn arm_timer(&mut self, index: usize, deadline: Option<Instant>) {
        let at = deadline.map(|d| nanos(d.saturating_duration_since(self.start)).max(self.now));
        if at.is_some() && at != self.nodes[index].timer {
            self.nodes[index].timer = at;
            if let Some(at) = at {
                self.schedule(at, Event::Timer { node: index });
            }
        }
    }

    fn send(&mut self, peer: PeerId, frame: Frames) {
        let (link, side) = Self::link_of(peer);
        self.frames_sent += frame.count() as u64;
        if self.config.link_failure > 0.0 && self.rng.chance(self.config.link_failure) {
            self.break_link(link, true);
            return;
        }
        let jitter = self.rng.below(nanos(self.config.jitter).saturating_add(1));
        let state = &mut self.links[link];
        let pipe = &mut state.pipes[side];
        let at = self
            .now
            .saturating_add(state.latency)
            .saturating_add(jitter)
            .max(pipe.last_arrival);
        pipe.last_arrival = at;
        pipe.in_flight.push_back((at, frame));
        if !pipe.arrival_scheduled {
            pipe.arrival_scheduled = true;
            let epoch = state.epoch;
            self.schedule(at, Event::Arrive { link, side, epoch });
        }
    }

    fn record_delivery(&mut self, index: usize, id: MessageId, from: PeerId) {
        self.deliveries += 1;
        let Some(&track) = self.track_index.get(&id) else {
            return;
        };
        let sender = if from.0 & RAW_PEER != 0 {
            None
        } else {
            let (link, side) = Self::link_of(from);
            Some(self.links[link].ends[1 - side])
        };
        let now = self.now;
        let track = &mut self.tracks[track];
        let hops = sender.map(|s| track.hops[s].saturating_add(1)).unwrap_or(1);
        track.deliveries[index] = track.deliveries[index].saturating_add(1);
        if track.hops[index] == u32::MAX {
            track.hops[index] = hops;
        }
        track.last_delivery_at = now;
        track.last_delivery_hops = hops;
    }
}
