//! # gossip-core
//!
//! A sans-IO state machine for peer-to-peer message flooding ("gossip"), in the style of
//! `quinn-proto` and `str0m`: it does no I/O, reads no clock, spawns nothing and has no
//! global state. The embedding application (or one of the `gossip-tokio` / `gossip-smol`
//! adapters) feeds it events — a peer connected, bytes arrived from a peer, bytes were
//! flushed to a peer, a peer went away, the application published a payload, time
//! advanced — and drains the [`Action`]s it asks for: send [`Frames`] to a peer, deliver a
//! new message to the application, disconnect a peer for a typed [`DisconnectReason`],
//! pause or resume reading a peer (flow control).
//!
//! ## Wire protocol
//!
//! A connection carries frames: a 4-byte big-endian `u32` length `N`, then `N` payload
//! bytes. One payload is one message, identified by the BLAKE3 hash of the payload
//! ([`MessageId`]). There is no handshake and no other frame type.
//!
//! ## Embedding by hand
//!
//! ```
//! use std::time::Instant;
//! use gossip_core::{Action, Config, Direction, Node, PeerId};
//!
//! let now = Instant::now();
//! let mut node = Node::new(Config::default())?;
//! let (alice, bob) = (PeerId(1), PeerId(2));
//! node.peer_connected(now, alice, Direction::Outbound); // we dialled alice
//! node.peer_connected(now, bob, Direction::Inbound); // bob dialled us
//!
//! // Alice sends the frame for "hi", split over two reads.
//! node.handle_received(now, alice, &[0, 0, 0, 2, b'h']);
//! node.handle_received(now, alice, b"i");
//!
//! let mut delivered = Vec::new();
//! let mut sent_to = Vec::new();
//! for action in node.drain_actions() {
//!     match action {
//!         Action::Deliver(msg) => delivered.push(msg.payload),
//!         Action::Send { peer, frames } => {
//!             // A runtime writes `frames.parts()` to the socket, in order, then
//!             // reports the flushed bytes back with `handle_flushed`.
//!             sent_to.push(peer);
//!         }
//!         Action::Disconnect { peer, reason } => panic!("{peer:?} dropped: {reason}"),
//!         // Flow control: stop reading a peer's socket until told to resume.
//!         Action::PauseReading { .. } | Action::ResumeReading { .. } => {}
//!     }
//! }
//! assert_eq!(delivered, [&b"hi"[..]]);
//! assert_eq!(sent_to, [bob]); // forwarded to everyone but the sender
//! // The application took the delivery: its room in the delivery queue is free again.
//! node.handle_delivered(now, delivered.len(), 2);
//!
//! // The same bytes again are a duplicate: dropped and counted.
//! node.handle_received(now, bob, &[0, 0, 0, 2, b'h', b'i']);
//! assert_eq!(node.drain_actions().count(), 0);
//! assert_eq!(node.stats().duplicates, 1);
//! # Ok::<(), gossip_core::ConfigError>(())
//! ```
//!
//! ## Modules
//!
//! - [`frame`]: the length-prefix codec ([`FrameDecoder`], [`Frames`]).
//! - [`seen`]: the bounded, keyed set of message ids already handled.
//! - [`node`]: the state machine itself.
//! - [`plumtree`]: the opt-in `plumtree` protocol (broadcast trees, repair).
//! - [`sim`]: a deterministic in-memory network of nodes, for property tests.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod action;
mod config;
pub mod frame;
mod id;
pub mod node;
mod peer_stats;
pub mod plumtree;
pub mod seen;
pub mod sim;
mod stats;

pub use action::{Action, Delivery, DisconnectReason};
pub use config::{
    Config, ConfigError, Overload, RateLimit, MAX_PLUMTREE_FRAME_LEN, QUEUED_FRAME_OVERHEAD,
};
pub use frame::{FrameDecoder, FrameError, Frames, HEADER_LEN};
pub use id::{MessageId, PeerId};
pub use node::{Node, PublishError, PublishOutcome};
pub use peer_stats::{Direction, PeerStats};
pub use seen::{Fingerprinter, SeenHasher, SeenKey, SeenSet};
pub use stats::Stats;

/// The README's Rust examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExamples;
