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
    /// Bytes that may be queued for one peer (sent but not yet reported flushed). Each
    /// frame counts its wire length plus [`QUEUED_FRAME_OVERHEAD`], so tiny messages
    /// cannot queue many times the budget in bookkeeping. A message that does not fit is
    /// dropped for that peer and counted in [`Stats::frames_shed`](crate::Stats::frames_shed).
    /// Default 4 MiB.
    pub peer_queue_bytes: usize,
    /// Bytes that may be queued across all peers, counted the same way. Default 64 MiB.
    pub total_queue_bytes: usize,
    /// A peer that stays overloaded this long is disconnected with
    /// [`DisconnectReason::SlowPeer`](crate::DisconnectReason::SlowPeer). It stops being
    /// overloaded once its queue drains to half of `peer_queue_bytes`. Default 10 s.
    pub slow_peer_timeout: Duration,
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
        }
    }
}

/// A [`Config`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
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
