//! Limits and policies of a [`Node`](crate::Node), each with a documented default.

use std::time::Duration;

use thiserror::Error;

use crate::plumtree::{wire, PlumtreeConfig};
use crate::{SeenSet, HEADER_LEN};

/// Every limit a node enforces. All fields are public; start from [`Config::default`].
///
/// Worst-case memory of one node, beyond the application's own copies of delivered
/// payloads, is about `seen_budget_bytes + total_queue_bytes + partial_frame_budget_bytes +
/// (max_outbound_peers + max_inbound_peers) * read size`: the seen set, queued output,
/// partial frames, and the read being decoded for each peer. With
/// [`plumtree`](Self::plumtree), add its `cache_bytes` twice and `total_queue_bytes`
/// once more: the message cache, and what it let go that is still owed to peers (see
/// [`Promises`](crate::plumtree::Promises)), at most those two budgets together.
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
    /// Most peers this node dialled ([`Direction::Outbound`](crate::Direction::Outbound))
    /// connected at once; one more is disconnected with
    /// [`DisconnectReason::TooManyPeers`](crate::DisconnectReason::TooManyPeers).
    /// Inbound connections never take these slots, so however many sockets others open,
    /// the peers a node chose itself are never locked out. Default 32.
    pub max_outbound_peers: usize,
    /// Most peers that dialled this node ([`Direction::Inbound`](crate::Direction::Inbound))
    /// connected at once. When they are all taken, a newcomer evicts the least useful
    /// inbound peer by the rule of [`eviction`](crate::node::eviction) (peers that
    /// delivered a new message first within [`eviction_protection`](Self::eviction_protection)
    /// are kept); only when every inbound peer is protected is the newcomer refused with
    /// [`DisconnectReason::TooManyPeers`](crate::DisconnectReason::TooManyPeers).
    /// Default 96 (with the outbound slots, 128 peers in all).
    pub max_inbound_peers: usize,
    /// How long a peer that delivered a new message first (before any other peer) is
    /// protected from eviction. Default 60 s: long enough to cover a quiet spell of a
    /// network that publishes every few seconds, short enough that a peer useful once
    /// an hour ago does not keep its slot on that alone.
    pub eviction_protection: Duration,
    /// How long a peer may take to complete a frame it has begun (from its first byte,
    /// or from when the node last resumed reading it); past this it is disconnected with
    /// [`DisconnectReason::FrameTimeout`](crate::DisconnectReason::FrameTimeout). Default
    /// 20 s: a frame of `max_frame_len` (1 MiB) needs only about 52 KB/s to make it, and
    /// a connection that trickles a byte at a time (a slow loris) cannot hold its buffer
    /// for long.
    pub frame_timeout: Duration,
    /// Bytes that partial frames (begun and not complete) may hold across all peers; a
    /// peer's partial frame is charged what its decoder allocated for it, which is the
    /// announced length once the 4-byte prefix is in. Past the budget the peer whose
    /// partial frame is oldest is disconnected with
    /// [`DisconnectReason::PartialFramesOverBudget`](crate::DisconnectReason::PartialFramesOverBudget),
    /// and the next, until the rest fit. Default 32 MiB: 31 frames of the maximal 1 MiB
    /// (each charged its 4-byte prefix too) being received at once, a quarter of what
    /// 128 peers could otherwise pin. At least one maximal frame.
    pub partial_frame_budget_bytes: usize,
    /// Reads each peer at most this fast, if set: a peer over its rate is not
    /// disconnected but read more slowly ([`Action::PauseReading`](crate::Action::PauseReading)
    /// until it is back within it), so one loud peer cannot take the node's attention
    /// from the others. Default `None` (no limit).
    pub peer_rate_limit: Option<RateLimit>,
    /// Speak `plumtree` (see [`plumtree`](crate::plumtree)) with peers that speak it, if
    /// set; `flood` with every other peer. Default `None`: `flood` only.
    pub plumtree: Option<PlumtreeConfig>,
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
    /// cannot queue many times the budget in bookkeeping. A peer is *full* when the
    /// next message would pass its budget. What happens to
    /// a full peer's messages is [`overload`](Self::overload)'s choice: by default the
    /// node reads more slowly (nothing is lost); with [`Overload::Shed`] a message that
    /// does not fit is dropped for that peer and counted in
    /// [`Stats::frames_shed`](crate::Stats::frames_shed). A full peer stops being full
    /// once its queue drains to half. Default 4 MiB.
    pub peer_queue_bytes: usize,
    /// Bytes that may be queued across all peers; past it the whole node is full. Counted
    /// as memory is held: a message queued for several peers at once shares its bytes,
    /// which count once (until the last of them has written it), and each copy counts
    /// its [`QUEUED_FRAME_OVERHEAD`] per frame. (Counting every copy in full filled the
    /// total of a node with many peers with one message counted many times over, and in
    /// dense meshes under overload stopped flow control's waits from turning.) Default
    /// 64 MiB.
    pub total_queue_bytes: usize,
    /// A peer that leaves its queued bytes unread this long while the node waits on it
    /// is disconnected with [`DisconnectReason::SlowPeer`](crate::DisconnectReason::SlowPeer).
    /// It is judged by progress, not by being behind: the clock runs while the node is
    /// full (with [`Overload::Shed`]: while this peer is full) and the peer has bytes
    /// queued, and starts over whenever a byte of them is flushed. With it go the peers
    /// more than half full that took nothing in that time either (peers that stopped
    /// together fill their queues a few messages apart; the node waits on the first).
    /// A peer that keeps reading, however slowly, is never cut. Default 10 s.
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
    /// full queues taking a byte before it takes new messages again anyway: half a
    /// peer budget shared among its peers (at least one message from each), past their
    /// budgets but within the total, and as much again after every further
    /// `stall_escape` without progress. In a network with cycles, nodes can wait on
    /// each other in a ring, each with a full queue towards the next; a node that
    /// absorbs some lets the queue towards it drain, and the ring turns (see the
    /// README). Default 200 ms: far longer than a queue that moves at all waits for
    /// a write, far shorter than [`slow_peer_timeout`](Self::slow_peer_timeout).
    ///
    /// Besides the rounds: a peer whose messages the node has held for a quarter of
    /// `slow_peer_timeout` without taking one gets one taken, stalled or not (no
    /// sooner than a `stall_escape` after the last round), so that a node waiting on
    /// this one sees its queue move before it would cut it as slow.
    pub stall_escape: Duration,
    /// Bytes of a plain peer's queue handed to the caller (in [`Action::Send`](crate::Action::Send)s)
    /// and not yet reported written, at most: what the node queues beyond it, it keeps
    /// back and hands over as the caller writes. A copy kept back of a message the
    /// peer then sends the node itself is dropped unsent (the peer has it, whether or
    /// not the node still remembers the message), its charge given back to the budgets
    /// at once, and counted in
    /// [`Stats::copies_not_sent`](crate::Stats::copies_not_sent). Under load, when
    /// queues are long, most queued copies in a mesh are such (every node floods
    /// what it takes to every peer, and its peers take the same messages from
    /// elsewhere): dropping them saves bandwidth and lets full queues drain by reading
    /// duplicates. A `Send` always goes when nothing handed over is unwritten, so any
    /// value works; a small one keeps more back for less in one write. Default 256 KiB.
    pub send_ahead_bytes: usize,
}

