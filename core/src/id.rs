//! Identifiers: [`MessageId`] (content hash) and [`PeerId`] (caller-chosen handle).

use std::fmt;

/// The identity of a message: the BLAKE3 hash of its payload.
///
/// Identical payloads have identical ids, so they are the same message as far as the
/// network is concerned.
///
/// ```
/// use gossip_core::MessageId;
/// assert_eq!(MessageId::of(b"x"), MessageId::of(b"x"));
/// assert_ne!(MessageId::of(b"x"), MessageId::of(b"y"));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub [u8; 32]);

impl MessageId {
    /// Hashes `payload` into its id.
    pub fn of(payload: &[u8]) -> Self {
        MessageId(*blake3::hash(payload).as_bytes())
    }

    /// The id as bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({self})")
    }
}

/// Shows the first 8 bytes in hex, which is plenty to tell messages apart in logs.
impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in &self.0[..8] {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// An opaque handle for one connection to a peer, chosen by the caller.
///
/// The core never interprets it: use a connection counter, a slab index, anything unique
/// among the peers connected at one time. Reusing an id after
/// [`Node::peer_disconnected`](crate::Node::peer_disconnected) is fine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer#{}", self.0)
    }
}
