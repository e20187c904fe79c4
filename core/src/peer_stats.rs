//! What a node observed of each peer: [`PeerStats`], and which way it connected
//! ([`Direction`]).

use std::fmt;
use std::time::{Duration, Instant};

/// Which side opened a connection. Each direction has its own peer slots
/// ([`Config::max_outbound_peers`](crate::Config::max_outbound_peers),
/// [`Config::max_inbound_peers`](crate::Config::max_inbound_peers)), and only inbound
/// peers are ever evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// This node dialled the peer (a peer it chose).
    Outbound,
    /// The peer dialled this node.
    Inbound,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        })
    }
}

/// A snapshot of what a node observed of one connected peer, from
/// [`Node::peer_stats`](crate::Node::peer_stats) or [`Node::peers`](crate::Node::peers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerStats {
    /// Which side opened the connection.
    pub direction: Direction,
    /// When it connected (the `now` of [`Node::peer_connected`](crate::Node::peer_connected)).
    pub connected_at: Instant,
    /// Bytes received from it.
    pub bytes_in: u64,
    /// Complete frames received from it.
    pub frames_in: u64,
    /// Messages it was the first to bring: new to this node when they arrived.
    pub first_deliveries: u64,
    /// Messages it sent that this node already had.
    pub duplicates: u64,
    /// When it last brought a new message, if ever.
    pub last_first_delivery: Option<Instant>,
    /// Bytes queued for it now, as the queue budgets count them.
    pub queued_bytes: usize,
    /// Bytes held for the frame it is in the middle of sending (0 if none).
    pub partial_frame_bytes: usize,
    /// Whether the node reads it now (see [`Node::is_reading`](crate::Node::is_reading)).
    pub reading: bool,
}

impl PeerStats {
    /// The peer's score: how useful it has been to this node, the number of messages it
    /// brought first. Sending duplicates, bytes or nothing at all earns nothing (every
    /// flooding peer sends duplicates; an idle connection sends nothing); breaking the
    /// protocol, stalling or trickling a frame ends the connection instead. Eviction
    /// removes the inbound peer with the lowest score that is not
    /// [protected](Self::is_protected).
    pub fn score(&self) -> u64 {
        self.first_deliveries
    }

    /// Whether the peer brought a new message first within `protection` before `now`
    /// ([`Config::eviction_protection`](crate::Config::eviction_protection)): such a peer
    /// is never evicted.
    pub fn is_protected(&self, now: Instant, protection: Duration) -> bool {
        self.last_first_delivery
            .is_some_and(|at| now.saturating_duration_since(at) < protection)
    }
}
