//! What a simulation run measured.

use std::time::Duration;

use crate::MessageId;

/// Per-message figures of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageReport {
    /// The message id.
    pub id: MessageId,
    /// The node that published it.
    pub origin: usize,
    /// Nodes that have it: the origin plus every node it was delivered to.
    pub reached: usize,
    /// Nodes that had it delivered more than once (0 unless a seen-set bound was
    /// exceeded or a node restarted).
    pub delivered_again: usize,
    /// Frames carrying it that nodes sent.
    pub frames_sent: u64,
    /// Hops from the origin to the node that got it last.
    pub last_delivery_hops: u32,
    /// Time from publication to the last delivery.
    pub last_delivery_after: Duration,
}

impl MessageReport {
    /// Frames sent per useful delivery: 1.0 would be a perfect spanning tree.
    pub fn redundancy(&self) -> f64 {
        self.frames_sent as f64 / self.reached.saturating_sub(1).max(1) as f64
    }
}

/// Figures for a whole run, from [`Simulation::report`](super::Simulation::report).
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Virtual time elapsed.
    pub elapsed: Duration,
    /// Nodes in the simulation.
    pub nodes: usize,
    /// One entry per published message, in publication order.
    pub messages: Vec<MessageReport>,
    /// Frames nodes sent in all (plumtree control frames included).
    pub frames_sent: u64,
    /// Data frames (messages, plain or plumtree Gossip) nodes received in all.
    pub frames_received: u64,
    /// Bytes sent on every link, data and control, headers included.
    pub wire_bytes: u64,
    /// Payload bytes of every delivery.
    pub payload_bytes_delivered: u64,
    /// Plumtree control frames (IHave, Graft, Prune) sent by nodes up now.
    pub control_frames: u64,
    /// Messages that arrived after being grafted, at nodes up now.
    pub repairs: u64,
    /// Deliveries to the application, at all nodes.
    pub deliveries: u64,
    /// Peers disconnected by a node (protocol error, slow peer, too many peers).
    pub disconnects: u64,
}

impl Report {
    /// Relative message redundancy: frames received per useful delivery.
    pub fn redundancy(&self) -> f64 {
        self.frames_received as f64 / self.deliveries.max(1) as f64
    }

    /// Relative message redundancy as the plumtree paper counts it: data frames
    /// received per delivery, minus one (0 for a perfect spanning tree; flooding a graph
    /// of degree `d` gives about `d - 2`).
    pub fn rmr(&self) -> f64 {
        self.redundancy() - 1.0
    }

    /// Every byte on every link per payload byte delivered.
    pub fn wire_bytes_per_payload_byte(&self) -> f64 {
        self.wire_bytes as f64 / self.payload_bytes_delivered.max(1) as f64
    }

    /// The fewest nodes any message reached (`nodes` if there were no messages).
    pub fn min_coverage(&self) -> usize {
        self.messages
            .iter()
            .map(|m| m.reached)
            .min()
            .unwrap_or(self.nodes)
    }

    /// Whether every message reached every node exactly once.
    pub fn all_delivered_exactly_once(&self) -> bool {
        self.messages
            .iter()
            .all(|m| m.reached == self.nodes && m.delivered_again == 0)
    }

    /// The most hops any message needed.
    pub fn max_hops(&self) -> u32 {
        self.messages
            .iter()
            .map(|m| m.last_delivery_hops)
            .max()
            .unwrap_or(0)
    }

    /// The longest time any message took to reach its last node.
    pub fn max_delivery_time(&self) -> Duration {
        self.messages
            .iter()
            .map(|m| m.last_delivery_after)
            .max()
            .unwrap_or_default()
    }
}
