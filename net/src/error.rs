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
    /// A connection setting cannot work.
    #[error("invalid configuration: {0}")]
    NetConfig(#[from] NetConfigError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address from [`NetConfig::listen`](crate::NetConfig::listen).
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
}

/// A [`NetConfig`](crate::NetConfig) setting that cannot work
/// ([`NetConfig::validate`](crate::NetConfig::validate)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetConfigError {
    /// A setting that must be more than zero is zero: `redial_initial` or `redial_max`
    /// (a peer that is down would be dialled in a busy loop), `read_chunk` or
    /// `event_queue` (nothing could be read), `preamble_timeout` (no plumtree peer could
    /// answer in time), or `Some` zero for `keepalive` or `kernel_unsent_bytes` (`None`
    /// leaves the system's setting).
    #[error("{0} must be more than zero")]
    Zero(&'static str),
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
