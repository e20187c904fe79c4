//! Counters a node keeps, readable at any time.

/// A snapshot of a node's counters, from [`Node::stats`](crate::Node::stats).
///
/// Counters (`u64`) only grow; gauges (`usize`) are current values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// New messages received from peers and delivered to the application.
    pub messages_delivered: u64,
    /// Messages published locally and flooded.
    pub messages_published: u64,
    /// Messages received (or published) again while still remembered, and dropped.
    pub duplicates: u64,
    /// Complete frames received from peers.
    pub frames_in: u64,
    /// Bytes received from peers.
    pub bytes_in: u64,
    /// Frames handed to the caller to send.
    pub frames_out: u64,
    /// Wire bytes handed to the caller to send.
    pub bytes_out: u64,
    /// Bytes the caller reported written to sockets.
    pub bytes_flushed: u64,
    /// Frames not sent to a peer because its queue (or the total queue) was full (only
    /// with [`Overload::Shed`](crate::Overload::Shed)).
    pub frames_shed: u64,
    /// Copies of messages queued for a peer and dropped unsent because the peer sent
    /// the node the message itself (they were kept back: see
    /// [`Config::send_ahead_bytes`](crate::Config::send_ahead_bytes)).
    pub copies_not_sent: u64,
    /// Frames that were queued for a peer and not completely written when it was
    /// disconnected: lost for that peer.
    pub frames_lost_on_disconnect: u64,
    /// Times the node became full and paused reading (or, with
    /// [`Overload::Shed`](crate::Overload::Shed), started shedding).
    pub congestion_episodes: u64,
    /// Times the node stayed full with no full queue moving for
    /// [`Config::stall_escape`](crate::Config::stall_escape) and read up to the hard caps.
    pub stall_escapes: u64,
    /// Times a peer the node had held a message from for a quarter of
    /// [`Config::slow_peer_timeout`](crate::Config::slow_peer_timeout) got that message
    /// taken (and the frames read from it after that message), stalled or not: like a
    /// stall escape, it may take the peer queues past their budgets, within the total.
    pub held_peer_escapes: u64,
    /// Rounds of a stall escape that were lazy (plumtree, the total out of room): what
    /// they took was announced to the plumtree peers, not sent whole, and may take the
    /// total past its budget by one peer budget.
    pub lazy_escapes: u64,
    /// New messages not delivered to the application because it had stalled (or, with
    /// [`Overload::Shed`](crate::Overload::Shed), because its queue was full).
    pub deliveries_dropped: u64,
    /// Times the application took no delivery for `slow_peer_timeout` while its queue
    /// was full, and deliveries started being dropped for it.
    pub application_stalls: u64,
    /// Bytes of deliveries handed out and not yet taken by the application, as
    /// [`Config::delivery_queue_bytes`](crate::Config::delivery_queue_bytes) counts them.
    pub delivery_queued_bytes: usize,
    /// Local publishes refused because the node was full
    /// ([`PublishError::Congested`](crate::PublishError::Congested)).
    pub publishes_refused: u64,
    /// New payloads copied out of a read made mostly of other bytes (duplicates, say), so
    /// that they do not keep the whole read in memory.
    pub payloads_copied: u64,
    /// Peers disconnected for breaking the framing rules.
    pub protocol_errors: u64,
    /// Peers disconnected for taking none of their queued bytes too long.
    pub slow_peer_disconnects: u64,
    /// Connections refused because their direction's slots were full (and, inbound,
    /// no peer could be evicted).
    pub peers_refused: u64,
    /// Inbound peers evicted to make room for a newcomer.
    pub peers_evicted: u64,
    /// Peers disconnected for leaving a frame incomplete for
    /// [`Config::frame_timeout`](crate::Config::frame_timeout).
    pub frame_timeouts: u64,
    /// Peers disconnected because partial frames were over
    /// [`Config::partial_frame_budget_bytes`](crate::Config::partial_frame_budget_bytes).
    pub partial_frame_disconnects: u64,
    /// Bytes held by partial frames across all peers now.
    pub partial_frame_bytes: usize,
    /// Plumtree control frames (IHave, Graft, Prune) received.
    pub control_frames_in: u64,
    /// Plumtree control frames queued to send.
    pub control_frames_out: u64,
    /// Message ids announced to lazy plumtree peers (IHave entries sent).
    pub ihave_ids_sent: u64,
    /// Grafts sent: a message announced and not received in time was asked for.
    pub grafts_sent: u64,
    /// Grafts received.
    pub grafts_received: u64,
    /// Grafts answered later, because the peer's queue (or the total) had no room for
    /// the message when they came: it goes once the queue drains.
    pub grafts_deferred: u64,
    /// Grafts not answered: the peer's queue had no room and it had
    /// [`MAX_DEFERRED_GRAFTS`](crate::plumtree::MAX_DEFERRED_GRAFTS) waiting already.
    pub grafts_refused: u64,
    /// Grafts for a message this node does not have cached (any more, or ever: a peer
    /// may ask for any id, and one answered late may have left the cache meanwhile):
    /// nothing is sent.
    pub grafts_uncached: u64,
    /// Messages sent whole to a lazy peer they were announced to, because the cache let
    /// them go before that peer showed it had them or grafted them (see
    /// [`Promises`](crate::plumtree::Promises)): one per message and peer.
    pub promises_kept: u64,
    /// Messages sent from the plumtree cache to a plain peer that missed them while the
    /// adapter settled which protocol it speaks (see
    /// [`Node::peer_connected_since`](crate::Node::peer_connected_since)).
    pub messages_caught_up: u64,
    /// Messages announced to this node (IHave) that it grafted from every announcer
    /// without getting them in time. Under overload most come later all the same (the
    /// eager copy was only late); see [`messages_missed`](Self::messages_missed).
    pub grafts_given_up: u64,
    /// Of those, the ones that had not come within
    /// [`cache_retention`](crate::plumtree::PlumtreeConfig::cache_retention) after
    /// (or were pushed out early by `max_missing` more): messages this node missed.
    /// An announcer keeps what it announced until this node has it (see
    /// [`Promises`](crate::plumtree::Promises)), so this takes an announcer whose
    /// connection went before it answered, with no other announcer left.
    pub messages_missed: u64,
    /// The graft timeout as of the node's last announcement or timer: `graft_timeout`
    /// until announced messages come late, then stretched with how late the tree brings
    /// them, up to `graft_timeout_max`, and halved every `graft_timeout_max` without a
    /// late message (see [`Lateness`](crate::plumtree::Lateness)). Zero without plumtree.
    pub graft_timeout: std::time::Duration,
    /// Prunes sent: an eager peer sent a duplicate and was made lazy.
    pub prunes_sent: u64,
    /// Messages that arrived after this node grafted them: repaired.
    pub repairs: u64,
    /// Plumtree connections closed because another connection to the same node was
    /// kept, or because they reached this node itself.
    pub same_node_disconnects: u64,
    /// Bytes the plumtree message cache holds now, as its budget counts them, with the
    /// messages it let go that are still owed to peers whose queues had no room (see
    /// [`Promises`](crate::plumtree::Promises)): those can pass the budget by what the
    /// cache let go while the node was full.
    pub plumtree_cache_bytes: usize,
    /// Tree optimisations: a lazy link that announced messages in far fewer rounds
    /// replaced an eager one.
    pub tree_swaps: u64,
    /// Shortcuts taken while the tree formed: a duplicate that came far fewer rounds
    /// from its origin made its sender this node's link towards the tree (see
    /// [`PlumtreeConfig::shortcut_window`](crate::plumtree::PlumtreeConfig::shortcut_window)).
    pub shortcuts: u64,
    /// Times a peer went over [`Config::peer_rate_limit`](crate::Config::peer_rate_limit)
    /// and was paused.
    pub rate_limit_pauses: u64,
    /// Peers accepted so far.
    pub peers_connected: u64,
    /// Peers connected now.
    pub peers_current: usize,
    /// Bytes queued for all peers now, as the total budget counts them: wire bytes (a
    /// message queued for several peers once, as its copies share them) plus
    /// [`QUEUED_FRAME_OVERHEAD`](crate::QUEUED_FRAME_OVERHEAD) per frame of each copy.
    pub queued_bytes: usize,
    /// Message ids remembered now.
    pub seen_len: usize,
    /// Message ids forgotten so far, by age or for room.
    pub seen_evicted: u64,
    /// Heap bytes the seen set holds now (never more than
    /// [`SeenSet::memory_bound`](crate::SeenSet::memory_bound) of its capacity).
    pub seen_memory_bytes: usize,
    /// Whether the node is full now (reading paused where needed, publishing refused).
    pub congested: bool,
}
