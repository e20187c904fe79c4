//! The `plumtree` wire format: the preamble that opens a connection, and the frames
//! after it.
//!
//! A connection that speaks it starts, on each side, with a 16-byte [preamble]:
//!
//! | bytes | value |
//! | --- | --- |
//! | 0–3 | magic `FF 47 53 50` (`0xFF`, `"GSP"`) |
//! | 4 | version, 2 |
//! | 5–7 | zero (reserved) |
//! | 8–15 | the sender's [`NodeId`](super::NodeId), big-endian |
//!
//! Read as a `flood` length prefix, the magic announces 4,282,864,464 bytes, more than
//! any node accepts (`max_frame_len` is at most 2^32 − 2^24 with plumtree), so a plain
//! peer that receives a preamble disconnects or waits, and never takes it for a
//! message. After the preambles, frames are `flood`'s (a 4-byte big-endian length `N`,
//! then `N` bytes), and each begins with its type:
//!
//! | type | body | meaning |
//! | --- | --- | --- |
//! | `0` Gossip | round (`u16`), then the message | a message, `round` hops from its origin; its id is `blake3(message)` |
//! | `1` IHave | 1 to 1024 × (short id, 16 bytes; round, `u16`) | "I have these": a lazy peer's announcement |
//! | `2` Graft | short id (16 bytes), round (`u16`); or nothing | "send me this one, and be eager to me"; empty: only "be eager to me" (tree optimisation) |
//! | `3` Prune | nothing | "I got that already: be lazy to me" |
//!
//! A *short id* is the first 16 bytes of a message id: what the seen set remembers too,
//! so confusing two messages needs a 128-bit BLAKE3 collision of an attacker's own
//! messages (about 2^64 work), as for the seen set. Announcements cost 18 bytes per
//! message and lazy peer.
//!
//! [preamble]: PREAMBLE_LEN

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

use crate::{MessageId, HEADER_LEN};

/// The first 16 bytes of a [`MessageId`]: how plumtree frames name a message.
pub type ShortId = [u8; SHORT_ID_LEN];

/// `id`'s short id.
pub fn short_id(id: &MessageId) -> ShortId {
    let mut short = [0; SHORT_ID_LEN];
    short.copy_from_slice(&id.0[..SHORT_ID_LEN]);
    short
}

/// The first four bytes of a preamble.
pub const MAGIC: [u8; 4] = [0xFF, b'G', b'S', b'P'];
/// The protocol version a preamble announces.
pub const VERSION: u8 = 2;
/// Bytes in a preamble.
pub const PREAMBLE_LEN: usize = 16;
/// Bytes a Gossip frame adds before the message: type and round.
pub const GOSSIP_OVERHEAD: usize = 3;
/// Most ids one IHave frame carries.
pub const MAX_IHAVE: usize = 1024;
/// Bytes of one IHave entry: a short id and a round.
const IHAVE_ENTRY: usize = SHORT_ID_LEN + 2;
/// Bytes of a short id.
const SHORT_ID_LEN: usize = 16;
/// The payload length of a full IHave frame.
pub const MAX_IHAVE_FRAME: usize = 1 + MAX_IHAVE * IHAVE_ENTRY;

const GOSSIP: u8 = 0;
const IHAVE: u8 = 1;
const GRAFT: u8 = 2;
const PRUNE: u8 = 3;

/// A preamble announcing `node_id`.
///
/// ```
/// use gossip_core::plumtree::wire::{parse_preamble, preamble, Preamble};
/// let bytes = preamble(7);
/// assert_eq!(parse_preamble(&bytes), Preamble::Plumtree { node_id: 7 });
/// assert_eq!(parse_preamble(&bytes[..3]), Preamble::Incomplete);
/// assert_eq!(parse_preamble(&[0, 0, 0, 5, b'h']), Preamble::Plain);
/// ```
pub fn preamble(node_id: u64) -> [u8; PREAMBLE_LEN] {
    let mut out = [0; PREAMBLE_LEN];
    out[..4].copy_from_slice(&MAGIC);
    out[4] = VERSION;
    out[8..].copy_from_slice(&node_id.to_be_bytes());
    out
}

/// What the first bytes of a connection say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preamble {
    /// Not enough bytes yet to tell.
    Incomplete,
    /// A plumtree preamble from this node.
    Plumtree {
        /// The sender's id.
        node_id: u64,
    },
    /// A plumtree preamble of a version this node does not speak.
    UnknownVersion(u8),
    /// Not a preamble: a plain (`flood`) peer's first frame.
    Plain,
}

