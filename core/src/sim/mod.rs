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

mod config;
mod link;
mod report;
mod rng;
mod schedule;
mod topology;
mod tracking;

pub use config::{Churn, SimConfig};
pub use report::{MessageReport, Report};
pub use rng::SimRng;
pub use topology::Topology;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::{Action, Direction, DisconnectReason, Frames, MessageId, Node, PeerId, PublishError};
use link::{link_of, peer_id, Link, RAW_PEER};
use schedule::{nanos, Event, Schedule, SimTime};
use tracking::Tracker;

/// A simulated node: its core, and the links of the graph it has.
#[derive(Debug)]
struct SimNode {
    /// `None` while crashed.
    node: Option<Node>,
    links: Vec<usize>,
    timer: Option<SimTime>,
    /// Counters of earlier incarnations, kept across restarts.
    frames_received_before: u64,
    /// Times it crashed.
    crashes: u32,
    /// Payloads published here that the node has not taken yet (it was full), with
    /// their tracks, oldest first: an application's `publish().await` waiting.
    outbox: VecDeque<(Bytes, usize)>,
    /// Stopped as by SIGSTOP: reads nothing, sends nothing, runs no timer.
    frozen: bool,
}

/// A connection the test drives by hand.
#[derive(Debug)]
struct RawPeer {
    node: usize,
    disconnected: Option<DisconnectReason>,
}

/// A simulated network; see the [module documentation](self).
#[derive(Debug)]
pub struct Simulation {
    config: SimConfig,
    rng: SimRng,
    start: Instant,
    now: SimTime,
    schedule: Schedule,
    nodes: Vec<SimNode>,
    links: Vec<Link>,
    raw_peers: Vec<RawPeer>,
    tracker: Tracker,
    frames_sent: u64,
    wire_bytes: u64,
    deliveries: u64,
    payload_bytes_delivered: u64,
    disconnects: u64,
    /// Reused between calls.
    actions: Vec<Action>,
    /// Scratch for `process`: tracked messages delivered, with their payloads.
    delivered_at: Vec<(Bytes, usize)>,
}

