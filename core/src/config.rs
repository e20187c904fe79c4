//! Limits and policies of a [`Node`](crate::Node), each with a documented default.

use std::time::Duration;

use thiserror::Error;

use crate::{SeenSet, HEADER_LEN};

/// Every limit a node enforces. All fields are public; start from [`Config::default`].
///
/// Worst-case memory of one node, beyond the application's own copies of delivered
/// payloads, is about `seen_budget_bytes + total_queue_bytes + max_peers * (max_frame_len
/// + read size)`: the seen set, queued output, and one partial frame per peer.
///
/// ```
/// use std::time::Duration;
/// use gossip_core::{Config, Node};
///
/// let config = Config {
///     max_frame_len: 64 * 1024,
///     seen_retention: Duration::from_secs(30),
///     ..Config::default()
/// };
/// let node = Node::new(config)?;
/// # Ok::<(), gossip_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Largest payload accepted from a peer or from [`publish`](crate::Node::publish).
    /// A peer announcing more is disconnected before anything is allocated for it.
    ///
    /// Default 1 MiB: room for transactions, votes and small blocks, while a peer can pin
    /// at most 1 MiB of partial frame in its decoder. At most `u32::MAX`.
    pub max_frame_len: usize,
    /// Most peers connected at once; one more is disconnected with
    /// [`DisconnectReason::TooManyPeers`](crate::DisconnectReason::TooManyPeers).
    /// Default 128.
    pub max_peers: usize,
    /// Heap bytes the seen set may use; its capacity in ids is derived from it with
    /// [`SeenSet::capacity_for_budget`]. Default 32 MiB: each id is remembered until at
    /// least 458,751 newer ones have arrived (it uses 17 MiB of the budget: its two
    /// tables grow by doubling).
    pub seen_budget_bytes: usize,
    /// How long an id is remembered at least (unless the seen set's capacity of newer ids
    /// arrives first); it is forgotten by twice this. Default 5 minutes.
    ///
    /// Exactly-once holds while every copy of a message reaches a node within
    /// `min(seen_retention, time for the seen set's capacity of newer messages to
    /// arrive)` of its first copy. A copy arriving later is taken for a new message:
    /// delivered again and flooded again (the flood dies out at nodes that still
    /// remember it).
    pub seen_retention: Duration,
    /// Bytes that may be queued for one peer (sent but not yet reported flushed) before
    /// it is *full*. Each frame counts its wire length plus [`QUEUED_FRAME_OVERHEAD`], so
    /// tiny messages cannot queue many times the budget in bookkeeping. What happens to
    /// a full peer's messages is [`overload`](Self::overload)'s choice: by default the
    /// node reads more slowly (nothing is lost); with [`Overload::Shed`] a message that
    /// does not fit is dropped for that peer and counted in
    /// [`Stats::frames_shed`](crate::Stats::frames_shed). A full peer stops being full
    /// once its queue drains to half. Default 4 MiB.
    pub peer_queue_bytes: usize,
    /// Bytes that may be queued across all peers, counted the same way; past it the
    /// whole node is full. Default 64 MiB.
    pub total_queue_bytes: usize,
    /// A peer that leaves its queued bytes unread this long while the node waits on it
    /// is disconnected with [`DisconnectReason::SlowPeer`](crate::DisconnectReason::SlowPeer).
    /// It is judged by progress, not by being behind: the clock runs while the node is
    /// full (with [`Overload::Shed`]: while this peer is full) and the peer has bytes
    /// queued, and starts over whenever a byte of them is flushed. A peer that keeps
    /// reading, however slowly, is never cut. Default 10 s.
    pub slow_peer_timeout: Duration,
    /// What the node does when a queue is full. Default [`Overload::PauseReading`].
    pub overload: Overload,
    /// Bytes of deliveries handed to the application and not yet taken (reported with
    /// [`Node::handle_delivered`](crate::Node::handle_delivered)), each counted as its
    /// payload plus [`QUEUED_FRAME_OVERHEAD`]. The application is a consumer like a
    /// peer: when this is full the node holds new messages (with
    /// [`Overload::Shed`], drops deliveries) until it drains to half. An application
    /// that takes nothing for [`slow_peer_timeout`](Self::slow_peer_timeout) while it
    /// is full is *stalled*: new messages are still relayed, but not delivered to it
    /// (counted in [`Stats::deliveries_dropped`](crate::Stats::deliveries_dropped)),
    /// until it takes something again. Default 16 MiB.
    pub delivery_queue_bytes: usize,
    /// With [`Overload::PauseReading`]: how long the node stays full with none of its
    /// full queues taking a byte before it reads again anyway, letting each queue grow
    /// to twice its budget (the total too). In a network with cycles, nodes can wait on
    /// each other in a ring, each with a full queue towards the next; a node that
    /// absorbs one more budget lets the queue towards it drain, and the ring turns (see
    /// the README). Default 200 ms: far longer than a queue that moves at all waits for
    /// a write, far shorter than [`slow_peer_timeout`](Self::slow_peer_timeout).
    pub stall_escape: Duration,
}