/// How fast a node reads one peer, at most: bytes and new messages per second, with a
/// burst of one second's worth of each. Both must be more than zero. The node pauses a
/// peer after the read that took it over its rate; what the caller had already read
/// ahead (two reads in `gossip-net`) still comes in and is charged, so the rate holds
/// on average, passed at any moment by at most the burst and that read-ahead.
///
/// ```
/// use gossip_core::{Config, RateLimit};
///
/// let config = Config {
///     peer_rate_limit: Some(RateLimit { bytes_per_second: 1 << 20, messages_per_second: 1000 }),
///     ..Config::default()
/// };
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Bytes read from the peer per second, averaged over a second.
    pub bytes_per_second: u64,
    /// New messages (first deliveries) taken from the peer per second, averaged over a
    /// second.
    pub messages_per_second: u64,
}

/// The largest `max_frame_len` with plumtree: a Gossip frame of that must fit a `u32`
/// length below the preamble's magic read as one (see [`wire`]).
pub const MAX_PLUMTREE_FRAME_LEN: usize = (u32::MAX as usize) - (1 << 24) - wire::GOSSIP_OVERHEAD;

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
    /// ends at one that reads: flow control alone cannot deadlock a tree. A message is
    /// taken only if it fits every queue it goes to, so queues never pass their budgets
    /// (but for a message larger than half a budget, and peer queues after a stall in
    /// a cycle: see [`Config::stall_escape`] and the README).
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
            max_outbound_peers: 32,
            max_inbound_peers: 96,
            eviction_protection: Duration::from_secs(60),
            frame_timeout: Duration::from_secs(20),
            partial_frame_budget_bytes: 32 << 20,
            peer_rate_limit: None,
            plumtree: None,
            seen_budget_bytes: 32 << 20,
            seen_retention: Duration::from_secs(300),
            peer_queue_bytes: 4 << 20,
            total_queue_bytes: 64 << 20,
            slow_peer_timeout: Duration::from_secs(10),
            overload: Overload::PauseReading,
            delivery_queue_bytes: 16 << 20,
            stall_escape: Duration::from_millis(200),
            send_ahead_bytes: 256 << 10,
        }
    }
}

