//! # gossip-smol
//!
//! Runs a [`gossip_core::Node`] over real TCP on smol 2 (async-net, async-io). The API
//! has the shape of `gossip-tokio`'s, so switching runtime is changing the `use` line
//! (and the executor you run it on). As there, the adapter only moves bytes; every
//! protocol policy lives in the core.
//!
//! ```no_run
//! use gossip_core::transport::NetConfig;
//! use gossip_smol::GossipNode;
//!
//! smol::block_on(async {
//!     let config = NetConfig::new("127.0.0.1:7001".parse().unwrap())
//!         .with_peers(["127.0.0.1:7000".parse().unwrap()]);
//!     let mut node = GossipNode::start(config).await?;
//!     node.publish(&b"hello"[..]).await.expect("fits");
//!     while let Some(message) = node.next_delivery().await {
//!         println!("{}", String::from_utf8_lossy(&message.payload));
//!     }
//!     Ok::<(), std::io::Error>(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Tasks run on smol's global executor (`SMOL_THREADS` sets its threads).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod connection;
mod dialler;
mod driver;
mod handle;

pub use gossip_core::transport::{NetConfig, NodeError};
pub use handle::{GossipNode, Publisher};
