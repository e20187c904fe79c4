//! The application's handle on a running node.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gossip_core::transport::{NetConfig, NodeError};
use gossip_core::{Delivery, PublishOutcome, Stats};
use smol::channel::{bounded, Receiver, Sender};
use smol::net::TcpListener;
use smol::Task;

use crate::driver::{Command, Driver, Event, PeerCount};

/// A running gossip node on smol. Dropping it stops the node abruptly; prefer
/// [`shutdown`](Self::shutdown).
#[derive(Debug)]
pub struct GossipNode {
    local_addr: SocketAddr,
    publisher: Publisher,
    deliveries: Receiver<Delivery>,
    peer_count: Arc<PeerCount>,
    driver: Option<Task<()>>,
}

impl GossipNode {
    /// Binds the listener, starts dialling the configured peers, and runs the node on
    /// smol's global executor.
    pub async fn start(config: NetConfig) -> io::Result<Self> {
        let core = gossip_core::Node::new(config.core.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let (deliver_tx, deliveries) = bounded(config.delivery_queue.max(1));
        let peer_count = Arc::new(PeerCount::default());
        let (events, driver) =
            Driver::spawn(core, config, listener, deliver_tx, peer_count.clone());
        Ok(GossipNode {
            local_addr,
            publisher: Publisher { events },
            deliveries,
            peer_count,
            driver: Some(driver),
        })
    }

    /// The address the node listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Publishes a payload to every peer. The publisher receives no delivery of it.
    pub async fn publish(&self, payload: impl Into<Bytes>) -> Result<PublishOutcome, NodeError> {
        self.publisher.publish(payload).await
    }

    /// The next message delivered by the network, or `None` once the node has stopped.
    /// Deliveries not taken buffer up to [`NetConfig::delivery_queue`], then the node
    /// stops reading from its peers until they are taken.
    pub async fn next_delivery(&mut self) -> Option<Delivery> {
        self.deliveries.recv().await.ok()
    }

    /// Hands out the delivery stream, for a task of its own.
    pub fn take_deliveries(&mut self) -> Receiver<Delivery> {
        let (_, empty) = bounded(1);
        std::mem::replace(&mut self.deliveries, empty)
    }

    /// Peers connected now.
    pub fn peer_count(&self) -> usize {
        self.peer_count.count.load(Ordering::Acquire)
    }

    /// Waits until at least `count` peers are connected (or the node stops).
    pub async fn wait_for_peers(&self, count: usize) -> Result<(), NodeError> {
        loop {
            if self.peer_count() >= count {
                return Ok(());
            }
            let changed = self.peer_count.changed.listen();
            if self.peer_count() >= count {
                return Ok(());
            }
            if self.publisher.events.is_closed() {
                return Err(NodeError::Stopped);
            }
            changed.await;
        }
    }

    /// Dials `addr` and keeps a connection to it, redialling as for the configured peers.
    /// Dialling an address again does nothing.
    pub async fn dial(&self, addr: SocketAddr) -> Result<(), NodeError> {
        self.publisher.command(Command::Dial(addr)).await
    }

    /// A snapshot of the core's counters.
    pub async fn stats(&self) -> Result<Stats, NodeError> {
        let (reply, answer) = bounded(1);
        self.publisher.command(Command::Stats(reply)).await?;
        answer.recv().await.map_err(|_| NodeError::Stopped)
    }

    /// A handle that can publish from another task.
    pub fn publisher(&self) -> Publisher {
        self.publisher.clone()
    }

    /// Stops accepting and dialling, gives writers up to `deadline` to flush what is
    /// queued, then closes every socket.
    pub async fn shutdown(mut self, deadline: Duration) {
        let (reply, done) = bounded(1);
        if self
            .publisher
            .command(Command::Shutdown(deadline, reply))
            .await
            .is_ok()
        {
            let _ = done.recv().await;
        }
        if let Some(driver) = self.driver.take() {
            driver.await;
        }
    }
}

/// A cloneable handle that publishes into a [`GossipNode`] from any task.
#[derive(Debug, Clone)]
pub struct Publisher {
    events: Sender<Event>,
}

impl Publisher {
    /// Same as [`GossipNode::publish`].
    pub async fn publish(&self, payload: impl Into<Bytes>) -> Result<PublishOutcome, NodeError> {
        let (reply, answer) = bounded(1);
        self.command(Command::Publish(payload.into(), reply))
            .await?;
        answer
            .recv()
            .await
            .map_err(|_| NodeError::Stopped)?
            .map_err(NodeError::Publish)
    }

    async fn command(&self, command: Command) -> Result<(), NodeError> {
        self.events
            .send(Event::Command(command))
            .await
            .map_err(|_| NodeError::Stopped)
    }
}