/// Reads the preamble at the start of `bytes`, if any (see [`preamble`]).
pub fn parse_preamble(bytes: &[u8]) -> Preamble {
    let known = bytes.len().min(MAGIC.len());
    if bytes[..known] != MAGIC[..known] {
        return Preamble::Plain;
    }
    let Some(whole) = bytes.first_chunk::<PREAMBLE_LEN>() else {
        return Preamble::Incomplete;
    };
    if whole[4] != VERSION {
        return Preamble::UnknownVersion(whole[4]);
    }
    let mut id = [0; 8];
    id.copy_from_slice(&whole[8..]);
    Preamble::Plumtree {
        node_id: u64::from_be_bytes(id),
    }
}

/// One plumtree frame's contents (the payload of a length-prefixed frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A message, `round` hops from its origin.
    Gossip {
        /// Hops from the origin.
        round: u16,
        /// The message.
        message: Bytes,
    },
    /// Short ids of messages the sender has, each with the round it got it at.
    IHave(IHaveEntries),
    /// Push eagerly from now on, and send the message wanted, if any (by short id, with
    /// the round its announcement gave).
    Graft {
        /// The message wanted and its round, or `None` for only "be eager".
        wanted: Option<(ShortId, u16)>,
    },
    /// Push lazily from now on.
    Prune,
}

/// The entries of an IHave frame (1 to [`MAX_IHAVE`]), read from the frame's bytes as
/// they are iterated: a node takes thousands of announcements a second, and they need
/// no buffer of their own.
///
/// ```
/// use bytes::Bytes;
/// use gossip_core::plumtree::wire::{ihave, Frame};
///
/// let wire = ihave(&[([7; 16], 3)]);
/// let Ok(Frame::IHave(entries)) = Frame::parse(&wire.slice(4..)) else { panic!() };
/// assert_eq!(entries.iter().collect::<Vec<_>>(), [([7; 16], 3)]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IHaveEntries(Bytes);

impl IHaveEntries {
    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.0.len() / IHAVE_ENTRY
    }

    /// Whether there are none (never, for a parsed frame).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each entry: a short id and the round the sender got the message at.
    pub fn iter(&self) -> impl Iterator<Item = (ShortId, u16)> + '_ {
        self.0.chunks_exact(IHAVE_ENTRY).filter_map(entry)
    }
}

/// A short id and a round (an IHave entry, or what a Graft wants), from the first
/// [`IHAVE_ENTRY`] bytes of `bytes`; `None` if there are fewer.
fn entry(bytes: &[u8]) -> Option<(ShortId, u16)> {
    let (id, round) = bytes.split_first_chunk::<SHORT_ID_LEN>()?;
    let round = round.first_chunk::<2>()?;
    Some((*id, u16::from_be_bytes(*round)))
}

/// A frame that breaks the plumtree format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum WireError {
    /// Empty frame, or a type this node does not know.
    #[error("unknown plumtree frame type")]
    UnknownType,
    /// The body does not have the length its type needs.
    #[error("malformed plumtree frame")]
    Malformed,
    /// A Gossip frame's message is longer than `max_frame_len`.
    #[error("plumtree message longer than the maximum")]
    TooLarge,
}

impl Frame {
    /// Parses a frame's payload; a Gossip frame's message is a slice of `payload`.
    pub fn parse(payload: &Bytes) -> Result<Frame, WireError> {
        let (&kind, body) = payload.split_first().ok_or(WireError::UnknownType)?;
        match kind {
            GOSSIP if body.len() >= 2 => Ok(Frame::Gossip {
                round: u16::from_be_bytes([body[0], body[1]]),
                message: payload.slice(GOSSIP_OVERHEAD..),
            }),
            IHAVE
                if !body.is_empty()
                    && body.len() % IHAVE_ENTRY == 0
                    && body.len() / IHAVE_ENTRY <= MAX_IHAVE =>
            {
                Ok(Frame::IHave(IHaveEntries(payload.slice(1..))))
            }
            GRAFT if body.len() == IHAVE_ENTRY => Ok(Frame::Graft {
                wanted: entry(body),
            }),
            GRAFT if body.is_empty() => Ok(Frame::Graft { wanted: None }),
            PRUNE if body.is_empty() => Ok(Frame::Prune),
            GOSSIP | IHAVE | GRAFT | PRUNE => Err(WireError::Malformed),
            _ => Err(WireError::UnknownType),
        }
    }
}

