//! Which protocol a connection speaks: the driver's side of the `plumtree` preamble
//! exchange (the format is [`gossip_core::plumtree::wire`]).
//!
//! A node that speaks plumtree sends its preamble first on the connections it dials,
//! and expects one back: a peer that closes instead, or stays silent for
//! `NetConfig::preamble_timeout`, does not speak it (a `flood` node disconnects on the
//! preamble, a tutorial node waits for a 4 GB frame), and the address is dialled again
//! in plain mode. On connections it accepts, it looks at the first bytes: a preamble is
//! answered with its own, anything else (or silence until the timeout) is a plain
//! peer, whose bytes are its first frames. A node without plumtree never sends a
//! preamble, and takes one for an oversized frame, as it always did.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use gossip_core::plumtree::wire::{parse_preamble, Preamble, PREAMBLE_LEN};
use gossip_core::plumtree::NodeId;

/// What a connection waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// This node dialled and sent its preamble: the answer must be one.
    Answer,
    /// This node accepted: a preamble, or a plain peer's first bytes.
    Preamble,
}

/// A connection whose protocol is not settled yet.
#[derive(Debug)]
pub(crate) struct Hello {
    expect: Expect,
    /// When the connection opened.
    pub(crate) opened: Instant,
    pub(crate) deadline: Instant,
    received: BytesMut,
    /// An accepted peer's preamble came, with this node id, and was answered: the
    /// connection goes to the core once the answer is written.
    answered: Option<NodeId>,
}

/// How a connection's protocol was settled.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Not enough bytes yet.
    Wait,
    /// The peer speaks plumtree; `leftover` came after its preamble.
    Plumtree { node_id: NodeId, leftover: Bytes },
    /// A plain peer; `received` is what it sent so far (its first frames).
    Plain { received: Bytes },
    /// The dialled peer did not answer with a preamble: redial it plain.
    NoAnswer,
    /// This node's answer could not be written in time: drop the connection.
    Dropped,
}

impl Hello {
    /// Waits for `expect`, from when the connection opened until `deadline`.
    pub(crate) fn new(expect: Expect, opened: Instant, deadline: Instant) -> Self {
        Hello {
            expect,
            opened,
            deadline,
            received: BytesMut::new(),
            answered: None,
        }
    }

    /// The accepted peer's preamble (from `node_id`) is answered; `leftover` came
    /// after it. Bytes that come until the answer is written are kept for the core.
    pub(crate) fn answered(&mut self, node_id: NodeId, leftover: &[u8]) {
        self.answered = Some(node_id);
        self.received.clear();
        self.received.extend_from_slice(leftover);
    }

    /// Whether this node accepted the connection (and waits for a preamble or a
    /// plain peer's first bytes).
    pub(crate) fn is_accepted(&self) -> bool {
        self.expect == Expect::Preamble
    }

    /// Whether the answer is being written.
    pub(crate) fn is_answered(&self) -> bool {
        self.answered.is_some()
    }

    /// Once the answer is written: the peer's node id and the bytes it sent after its
    /// preamble.
    pub(crate) fn take_answered(&mut self) -> Option<(NodeId, Bytes)> {
        let node_id = self.answered.take()?;
        Some((node_id, std::mem::take(&mut self.received).freeze()))
    }

    /// Bytes arrived.
    pub(crate) fn received(&mut self, data: &[u8]) -> Outcome {
        self.received.extend_from_slice(data);
        if self.answered.is_some() {
            return Outcome::Wait;
        }
        match parse_preamble(&self.received) {
            Preamble::Incomplete => Outcome::Wait,
            Preamble::Plumtree { node_id } => {
                let leftover = self.received.split_off(PREAMBLE_LEN).freeze();
                Outcome::Plumtree { node_id, leftover }
            }
            Preamble::Plain | Preamble::UnknownVersion(_) => self.not_plumtree(),
        }
    }

    /// The deadline passed, or the connection closed, with no preamble (or with this
    /// node's answer not written: then the connection is simply dropped).
    pub(crate) fn not_plumtree(&mut self) -> Outcome {
        match self.expect {
            _ if self.answered.is_some() => Outcome::Dropped,
            Expect::Answer => Outcome::NoAnswer,
            Expect::Preamble => Outcome::Plain {
                received: std::mem::take(&mut self.received).freeze(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gossip_core::plumtree::wire::preamble;

    #[test]
    fn a_preamble_in_pieces_then_frames() {
        let mut hello = Hello::new(Expect::Answer, Instant::now(), Instant::now());
        let bytes = [&preamble(42)[..], &[0, 0, 0, 1, 3]].concat();
        assert_eq!(hello.received(&bytes[..3]), Outcome::Wait);
        let leftover = Bytes::from_static(&[0, 0, 0, 1, 3]);
        let node_id = 42;
        assert_eq!(
            hello.received(&bytes[3..]),
            Outcome::Plumtree { node_id, leftover }
        );
    }

    #[test]
    fn plain_bytes_are_a_plain_peer_or_no_answer() {
        let frame = [0, 0, 0, 2, b'h', b'i'];
        let mut accepted = Hello::new(Expect::Preamble, Instant::now(), Instant::now());
        let received = Bytes::copy_from_slice(&frame);
        assert_eq!(accepted.received(&frame), Outcome::Plain { received });
        let mut dialled = Hello::new(Expect::Answer, Instant::now(), Instant::now());
        assert_eq!(dialled.received(&frame), Outcome::NoAnswer);
        let mut silent = Hello::new(Expect::Preamble, Instant::now(), Instant::now());
        let received = Bytes::new();
        assert_eq!(silent.not_plumtree(), Outcome::Plain { received });
    }
}
