//! The application's handle on a running node.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_channel::Sender;
use bytes::Bytes;
use gossip_core::{Delivery, PeerId, PeerStats, PublishOutcome, Stats};

use crate::deliveries::{Deliveries, Taken};
use crate::driver::{Command, Driver, Event};
use crate::peer_address::PeerAddress;
use crate::runtime::Runtime;
use crate::{NetConfig, NodeError, StartError};

/// A running gossip node on runtime `R` (the adapters name it: `gossip_tokio::GossipNode`
/// is `GossipNode<Tokio>`). Dropping it stops the node abruptly; prefer
/// [`shutdown`](Self::shutdown).
pub struct GossipNode<R: Runtime> {
    local_addr: SocketAddr,
    publisher: Publisher<R>,
    deliveries: Deliveries,
    peer_count: Arc<PeerCount>,
    driver: Option<R::Task>,
}

impl<R: Runtime> std::fmt::Debug for GossipNode<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GossipNode")
            .field("local_addr", &self.local_addr)
            .field("peer_count", &self.peer_count())
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> GossipNode<R> {
    /// Binds the listener, logs `listening` (at info, with the bound address and the
    /// configured peers) before any dial, starts dialling the configured peers, and runs
    /// the node in tasks of runtime `R`.
    pub async fn start(mut config: NetConfig) -> Result<Self, StartError> {
        config.validate()?;
        if let Some(plumtree) = config.core.plumtree.as_mut() {
            if plumtree.node_id == 0 {
                plumtree.node_id = random_node_id();
            }
        }
        let core = gossip_core::Node::new(config.core.clone())?;
        let addr = config.listen;
        let bind_error = |source| StartError::Bind { addr, source };
        let listener = R::bind(addr, config.listen_backlog)
            .await
            .map_err(bind_error)?;
        let local_addr = R::local_addr(&listener).map_err(bind_error)?;
        // Logged before any dialler starts, so it is the node's first lifecycle line.
        let peers: Vec<String> = config.peers.iter().map(ToString::to_string).collect();
        let peers = format!("[{}]", peers.join(", "));
        tracing::info!(addr = %local_addr, %peers, "listening");
        // Unbounded in messages; the core bounds it in bytes (`delivery_queue_bytes`).
        let (deliver_tx, deliveries) = async_channel::unbounded();
        let (taken, woken) = Taken::new();
        let deliveries = Deliveries::new(deliveries, taken.clone());
        let peer_count = Arc::new(PeerCount::default());
        let channel = (deliver_tx, taken, woken);
        let (events, driver) = Driver::<R>::spawn(
            core,
            config,
            (listener, local_addr),
            channel,
            peer_count.clone(),
        );
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

    /// The next message delivered by the network, or `None` once the node has stopped
    /// (see [`Deliveries`] for what happens to those not taken).
    pub async fn next_delivery(&mut self) -> Option<Delivery> {
        self.deliveries.next().await
    }

    /// Hands out the delivery stream, for a task of its own. Dropping it tells the node
    /// that the application does not want deliveries (it only relays).
    pub fn take_deliveries(&mut self) -> Deliveries {
        let (_, empty) = async_channel::bounded(1);
        let (taken, _) = Taken::new();
        std::mem::replace(&mut self.deliveries, Deliveries::new(empty, taken))
    }

    /// Peers connected now.
    pub fn peer_count(&self) -> usize {
        self.peer_count.get()
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

    /// Dials `peer` (a [`SocketAddr`] or a [`PeerAddress`]) and keeps a connection to
    /// it, redialling as for the configured peers. Dialling a peer again does nothing.
    pub async fn dial(&self, peer: impl Into<PeerAddress>) -> Result<(), NodeError> {
        self.publisher.command(Command::Dial(peer.into())).await
    }

    /// A snapshot of the core's counters.
    pub async fn stats(&self) -> Result<Stats, NodeError> {
        let (reply, answer) = async_channel::bounded(1);
        self.publisher.command(Command::Stats(reply)).await?;
        answer.recv().await.map_err(|_| NodeError::Stopped)
    }

    /// What the core observed of each connected peer (its direction, score, traffic,
    /// queue), with its address, in peer id order.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NodeError> {
        let (reply, answer) = async_channel::bounded(1);
        self.publisher.command(Command::Peers(reply)).await?;
        answer.recv().await.map_err(|_| NodeError::Stopped)
    }

    /// A handle that can publish from another task.
    pub fn publisher(&self) -> Publisher<R> {
        self.publisher.clone()
    }

    /// Stops accepting and dialling, gives writers up to `deadline` to flush what is
    /// queued, then closes every socket.
    pub async fn shutdown(mut self, deadline: Duration) {
        let (reply, done) = async_channel::bounded(1);
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
pub struct Publisher<R: Runtime> {
    events: Sender<Event<R>>,
}

impl<R: Runtime> Clone for Publisher<R> {
    fn clone(&self) -> Self {
        Publisher {
            events: self.events.clone(),
        }
    }
}

impl<R: Runtime> std::fmt::Debug for Publisher<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

impl<R: Runtime> Publisher<R> {
    /// Same as [`GossipNode::publish`].
    pub async fn publish(&self, payload: impl Into<Bytes>) -> Result<PublishOutcome, NodeError> {
        let (reply, answer) = async_channel::bounded(1);
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

/// Peers connected now, and a signal for whoever waits on a change.
#[derive(Debug, Default)]
pub(crate) struct PeerCount {
    count: AtomicUsize,
    changed: event_listener::Event,
}

impl PeerCount {
    pub(crate) fn get(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Sets the count, waking the waiters if it changed.
    pub(crate) fn set(&self, count: usize) {
        if self.count.swap(count, Ordering::AcqRel) != count {
            self.wake_all();
        }
    }

    /// Wakes every waiter, to look again.
    pub(crate) fn wake_all(&self) {
        self.changed.notify(usize::MAX);
    }
}

/// One connected peer, from [`GossipNode::peers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerInfo {
    /// The connection's id in the core.
    pub peer: PeerId,
    /// The remote address.
    pub addr: SocketAddr,
    /// What the core observed of it; [`PeerStats::score`] is what eviction goes by.
    pub stats: PeerStats,
}

/// A node id for this start (see [`NodeId`](gossip_core::plumtree::NodeId)), never 0:
/// std's randomly keyed hasher over the clock.
fn random_node_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    hasher.write_u128(since_epoch.as_nanos());
    hasher.finish().max(1)
}
