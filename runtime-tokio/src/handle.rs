//! The application's handle on a running node.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use gossip_core::transport::{NetConfig, NodeError};
use gossip_core::{Delivery, PublishOutcome, Stats};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::driver::{Command, Driver, Event};

/// A running gossip node on tokio. Dropping it stops the node abruptly; prefer
/// [`shutdown`](Self::shutdown).
#[derive(Debug)]
pub struct GossipNode {
    local_addr: SocketAddr,
    publisher: Publisher,
    deliveries: mpsc::Receiver<Delivery>,
    peer_count: watch::Receiver<usize>,
    driver: JoinHandle<()>,
}

impl GossipNode {
    /// Binds the listener, starts dialling the configured peers, and runs the node on the
    /// current tokio runtime.
    pub async fn start(config: NetConfig) -> io::Result<Self> {
        let core = gossip_core::Node::new(config.core.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let (deliver_tx, deliveries) = mpsc::channel(config.delivery_queue.max(1));
        let (count_tx, peer_count) = watch::channel(0);
        let (events, driver) = Driver::spawn(core, config, listener, deliver_tx, count_tx);
        Ok(GossipNode {
            local_addr,
            publisher: Publisher { events },
            deliveries,
            peer_count,
            driver,
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
        self.deliveries.recv().await
    }

    /// Hands out the delivery stream, for a task of its own.
    pub fn take_deliveries(&mut self) -> mpsc::Receiver<Delivery> {
        let (_, empty) = mpsc::channel(1);
        std::mem::replace(&mut self.deliveries, empty)
    }

    /// Peers connected now.
    pub fn peer_count(&self) -> usize {
        *self.peer_count.borrow()
    }

    /// Waits until at least `count` peers are connected (or the node stops).
    pub async fn wait_for_peers(&self, count: usize) -> Result<(), NodeError> {
        let mut peer_count = self.peer_count.clone();
        peer_count
            .wait_for(|&now| now >= count)
            .await
            .map(|_| ())
            .map_err(|_| NodeError::Stopped)
    }

    /// Dials `addr` and keeps a connection to it, redialling as for the configured peers.
    /// Dialling an address again does nothing.
    pub async fn dial(&self, addr: SocketAddr) -> Result<(), NodeError> {
        self.publisher.command(Command::Dial(addr)).await
    }

    /// A snapshot of the core's counters.
    pub async fn stats(&self) -> Result<Stats, NodeError> {
        let (reply, answer) = oneshot::channel();
        self.publisher.command(Command::Stats(reply)).await?;
        answer.await.map_err(|_| NodeError::Stopped)
    }

    /// A handle that can publish from another task.
    pub fn publisher(&self) -> Publisher {
        self.publisher.clone()
    }

    /// Stops accepting and dialling, gives writers up to `deadline` to flush what is
    /// queued, then closes every socket.
    pub async fn shutdown(mut self, deadline: Duration) {
        let (reply, done) = oneshot::channel();
        if self
            .publisher
            .command(Command::Shutdown(deadline, reply))
            .await
            .is_ok()
        {
            let _ = done.await;
        }
        let _ = (&mut self.driver).await;
    }
}

impl Drop for GossipNode {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// A cloneable handle that publishes into a [`GossipNode`] from any task.
#[derive(Debug, Clone)]
pub struct Publisher {
    events: mpsc::Sender<Event>,
}

impl Publisher {
    /// Same as [`GossipNode::publish`].
    pub async fn publish(&self, payload: impl Into<Bytes>) -> Result<PublishOutcome, NodeError> {
        let (reply, answer) = oneshot::channel();
        self.command(Command::Publish(payload.into(), reply))
            .await?;
        answer
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