impl Simulation {
    /// Builds the network and connects every link at time zero.
    ///
    /// # Panics
    /// If `config.node` is invalid (see [`Config::validate`](crate::Config::validate)).
    pub fn new(topology: Topology, config: SimConfig) -> Self {
        if let Err(error) = config.node.validate() {
            panic!("invalid node configuration: {error}");
        }
        let mut rng = SimRng::new(config.seed);
        let (low, high) = (nanos(config.latency.0), nanos(config.latency.1));
        let mut nodes: Vec<SimNode> = (0..topology.nodes())
            .map(|index| SimNode {
                node: Some(Node::new(config.node_config(index)).expect("validated")),
                links: Vec::new(),
                timer: None,
                frames_received_before: 0,
                crashes: 0,
                outbox: VecDeque::new(),
                frozen: false,
            })
            .collect();
        let links = topology
            .edges()
            .iter()
            .enumerate()
            .map(|(index, &(a, b))| {
                nodes[a].links.push(index);
                nodes[b].links.push(index);
                Link::new(a, b, rng.between(low, high))
            })
            .collect();
        let mut sim = Simulation {
            config,
            rng,
            start: Instant::now(),
            now: 0,
            schedule: Schedule::default(),
            nodes,
            links,
            raw_peers: Vec::new(),
            tracker: Tracker::default(),
            frames_sent: 0,
            wire_bytes: 0,
            deliveries: 0,
            payload_bytes_delivered: 0,
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

    /// The first node at `index` or after it (wrapping around) that is up, if any is:
    /// somewhere to publish while some nodes are down.
    ///
    /// ```
    /// use std::time::Duration;
    /// use gossip_core::sim::{SimConfig, Simulation, Topology};
    ///
    /// let mut sim = Simulation::new(Topology::ring(4), SimConfig::default());
    /// assert_eq!(sim.first_up_from(6), Some(2));
    /// sim.restart_nodes(1.0, Duration::from_millis(100));
    /// assert_eq!(sim.first_up_from(0), None);
    /// ```
    pub fn first_up_from(&self, index: usize) -> Option<usize> {
        let nodes = self.nodes.len();
        (0..nodes)
            .map(|k| (index % nodes + k) % nodes)
            .find(|&i| self.nodes[i].node.is_some())
    }

    /// How many times the node at `index` has crashed (see [`SimConfig::churn`]): a
    /// node that never did still holds everything it ever received, so what it has,
    /// every node should get.
    pub fn crashes(&self, index: usize) -> u32 {
        self.nodes.get(index).map_or(0, |node| node.crashes)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the network has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Publishes `payload` at node `index` now, or as soon as the node takes it (while
    /// it is full, see [`Overload::PauseReading`](crate::Overload::PauseReading),
    /// payloads wait in order, as an application awaiting `publish` would). A crashed
    /// node publishes nothing (the message is still tracked, reaching no one), and a
    /// node that crashes loses what was waiting.
    ///
    /// # Panics
    /// If `index` is out of range.
    pub fn publish(
        &mut self,
        index: usize,
        payload: impl Into<Bytes>,
    ) -> Result<MessageId, PublishError> {
        let payload = payload.into();
        let max = self.config.node.max_frame_len;
        if payload.len() > max {
            let len = payload.len();
            return Err(PublishError::TooLarge { len, max });
        }
        let id = MessageId::of(&payload);
        let message = (id, payload.clone());
        let track = self
            .tracker
            .track(message, index, self.nodes.len(), self.now);
        if self.nodes[index].node.is_some() {
            self.nodes[index].outbox.push_back((payload, track));
            self.process(index);
        }
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
            node.peer_connected(now, PeerId(RAW_PEER | handle as u64), Direction::Inbound);
        }
        self.process(index);
        handle
    }

    /// Whether the raw peer's node reads it now: a client that writes only then behaves
    /// like a TCP writer whose window closes while the node pauses it. (`send_raw`
    /// hands the bytes over whatever this says.)
    pub fn raw_peer_is_read(&self, raw_peer: usize) -> bool {
        let Some(raw) = self.raw_peers.get(raw_peer) else {
            return false;
        };
        let id = PeerId(RAW_PEER | raw_peer as u64);
        self.node(raw.node).is_some_and(|node| node.is_reading(id))
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

    /// Stops node `index` as SIGSTOP would a process: from now on it reads nothing,
    /// sends nothing and runs no timer, so its peers see a peer that takes none of its
    /// bytes (their slow-peer rule is what gets them out of it).
    ///
    /// # Panics
    /// If `index` is out of range.
    pub fn freeze(&mut self, index: usize) {
        self.nodes[index].frozen = true;
    }

    /// Cuts `fraction` (0 to 1) of the links that are up, chosen at random, now; each
    /// comes back after `downtime`. Returns how many were cut.
    pub fn cut_links(&mut self, fraction: f64, downtime: Duration) -> usize {
        let mut cut = 0;
        for link in 0..self.links.len() {
            if !self.links[link].up || !self.rng.chance(fraction) {
                continue;
            }
            self.break_link(link, false);
            let at = self.now.saturating_add(nanos(downtime));
            self.schedule.push(at, Event::Reconnect { link });
            let [a, b] = self.links[link].ends;
            self.process(a);
            self.process(b);
            cut += 1;
        }
        cut
    }

    /// Crashes `fraction` (0 to 1) of the nodes that are up, chosen at random, now: their
    /// links break (what was in flight on them is lost) and each restarts empty (a
    /// fresh [`Node`], as a restarted process) after `downtime`, and reconnects. Returns
    /// how many crashed; [`crashes`](Self::crashes) tells which.
    ///
    /// ```
    /// use std::time::Duration;
    /// use gossip_core::sim::{SimConfig, Simulation, Topology};
    ///
    /// let mut sim = Simulation::new(Topology::ring(10), SimConfig::default());
    /// assert_eq!(sim.restart_nodes(1.0, Duration::from_millis(100)), 10);
    /// assert!(sim.node(3).is_none());
    /// sim.run_for(Duration::from_millis(100));
    /// assert!(sim.node(3).is_some() && sim.crashes(3) == 1);
    /// ```
    pub fn restart_nodes(&mut self, fraction: f64, downtime: Duration) -> usize {
        let mut crashed = 0;
        for index in 0..self.nodes.len() {
            if self.nodes[index].node.is_some() && self.rng.chance(fraction) {
                self.crash(index, downtime);
                crashed += 1;
            }
        }
        crashed
    }

    /// Stops the random crashes of [`SimConfig::churn`]: nodes that are down come back
    /// as planned, and none crashes from now on, so the run can fall quiet.
    pub fn stop_churn(&mut self) {
        self.config.churn = None;
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
        while let Some((at, event)) = self.schedule.pop_due(end) {
            self.now = at;
            self.handle(event);
        }
        if self.schedule.is_empty() {
            return true;
        }
        self.now = end;
        false
    }

    /// The figures of the run so far.
    pub fn report(&self) -> Report {
        let nodes = self.nodes.len();
        let messages = self.tracker.reports();
        let frames_received = self
            .nodes
            .iter()
            .map(|n| {
                n.frames_received_before + n.node.as_ref().map_or(0, |node| node.stats().frames_in)
            })
            .sum();
        let stats: Vec<crate::Stats> = self
            .nodes
            .iter()
            .filter_map(|n| n.node.as_ref().map(Node::stats))
            .collect();
        let sum = |counter: fn(&crate::Stats) -> u64| stats.iter().map(counter).sum::<u64>();
        Report {
            elapsed: self.elapsed(),
            nodes,
            messages,
            frames_sent: self.frames_sent,
            frames_received,
            deliveries: self.deliveries,
            disconnects: self.disconnects,
            wire_bytes: self.wire_bytes,
            payload_bytes_delivered: self.payload_bytes_delivered,
            control_frames: sum(|s| s.control_frames_out),
            repairs: sum(|s| s.repairs),
        }
    }

    fn instant(&self) -> Instant {
        self.start + Duration::from_nanos(self.now)
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Arrive { link, side, epoch } => self.arrive(link, side, epoch),
            Event::Timer { node } => {
                if self.nodes[node].timer == Some(self.now) && !self.nodes[node].frozen {
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
                self.crash(victim, churn.downtime);
                self.schedule_crash(churn);
            }
            Event::Restart { node } => {
                let fresh = Node::new(self.config.node_config(node)).expect("validated");
                self.nodes[node].node = Some(fresh);
                for link in self.nodes[node].links.clone() {
                    self.connect(link);
                }
            }
        }
    }

    /// Crashes node `index` now, if it is up: its links break (what was in flight on
    /// them is lost), what waited in its outbox is gone, and it restarts empty after
    /// `downtime`.
    fn crash(&mut self, index: usize, downtime: Duration) {
        let Some(node) = self.nodes[index].node.take() else {
            return;
        };
        let crashed = &mut self.nodes[index];
        crashed.frames_received_before += node.stats().frames_in;
        crashed.crashes += 1;
        crashed.timer = None;
        crashed.outbox.clear();
        for link in crashed.links.clone() {
            self.break_link(link, false);
            // The neighbour may act on losing the peer at once.
            let [a, b] = self.links[link].ends;
            self.process(if a == index { b } else { a });
        }
        let at = self.now.saturating_add(nanos(downtime));
        self.schedule.push(at, Event::Restart { node: index });
    }

    fn schedule_crash(&mut self, churn: Churn) {
        let gap = self.rng.below(nanos(churn.mean_interval).saturating_mul(2));
        let at = self.now.saturating_add(gap.max(1));
        self.schedule.push(at, Event::Crash);
    }

    /// Opens a connection over `link` if both ends are up.
    fn connect(&mut self, link: usize) {
        let [a, b] = self.links[link].ends;
        if self.links[link].up || self.nodes[a].node.is_none() || self.nodes[b].node.is_none() {
            return;
        }
        self.links[link].up = true;
        let now = self.instant();
        let plumtree = [a, b].map(|end| self.config.node_config(end).plumtree.is_some());
        for side in 0..2 {
            let [end, other] = [self.links[link].ends[side], self.links[link].ends[1 - side]];
            if let Some(node) = self.nodes[end].node.as_mut() {
                // The first end of a link dialled the second.
                let direction = [Direction::Outbound, Direction::Inbound][side];
                let peer = peer_id(link, side);
                match plumtree {
                    [true, true] => {
                        node.plumtree_peer_connected(now, peer, direction, other as u64)
                    }
                    _ => node.peer_connected(now, peer, direction),
                }
            }
        }
        self.process(a);
        self.process(b);
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
                node.peer_disconnected(now, peer_id(link, side));
            }
        }
        if reconnect {
            let at = self.now.saturating_add(nanos(self.config.reconnect_after));
            self.schedule.push(at, Event::Reconnect { link });
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
        let receiver = state.ends[1 - side];
        if pipe.paused || self.nodes[receiver].frozen {
            // The bytes wait in the pipe until the receiver reads again.
            return;
        }
        let arrived = pipe.arrived(now);
        let read_len = if max_read == usize::MAX {
            // Whole reads: everything that arrived, except that a run of frames that
            // arrived whole is read on its own (the rest at once after it), as its bytes
            // then need no copy.
            pipe.whole_front_run(now).unwrap_or(arrived)
        } else {
            self.rng.between(1, max_read.min(arrived) as u64) as usize
        };
        let pipe = &mut self.links[link].pipes[side];
        let buffer = pipe.read(read_len);
        let next_arrival = pipe.next_arrival(now);
        let [sender, receiver] = [self.links[link].ends[side], self.links[link].ends[1 - side]];
        let instant = self.instant();
        if let Some(node) = self.nodes[sender].node.as_mut() {
            node.handle_flushed(instant, peer_id(link, side), buffer.len());
        }
        if let Some(node) = self.nodes[receiver].node.as_mut() {
            node.handle_received_bytes(instant, peer_id(link, 1 - side), buffer);
        }
        if let Some(at) = next_arrival {
            self.links[link].pipes[side].arrival_scheduled = true;
            let epoch = self.links[link].epoch;
            self.schedule.push(at, Event::Arrive { link, side, epoch });
        }
        self.process(sender);
        self.process(receiver);
    }

    /// Carries out everything node `index` asked for, publishes what waits in its
    /// outbox while the node takes it, then re-arms its timer.
    fn process(&mut self, index: usize) {
        if self.nodes[index].frozen {
            return;
        }
        let mut published = None;
        loop {
            let Some(node) = self.nodes[index].node.as_mut() else {
                return;
            };
            let mut actions = std::mem::take(&mut self.actions);
            actions.extend(node.drain_actions());
            if actions.is_empty() {
                self.actions = actions;
                if !node.can_publish() {
                    break;
                }
                let Some((payload, track)) = self.nodes[index].outbox.pop_front() else {
                    break;
                };
                let now = self.instant();
                // Checked against `max_frame_len`: it is taken, unless it does not fit the
                // queues; then it waits until they have drained (the node is congested).
                let node = self.nodes[index].node.as_mut();
                let outcome = node.map(|node| node.publish(now, payload.clone()));
                if let Some(Err(PublishError::Congested)) = outcome {
                    self.nodes[index].outbox.push_front((payload, track));
                    break;
                }
                published = Some(track);
                continue;
            }
            self.carry_out(index, &mut actions, published.take());
            self.actions = actions;
        }
        // Carrying out the actions can change the node (flushes, broken links): ask for
        // its deadline afterwards.
        if let Some(node) = self.nodes[index].node.as_ref() {
            let deadline = node.poll_timeout();
            self.arm_timer(index, deadline);
        }
    }

    /// Carries out `actions` of node `index`; `published` is the track of the message
    /// it just published, if these are that publish's actions.
    fn carry_out(&mut self, index: usize, actions: &mut Vec<Action>, published: Option<usize>) {
        let mut raw_flushed = Vec::new();
        // The simulated application takes every delivery at once.
        let (mut taken, mut taken_bytes) = (0, 0);
        // Tracked messages delivered here, with their payloads: the Sends that forward
        // them carry the same bytes (a message's Deliver precedes them), or a copy (a
        // node between plain and plumtree peers frames them anew).
        let mut delivered = std::mem::take(&mut self.delivered_at);
        delivered.clear();
        for action in actions.drain(..) {
            match action {
                Action::Send { peer, frames } => {
                    if let Some(track) = published {
                        self.tracker.frames_sent(track, frames.count() as u64);
                    } else if !delivered.is_empty() {
                        for payload in frames.payloads() {
                            let at = payload.as_ptr();
                            let found = delivered
                                .iter()
                                .find(|(p, _)| p.as_ptr() == at)
                                .or_else(|| delivered.iter().find(|(p, _)| p[..] == *payload));
                            if let Some(&(_, track)) = found {
                                self.tracker.frames_sent(track, 1);
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
                    taken += 1;
                    taken_bytes += delivery.payload.len();
                    self.payload_bytes_delivered += delivery.payload.len() as u64;
                    let track = self.tracker.get(&delivery.payload);
                    if let Some(track) = track.filter(|_| !delivery.payload.is_empty()) {
                        delivered.push((delivery.payload.clone(), track));
                    }
                    self.record_delivery(index, track, delivery.from)
                }
                Action::Disconnect { peer, reason } => {
                    self.disconnects += 1;
                    if peer.0 & RAW_PEER != 0 {
                        let raw = (peer.0 & !RAW_PEER) as usize;
                        self.raw_peers[raw].disconnected = Some(reason);
                    } else {
                        let redial = self.config.redial_disconnects;
                        self.break_link(link_of(peer).0, redial);
                    }
                }
                // Raw peers are driven by the test, which sends when it likes.
                Action::PauseReading { peer } if peer.0 & RAW_PEER == 0 => {
                    self.set_reading(peer, false)
                }
                Action::ResumeReading { peer } if peer.0 & RAW_PEER == 0 => {
                    self.set_reading(peer, true)
                }
                Action::PauseReading { .. } | Action::ResumeReading { .. } => {}
            }
        }
        self.delivered_at = delivered;
        let now = self.instant();
        if let Some(node) = self.nodes[index].node.as_mut() {
            for (peer, bytes) in raw_flushed {
                node.handle_flushed(now, peer, bytes);
            }
            if taken > 0 {
                node.handle_delivered(now, taken, taken_bytes);
            }
        }
    }

    /// The node holding `peer` reads the pipe from that peer (or stops); bytes that
    /// waited are read at once.
    fn set_reading(&mut self, peer: PeerId, reading: bool) {
        let (link, side) = link_of(peer);
        let now = self.now;
        let state = &mut self.links[link];
        if !state.up {
            return;
        }
        let epoch = state.epoch;
        // `ends[side]` holds `peer`: the bytes from that peer come through the other pipe.
        let pipe = &mut state.pipes[1 - side];
        pipe.paused = !reading;
        if reading && !pipe.arrival_scheduled {
            if let Some(at) = pipe.next_arrival(now) {
                pipe.arrival_scheduled = true;
                let side = 1 - side;
                self.schedule.push(at, Event::Arrive { link, side, epoch });
            }
        }
    }

    fn arm_timer(&mut self, index: usize, deadline: Option<Instant>) {
        let at = deadline.map(|d| nanos(d.saturating_duration_since(self.start)).max(self.now));
        if at.is_some() && at != self.nodes[index].timer {
            self.nodes[index].timer = at;
            if let Some(at) = at {
                self.schedule.push(at, Event::Timer { node: index });
            }
        }
    }

    fn send(&mut self, peer: PeerId, frame: Frames) {
        let (link, side) = link_of(peer);
        self.frames_sent += frame.count() as u64;
        self.wire_bytes += frame.wire_len() as u64;
        if self.config.link_failure > 0.0 && self.rng.chance(self.config.link_failure) {
            self.break_link(link, true);
            return;
        }
        let jitter = self.rng.below(nanos(self.config.jitter).saturating_add(1));
        let state = &mut self.links[link];
        let pipe = &mut state.pipes[side];
        let sent = pipe.transmit(self.now, frame.wire_len(), self.config.bandwidth);
        let at = pipe.push(
            sent.saturating_add(state.latency).saturating_add(jitter),
            frame,
        );
        if !pipe.arrival_scheduled {
            pipe.arrival_scheduled = true;
            let epoch = state.epoch;
            self.schedule.push(at, Event::Arrive { link, side, epoch });
        }
    }

    /// Counts a delivery at node `index` from `from`, of the message of `track` if the
    /// simulation tracks it.
    fn record_delivery(&mut self, index: usize, track: Option<usize>, from: PeerId) {
        self.deliveries += 1;
        let Some(track) = track else {
            return;
        };
        let sender = if from.0 & RAW_PEER != 0 {
            None
        } else {
            let (link, side) = link_of(from);
            Some(self.links[link].ends[1 - side])
        };
        self.tracker.delivered(track, index, sender, self.now);
    }
}
