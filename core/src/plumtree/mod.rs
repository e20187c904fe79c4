//! `plumtree`: epidemic broadcast trees (Leitão, Pereira, Rodrigues, SRDS 2007), the
//! opt-in protocol beside `flood`.
//!
//! Flooding sends every message over every link; plumtree sends it over a spanning tree
//! and only announces it on the other links. Each node keeps its plumtree peers *eager*
//! (they get each new message whole, in a Gossip frame) or *lazy* (they get its id in a
//! batched IHave frame). Every peer starts eager, so the first message floods; a node
//! that receives a message it already has from an eager peer tells it Prune, and that
//! link becomes lazy in that direction. What remains eager is a tree. When an announced
//! message does not arrive through the tree within [`PlumtreeConfig::graft_timeout`],
//! the node sends Graft to the peer that announced it (which sends the message and
//! turns eager: the tree is repaired), then to the next announcer after each
//! [`PlumtreeConfig::graft_retry`].
//!
//! Plain (`flood`) peers stay as they are: they get every message whole and their
//! duplicates are dropped quietly, so a network that mixes both delivers everything.
//! Whether a connection speaks plumtree is settled before the core hears of it: the
//! caller exchanges [preambles](wire) and calls
//! [`Node::plumtree_peer_connected`](crate::Node::plumtree_peer_connected) with the
//! peer's [`NodeId`], or [`Node::peer_connected`](crate::Node::peer_connected) for a
//! plain peer.
//!
//! Messages are cached ([`MessageCache`], bounded by [`PlumtreeConfig::cache_bytes`]
//! and [`PlumtreeConfig::cache_retention`]) to answer grafts. When a plumtree
//! connection comes up, each side announces everything it has cached, so what one side
//! missed while the link (or the node) was down is grafted if it is still cached.
//! Every frame, repairs included, is queued and charged like any other, so flow control
//! and the byte budgets hold.
//!
//! The tree can also improve itself: when a lazy peer announces a message in many fewer
//! rounds than the eager path brought it, the lazy link replaces the eager one
//! ([`PlumtreeConfig::optimization_threshold`]; off by default, see there why).

mod cache;
mod lateness;
mod missing;
mod promises;
pub mod wire;

use std::time::Duration;

pub use cache::{LetGo, MessageCache, Receipt, CACHED_MESSAGE_OVERHEAD};
pub use lateness::Lateness;
pub use missing::{Arrival, Graft, Missing, MAX_ANNOUNCERS};
pub use promises::{Promises, PROMISE_SLOTS};

/// Grafts remembered per peer while its queue is full, answered as it drains (16 bytes
/// each, 64 KiB per peer at most); past it a graft is refused (`Stats::grafts_refused`).
/// A peer grafts only what it was announced and missed, and a full IHave frame
/// announces 1,024 ids: this is four of them.
pub const MAX_DEFERRED_GRAFTS: usize = 4096;

/// A node's identity on plumtree connections: chosen by the caller (at random per start,
/// say) and sent in the preamble, so that a node that reaches itself, or two nodes that
/// dial each other, keep one connection.
pub type NodeId = u64;