/// The wire bytes of a Gossip frame's head (length prefix, type, round) for a message of
/// `len` bytes; the message follows it. `None` if the frame would not fit a `u32`.
pub fn gossip_head(len: usize, round: u16) -> Option<[u8; HEADER_LEN + GOSSIP_OVERHEAD]> {
    let frame_len = u32::try_from(len.checked_add(GOSSIP_OVERHEAD)?).ok()?;
    let mut head = [0; HEADER_LEN + GOSSIP_OVERHEAD];
    head[..4].copy_from_slice(&frame_len.to_be_bytes());
    head[4] = GOSSIP;
    head[5..].copy_from_slice(&round.to_be_bytes());
    Some(head)
}

/// The wire length (length prefix included) of an IHave frame of `entries` entries.
pub(crate) const fn ihave_wire_len(entries: usize) -> usize {
    HEADER_LEN + 1 + entries * IHAVE_ENTRY
}

/// The wire bytes (length prefix included) of an IHave frame for `entries` (1 to
/// [`MAX_IHAVE`]).
pub fn ihave(entries: &[(ShortId, u16)]) -> Bytes {
    debug_assert!(!entries.is_empty() && entries.len() <= MAX_IHAVE);
    let wire_len = ihave_wire_len(entries.len());
    let mut out = BytesMut::with_capacity(wire_len);
    out.put_u32((wire_len - HEADER_LEN) as u32);
    out.put_u8(IHAVE);
    for (id, round) in entries {
        out.put_slice(id);
        out.put_u16(*round);
    }
    out.freeze()
}

/// The wire bytes of a Graft frame, asking for message `wanted` (short id and round) if
/// any.
pub fn graft(wanted: Option<(ShortId, u16)>) -> Bytes {
    let len = 1 + wanted.map_or(0, |_| IHAVE_ENTRY);
    let mut out = BytesMut::with_capacity(HEADER_LEN + len);
    out.put_u32(len as u32);
    out.put_u8(GRAFT);
    if let Some((id, round)) = wanted {
        out.put_slice(&id);
        out.put_u16(round);
    }
    out.freeze()
}

/// The wire bytes of a Prune frame.
pub fn prune() -> Bytes {
    Bytes::from_static(&[0, 0, 0, 1, PRUNE])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload_of(wire: &Bytes) -> Bytes {
        wire.slice(HEADER_LEN..)
    }

    #[test]
    fn every_frame_round_trips() {
        let id = short_id(&MessageId::of(b"m"));
        let entries = vec![(id, 3), (short_id(&MessageId::of(b"n")), 9)];
        let Ok(Frame::IHave(parsed)) = Frame::parse(&payload_of(&ihave(&entries))) else {
            panic!("an IHave frame");
        };
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed.iter().collect::<Vec<_>>(), entries);
        assert_eq!(
            Frame::parse(&payload_of(&graft(Some((id, 4))))),
            Ok(Frame::Graft {
                wanted: Some((id, 4))
            })
        );
        assert_eq!(Frame::parse(&payload_of(&prune())), Ok(Frame::Prune));
        let eager = Frame::Graft { wanted: None };
        assert_eq!(Frame::parse(&payload_of(&graft(None))), Ok(eager));
        let head = gossip_head(2, 5).unwrap();
        let wire = Bytes::from([&head[..], b"hi"].concat());
        let parsed = Frame::parse(&payload_of(&wire));
        let message = Bytes::from_static(b"hi");
        assert_eq!(parsed, Ok(Frame::Gossip { round: 5, message }));
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        for bad in [
            &[][..],
            &[9],
            &[GOSSIP, 0],
            &[IHAVE],
            &[IHAVE, 1, 2],
            &[GRAFT, 1],
            &[PRUNE, 0],
        ] {
            assert!(
                Frame::parse(&Bytes::copy_from_slice(bad)).is_err(),
                "{bad:?}"
            );
        }
        let too_many = vec![([0u8; SHORT_ID_LEN], 0); MAX_IHAVE + 1];
        let mut wire = BytesMut::new();
        wire.put_u8(IHAVE);
        for (id, round) in &too_many {
            wire.put_slice(id);
            wire.put_u16(*round);
        }
        assert_eq!(Frame::parse(&wire.freeze()), Err(WireError::Malformed));
    }

    #[test]
    fn a_preamble_is_never_a_plain_frame() {
        let as_length = u32::from_be_bytes(MAGIC);
        assert!(as_length > u32::MAX - (1 << 24));
        assert_eq!(parse_preamble(&preamble(1)[..4]), Preamble::Incomplete);
        let mut other = preamble(1);
        other[4] = 3;
        assert_eq!(parse_preamble(&other), Preamble::UnknownVersion(3));
        assert_eq!(parse_preamble(&[0xFF, b'G', b'X']), Preamble::Plain);
    }
}