/// A [`Config`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// A limit that must be positive is zero: `max_frame_len` (no message could be
    /// sent), `max_outbound_peers + max_inbound_peers` (no peer could connect),
    /// `slow_peer_timeout` or `frame_timeout` (a peer would be cut the moment the node
    /// waits on it or it begins a frame), or a rate of `peer_rate_limit`.
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
    /// `partial_frame_budget_bytes` cannot hold one frame of `max_frame_len`, so such a
    /// message could never be received.
    #[error("partial frame budget {budget} is smaller than one maximal frame ({frame} bytes)")]
    PartialBudgetSmallerThanFrame {
        /// The budget.
        budget: usize,
        /// The largest frame's wire length.
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
            (
                "max_outbound_peers + max_inbound_peers",
                self.max_outbound_peers
                    .saturating_add(self.max_inbound_peers)
                    == 0,
            ),
            ("slow_peer_timeout", self.slow_peer_timeout.is_zero()),
            ("frame_timeout", self.frame_timeout.is_zero()),
            (
                "peer_rate_limit.bytes_per_second",
                self.peer_rate_limit
                    .is_some_and(|rate| rate.bytes_per_second == 0),
            ),
            (
                "peer_rate_limit.messages_per_second",
                self.peer_rate_limit
                    .is_some_and(|rate| rate.messages_per_second == 0),
            ),
        ];
        if let Some((name, _)) = zero.into_iter().find(|&(_, is_zero)| is_zero) {
            return Err(ConfigError::Zero(name));
        }
        if u32::try_from(self.max_frame_len).is_err()
            || (self.plumtree.is_some() && self.max_frame_len > MAX_PLUMTREE_FRAME_LEN)
        {
            return Err(ConfigError::FrameLenTooLarge(self.max_frame_len));
        }
        if self.seen_capacity() == 0 {
            return Err(ConfigError::SeenBudgetTooSmall(self.seen_budget_bytes));
        }
        let frame = queue_charge(self.max_wire_payload() + HEADER_LEN, 1);
        for budget in [self.peer_queue_bytes, self.total_queue_bytes] {
            if budget < frame {
                return Err(ConfigError::QueueSmallerThanFrame { budget, frame });
            }
        }
        let frame = self.max_wire_payload() + HEADER_LEN;
        let budget = self.partial_frame_budget_bytes;
        if budget < frame {
            return Err(ConfigError::PartialBudgetSmallerThanFrame { budget, frame });
        }
        Ok(())
    }

    /// The largest frame payload a peer may send: `max_frame_len`, or with plumtree a
    /// Gossip frame of that (3 bytes more) or a full IHave frame, whichever is larger.
    pub fn max_wire_payload(&self) -> usize {
        match self.plumtree {
            None => self.max_frame_len,
            Some(_) => (self.max_frame_len + wire::GOSSIP_OVERHEAD).max(wire::MAX_IHAVE_FRAME),
        }
    }

    /// The seen set's capacity within `seen_budget_bytes`: ids per generation, so each id
    /// is remembered until at least this many newer ones have arrived (see [`SeenSet`]).
    pub fn seen_capacity(&self) -> usize {
        SeenSet::capacity_for_budget(self.seen_budget_bytes)
    }
}
