//! How the simulated network behaves.

use std::time::Duration;

use crate::plumtree::PlumtreeConfig;
use crate::Config;

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
    /// Whether a link that one of its nodes disconnected (a peer cut as slow, say)
    /// reconnects after `reconnect_after`, as the runtimes redial the peers they dial.
    /// Off by default: a node's own cut is then final, so a run with a node that never
    /// reads again ([`Simulation::freeze`](super::Simulation::freeze)) falls quiet once
    /// its peers cut it; with this on, its links would come back and be cut forever.
    pub redial_disconnects: bool,
    /// Bytes per second each direction of a link carries, or `None` for no limit. With
    /// a limit, frames queue at the sender while earlier ones are on the wire, so a fast
    /// publisher overloads the network and flow control can be watched at work.
    pub bandwidth: Option<u64>,
    /// Random node crashes, if any.
    pub churn: Option<Churn>,
    /// Nodes that speak only `flood` even when `node.plumtree` is set, for networks that
    /// mix both. (Every other node speaks plumtree when it is set, with its index as
    /// its [`NodeId`](crate::plumtree::NodeId); a link is plumtree when both ends are.)
    pub plain_nodes: Vec<usize>,
}

impl SimConfig {
    /// The configuration of node `index`: `node`, with plumtree under the node's own id
    /// unless it is one of `plain_nodes`.
    pub fn node_config(&self, index: usize) -> Config {
        let mut config = self.node.clone();
        config.plumtree = match self.plain_nodes.contains(&index) {
            true => None,
            false => config.plumtree.map(|plumtree| PlumtreeConfig {
                node_id: index as u64,
                ..plumtree
            }),
        };
        config
    }
}

impl Default for SimConfig {
    /// Latency 1–50 ms, 5 ms jitter, whole reads, no bandwidth limit, no failures, and
    /// a link a node cuts stays down.
    fn default() -> Self {
        SimConfig {
            seed: 0,
            node: Config::default(),
            latency: (Duration::from_millis(1), Duration::from_millis(50)),
            jitter: Duration::from_millis(5),
            max_read: usize::MAX,
            link_failure: 0.0,
            reconnect_after: Duration::from_millis(100),
            redial_disconnects: false,
            bandwidth: None,
            churn: None,
            plain_nodes: Vec::new(),
        }
    }
}

/// Random crash-and-restart of nodes. A restarted node starts from a fresh [`Node`](crate::Node)
/// (empty seen set) and reconnects its links.
#[derive(Debug, Clone, Copy)]
pub struct Churn {
    /// Time between two crashes, drawn uniformly from zero to twice this.
    pub mean_interval: Duration,
    /// How long a crashed node stays down.
    pub downtime: Duration,
}