/// What a node does when a peer's queue (or the total) is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Overload {
    /// Lose nothing: stop reading from the peers whose messages would go to a full
    /// queue, and refuse local publishing ([`PublishError::Congested`](crate::PublishError::Congested)),
    /// until the queues drain to half. The node tells its caller with
    /// [`Action::PauseReading`](crate::Action::PauseReading) and
    /// [`Action::ResumeReading`](crate::Action::ResumeReading); TCP then slows the peers
    /// down, and the pressure travels hop by hop back to whoever injects. The network
    /// runs at the speed of its slowest link; a peer that stops reading altogether is cut
    /// after [`Config::slow_peer_timeout`].
    ///
    /// The node keeps reading from a peer whose own queue is the only full one (a
    /// message from it never goes back to it), so two nodes never wait on each other
    /// over one link, and on a network without cycles a chain of waiting nodes always
    /// ends at one that reads: flow control alone cannot deadlock a tree. A queue may
    /// pass its budget by what the caller had already read when the node paused, and
    /// twice by that after a stall in a cycle (see [`Config::stall_escape`] and the
    /// README).
    #[default]
    PauseReading,
    /// Freshness over completeness: keep reading at full speed, and drop for a peer
    /// each message that does not fit its queue (or the total), counted in
    /// [`Stats::frames_shed`](crate::Stats::frames_shed). Queues never pass their
    /// budgets; slow peers miss messages.
    Shed,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_len: 1 << 20,
            max_peers: 128,
            seen_budget_bytes: 32 << 20,
            seen_retention: Duration::from_secs(300),
            peer_queue_bytes: 4 << 20,
            total_queue_bytes: 64 << 20,
            slow_peer_timeout: Duration::from_secs(10),
            overload: Overload::PauseReading,
            delivery_queue_bytes: 16 << 20,
            stall_escape: Duration::from_millis(200),
        }
    }
}

/// A [`Config`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// A limit that must be positive is zero: `max_frame_len` (no message could be
    /// sent), `max_peers` (no peer could connect) or `slow_peer_timeout` (a peer would be
    /// cut the moment the node waits on it).
    #[error("{0} must be more than zero")]
    Zero(&'static str),
    /// `max_frame_len` does not fit the 32-bit length prefix.
    #[error("max_frame_len {0} does not fit a u32 length prefix")]
    FrameLenTooLarge(usize),
    /// `seen_budget_bytes` cannot hold a single id.
    #[error("seen_budget_bytes {0} cannot hold even one message id")]
    SeenBudgetTooSmall(usize),
    /// A queue budget is smaller than one frame of `max_frame_len`, so such a message
    /// could never be sent.
    #[error("queue budget {budget} is smaller than one maximal frame ({frame} bytes)")]
    QueueSmallerThanFrame {
        /// The offending budget.
        budget: usize,
        /// What the largest frame is charged: wire bytes plus [`QUEUED_FRAME_OVERHEAD`].
        frame: usize,
    },
}

/// What the queue budgets charge for each queued frame on top of its wire bytes: the
/// memory a caller may hold for it while it waits (a [`Frames`](crate::Frames) of one
/// frame is 48 bytes, in a write queue and in the batch that carried it there). A
/// forwarded run of frames shares one `Frames`, so this over-counts runs; it is charged
/// per frame all the same, so a budget holds as many messages however they were batched.
///
/// ```
/// use gossip_core::{Config, HEADER_LEN, QUEUED_FRAME_OVERHEAD};
///
/// // Room for exactly 1000 queued frames of 100-byte payloads per peer.
/// let config = Config {
///     max_frame_len: 100,
///     peer_queue_bytes: 1000 * (HEADER_LEN + 100 + QUEUED_FRAME_OVERHEAD),
///     ..Config::default()
/// };
/// assert!(config.validate().is_ok());
/// ```
pub const QUEUED_FRAME_OVERHEAD: usize = 64;

/// What queueing `frames` frames of `wire_len` bytes in all is charged against the
/// budgets.
pub(crate) fn queue_charge(wire_len: usize, frames: usize) -> usize {
    wire_len + frames * QUEUED_FRAME_OVERHEAD
}

impl Config {
    /// Checks that the limits are consistent.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let zero = [
            ("max_frame_len", self.max_frame_len == 0),
            ("max_peers", self.max_peers == 0),
            ("slow_peer_timeout", self.slow_peer_timeout.is_zero()),
        ];
        if let Some((name, _)) = zero.into_iter().find(|&(_, is_zero)| is_zero) {
            return Err(ConfigError::Zero(name));
        }
        if u32::try_from(self.max_frame_len).is_err() {
            return Err(ConfigError::FrameLenTooLarge(self.max_frame_len));
        }
        if self.seen_capacity() == 0 {
            return Err(ConfigError::SeenBudgetTooSmall(self.seen_budget_bytes));
        }
        let frame = queue_charge(self.max_frame_len + HEADER_LEN, 1);
        for budget in [self.peer_queue_bytes, self.total_queue_bytes] {
            if budget < frame {
                return Err(ConfigError::QueueSmallerThanFrame { budget, frame });
            }
        }
        Ok(())
    }

    /// The seen set's capacity within `seen_budget_bytes`: ids per generation, so each id
    /// is remembered until at least this many newer ones have arrived (see [`SeenSet`]).
    pub fn seen_capacity(&self) -> usize {
        SeenSet::capacity_for_budget(self.seen_budget_bytes)
    }
}
