//! # gossip-tokio
//!
//! Runs a [`gossip_core::Node`] over real TCP on tokio. The adapter only moves bytes: it
//! owns the listener, the sockets and the timer, feeds what it reads into the core and
//! carries out the core's actions. Every protocol policy (framing, limits, seen set,
//! slow peers) lives in the core, so the smol adapter behaves the same.
//!
//! ```no_run
//! use gossip_core::transport::NetConfig;
//! use gossip_tokio::GossipNode;
//!
//! # async fn run() -> std::io::Result<()> {
//! let config = NetConfig::new("127.0.0.1:7001".parse().unwrap())
//!     .with_peers(["127.0.0.1:7000".parse().unwrap()]);
//! let mut node = GossipNode::start(config).await?;
//! node.publish(&b"hello"[..]).await.expect("fits");
//! while let Some(message) = node.next_delivery().await {
//!     println!("{}", String::from_utf8_lossy(&message.payload));
//! }
//! # Ok(()) }
//! ```
//!
//! Structure: one driver task owns the core; each connection has a reader task (socket
//! to driver) and a writer task (driver to socket, many frames per vectored write); each
//! configured peer has a dialler task that redials with capped exponential backoff.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod connection;
mod dialler;
mod driver;
mod handle;

pub use gossip_core::transport::{NetConfig, NodeError};
pub use handle::{GossipNode, Publisher};
