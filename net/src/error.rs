//! What can go wrong when starting or using a node.

use std::io;
use std::net::SocketAddr;

use gossip_core::{ConfigError, PublishError};

/// [`GossipNode::start`](crate::GossipNode::start) failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The core's limits are inconsistent.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address from [`NetConfig::listen`](crate::NetConfig::listen).
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
}

/// A call on a running node failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// The core refused the payload.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// The node has shut down.
    #[error("the node has shut down")]
    Stopped,
}
