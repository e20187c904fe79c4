//! What the socket adapters share, so that an adapter is only its socket loops: the
//! driver's event handling ([`Engine`]), vectored-write batching ([`WriteQueue`]), redial
//! delays ([`Backoff`]), configuration ([`NetConfig`]) and errors ([`NodeError`]). Pure
//! data structures: no I/O, no runtime.

mod backoff;
mod engine;
mod net_config;
mod write_queue;

pub use backoff::Backoff;
pub use engine::{Closed, Connection, Engine, SocketEvent};
pub use net_config::NetConfig;
pub use write_queue::{WriteQueue, SLICES_PER_WRITE};

/// A call on a running adapter node failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// The core refused the payload.
    #[error(transparent)]
    Publish(#[from] crate::PublishError),
    /// The node has shut down.
    #[error("the node has shut down")]
    Stopped,
}
