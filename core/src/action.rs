//! What the core asks its caller to do.

use std::sync::OnceLock;

use bytes::Bytes;
use thiserror::Error;

use crate::plumtree::wire::WireError;
use crate::{Direction, FrameError, Frames, MessageId, PeerId};

/// An instruction for the caller, drained with
/// [`Node::poll_action`](crate::Node::poll_action) or
/// [`Node::drain_actions`](crate::Node::drain_actions).
///
/// Actions come out in the order they arose: a received message's
/// [`Deliver`](Action::Deliver) comes before any [`Send`](Action::Send) that forwards it,
/// and the `Send`s to one peer come in the order their bytes must be written. The new
/// messages of one read are delivered first, then forwarded together, in as few `Send`s
/// as possible (one per peer, unless a queue filled up or a message had to be handled on
/// its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write `frames` to `peer`, after everything sent to it before, and report the
    /// written bytes with [`Node::handle_flushed`](crate::Node::handle_flushed).
    Send {
        /// The peer to write to.
        peer: PeerId,
        /// One or more whole frames; their buffer is shared with every other copy.
        frames: Frames,
    },
    /// Hand a new message to the application. Each message is delivered once (see
    /// [`Config::seen_retention`](crate::Config::seen_retention) for the exact bound).
    Deliver(Delivery),
    /// Close the connection to `peer`. The core has already forgotten it; calling
    /// [`Node::peer_disconnected`](crate::Node::peer_disconnected) afterwards is harmless.
    Disconnect {
        /// The peer to drop.
        peer: PeerId,
        /// Why.
        reason: DisconnectReason,
    },
    /// Stop reading from `peer`'s socket (let its TCP window close) until
    /// [`ResumeReading`](Action::ResumeReading): a queue its messages would go to is
    /// full (see [`Overload::PauseReading`](crate::Overload::PauseReading)). Bytes
    /// already read may still be handed in. A new peer is read until told otherwise.
    PauseReading {
        /// The peer to stop reading.
        peer: PeerId,
    },
    /// Read from `peer` again.
    ResumeReading {
        /// The peer to read.
        peer: PeerId,
    },
}

/// A message received from a peer for the first time.
///
/// Its id is worked out when first asked for ([`id`](Self::id)): a node that speaks
/// only flood does not hash what it delivers, so an application that has no use for ids
/// pays no BLAKE3 for them.
///
/// ```
/// use bytes::Bytes;
/// use gossip_core::{Delivery, MessageId, PeerId};
///
/// let delivery = Delivery::new(Bytes::from_static(b"m"), PeerId(1));
/// assert_eq!(delivery.id(), MessageId::of(b"m"));
/// ```
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The payload. It usually shares the buffer it was read into, which stays alive
    /// while it does (at most four times the size of the new messages in it; see
    /// [`Node::handle_received_bytes`](crate::Node::handle_received_bytes)): copy it
    /// (`Bytes::copy_from_slice`) before keeping many small payloads for long.
    pub payload: Bytes,
    /// The peer it first arrived from.
    pub from: PeerId,
    /// `blake3(payload)`, once known.
    id: OnceLock<MessageId>,
}

impl Delivery {
    /// The delivery of `payload`, first received from `from`.
    pub fn new(payload: Bytes, from: PeerId) -> Self {
        Delivery {
            payload,
            from,
            id: OnceLock::new(),
        }
    }

    /// The delivery of `payload`, with its id if the node has already worked it out (a
    /// node that speaks only flood leaves it to the application to ask).
    pub(crate) fn with_known_id(id: Option<MessageId>, payload: Bytes, from: PeerId) -> Self {
        Delivery {
            payload,
            from,
            id: id.map_or_else(OnceLock::new, OnceLock::from),
        }
    }

    /// The message id, `blake3(payload)`: hashed on the first call unless the node had
    /// it already (a node that speaks plumtree hashes every message it receives), and
    /// kept for the next.
    pub fn id(&self) -> MessageId {
        *self.id.get_or_init(|| MessageId::of(&self.payload))
    }
}

/// Deliveries are equal if their payloads and senders are, whether or not their ids
/// have been worked out yet.
impl PartialEq for Delivery {
    fn eq(&self, other: &Self) -> bool {
        self.payload == other.payload && self.from == other.from
    }
}

impl Eq for Delivery {}

/// Why the core wants a peer gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DisconnectReason {
    /// The peer broke the framing rules.
    #[error("protocol error: {0}")]
    Protocol(#[from] FrameError),
    /// A plumtree peer sent a frame that breaks the plumtree format.
    #[error("plumtree protocol error: {0}")]
    Plumtree(#[from] WireError),
    /// A plumtree connection to this node itself, or a second one to a node it is
    /// already connected to (the one dialled by the lower [`NodeId`](crate::plumtree::NodeId)
    /// is kept).
    #[error("another connection to the same node (id {node_id})")]
    SameNode {
        /// The node's id.
        node_id: u64,
    },
    /// The peer took none of its queued bytes for
    /// [`Config::slow_peer_timeout`](crate::Config::slow_peer_timeout) while the node
    /// waited on it.
    #[error("slow peer: {queued_bytes} bytes queued and none taken for too long")]
    SlowPeer {
        /// Bytes still queued for it.
        queued_bytes: usize,
    },
    /// The node already had as many peers in this direction as its limit
    /// ([`Config::max_outbound_peers`](crate::Config::max_outbound_peers) or
    /// [`Config::max_inbound_peers`](crate::Config::max_inbound_peers)), and none it could
    /// evict.
    #[error("too many {direction} peers (limit {limit})")]
    TooManyPeers {
        /// Which slots were full.
        direction: Direction,
        /// The configured limit.
        limit: usize,
    },
    /// The inbound slots were full and a newcomer took this peer's slot: it was the
    /// least useful inbound peer (see [`eviction`](crate::node::eviction)).
    #[error("evicted for a newcomer (least useful inbound peer)")]
    Evicted,
    /// The peer began a frame and did not complete it within
    /// [`Config::frame_timeout`](crate::Config::frame_timeout).
    #[error("frame of {announced} bytes not completed within the frame timeout")]
    FrameTimeout {
        /// The payload length it announced (0 if its prefix never arrived whole).
        announced: usize,
    },
    /// Partial frames across all peers held more than
    /// [`Config::partial_frame_budget_bytes`](crate::Config::partial_frame_budget_bytes),
    /// and this peer's was the oldest.
    #[error("oldest partial frame ({held} bytes held) while partial frames were over budget")]
    PartialFramesOverBudget {
        /// Bytes its partial frame held.
        held: usize,
    },
}
