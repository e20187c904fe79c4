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
mod events;
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

use crate::{Action, Direction, DisconnectReason, MessageId, Node, PeerId, PublishError};
use link::{Link, RAW_PEER};
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
}