/// Settings of the plumtree protocol, each with a documented default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlumtreeConfig {
    /// This node's id (see [`NodeId`]). Default 0; every node of a network needs its own.
    pub node_id: NodeId,
    /// How long an announced message may take to arrive through the tree before it is
    /// grafted from the first peer that announced it. Default 150 ms. A graft makes a
    /// link eager, so a timeout shorter than the difference between a slow tree path
    /// and a quick announcement keeps adding links to the tree, and the duplicates they
    /// carry: in the simulator (10,000 nodes of degree 8, links of 1–50 ms, 100
    /// messages of 1 KiB at once) 80 ms (iroh-gossip's value) gave 0.24 redundant data
    /// frames per delivery and 18,582 grafts, 120 ms 0.016 and 753, 150 ms 0.001 and 30,
    /// with the last delivery sooner than at 80 ms (349 against 392 ms).
    ///
    /// It is the floor: under load the timers stretch with how late announced messages
    /// come through the tree ([`Lateness`]), up to [`graft_timeout_max`](Self::graft_timeout_max).
    pub graft_timeout: Duration,
    /// The most the graft timeout stretches to under load, where the tree's copies come
    /// seconds after their announcements. Default 5 s: a message lost with a link under
    /// load is grafted within it (sooner if its announcer's connection goes, see
    /// [`Missing::peer_gone`]), and announcements later than that are rare enough to be
    /// grafted.
    pub graft_timeout_max: Duration,
    /// After a graft, how long before the next announcer is asked. Default 40 ms,
    /// stretched in the same proportion as the graft timeout.
    pub graft_retry: Duration,
    /// How long announcements for lazy peers are gathered before they go out as one
    /// IHave frame per peer (at most [`wire::MAX_IHAVE`] ids each). Default 5 ms.
    pub ihave_interval: Duration,
    /// Bytes of messages kept to answer grafts and repair links
    /// (each charged its length plus [`CACHED_MESSAGE_OVERHEAD`]; messages kept in the
    /// read they came in charge the whole read, see
    /// [`MessageCache::insert_from_read`]). Default 128 MiB.
    ///
    /// Under load the cache must outlast what can stand in a queue before the
    /// slow-peer rule cuts it (`slow_peer_timeout`, 10 s, plus the redial), at the rate
    /// the node takes messages: a message whose only copies were in queues that were
    /// cut is repaired from here when the links come back, or lost. Twelve
    /// `gossip-node --protocol plumtree` processes with a client writing 4 KiB frames
    /// at full speed into each took about 4 MB/s each on a slow machine: with 32 MiB
    /// (8 s of it) they lost 8,802 to 37,081 of 660,000 messages in four runs, with
    /// 64 MiB 0 and 2,380, with 128 MiB 0 and 1,375. The cache holds the bytes of
    /// messages still queued for peers, so it costs memory of its own only for what
    /// has left every queue, and only once that much traffic has passed.
    pub cache_bytes: usize,
    /// How long a message is kept at most. Default 30 s: a link down this long, or a
    /// node restarting within it, gets what it missed when it comes back.
    pub cache_retention: Duration,
    /// Ids announced and not received that are tracked at once (each with up to
    /// [`MAX_ANNOUNCERS`] announcers). Default 16,384.
    pub max_missing: usize,
    /// Tree optimisation: when a lazy peer announces a message this node already has
    /// at a round at least this many hops fewer than the round it came in at, the
    /// lazy link replaces the eager one it came over (Graft to the announcer, Prune to
    /// the old sender). Default `u16::MAX`: off. With messages from many origins over
    /// one shared tree, a swap that shortens one origin's paths lengthens another's,
    /// and the tree keeps changing: in the simulator (as for `graft_timeout`, without
    /// [shortcuts](Self::shortcut_window)) 7, the paper's and iroh-gossip's value, cut
    /// the deepest path from 19 to 16 hops but
    /// raised the redundancy from 0.001 to 0.13, and to 0.42 with messages 50 ms apart.
    pub optimization_threshold: u16,
    /// Shortcuts while the tree forms: a duplicate Gossip frame from an eager peer that
    /// comes at most this long after the node's first copy of the message, and at
    /// least [`SHORTCUT_ROUNDS`] rounds closer to its origin, makes that peer the
    /// node's link towards the tree instead of the peer the first copy came from (which
    /// is pruned; the other is sent an empty Graft, since it prunes this node on the
    /// copy this node sent it). Default 10 ms; `Duration::ZERO` turns it off.
    ///
    /// The first message floods, and each node keeps the peer whose copy came first:
    /// the quickest paths from that message's origin, which are long ones (a random
    /// graph's fastest path often takes more hops than its shortest). Every later
    /// message, from any origin, follows that tree, and its paths from elsewhere are
    /// longer still. A copy that came a little later over far fewer hops is the better
    /// link for the other origins, at most this long slower for the first one. Only
    /// duplicates from eager peers count, which a formed tree sends none of, so it
    /// stays as it is. The rounds are the sender's word (as for
    /// `optimization_threshold`), so a peer that lies about them can make itself a
    /// node's link, which a peer can always be by sending new messages first, and what
    /// it then withholds is grafted from the peers that announce it; and a connection
    /// is taken as a shortcut once at most, so a peer that echoes every message back as
    /// if from its origin cannot have the node prune its other links again and again.
    pub shortcut_window: Duration,
}

/// How many rounds closer to its origin a duplicate must come to be taken as a shortcut
/// (see [`PlumtreeConfig::shortcut_window`]). One round is often no shorter a path:
/// the copies of two neighbours on the tree's frontier differ by one.
pub const SHORTCUT_ROUNDS: u16 = 2;

impl Default for PlumtreeConfig {
    fn default() -> Self {
        PlumtreeConfig {
            node_id: 0,
            graft_timeout: Duration::from_millis(150),
            graft_timeout_max: Duration::from_secs(5),
            graft_retry: Duration::from_millis(40),
            ihave_interval: Duration::from_millis(5),
            cache_bytes: 128 << 20,
            cache_retention: Duration::from_secs(30),
            max_missing: 16_384,
            optimization_threshold: u16::MAX,
            shortcut_window: Duration::from_millis(10),
        }
    }
}
