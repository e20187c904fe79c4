//! The runtime-neutral half of an adapter's driver task.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use crate::{
    Action, Delivery, DisconnectReason, Frame, Node, PeerId, PublishError, PublishOutcome, Stats,
};

/// The adapter's side of one connection, as the [`Engine`] drives it.
pub trait Connection {
    /// Queues a frame for this connection's writer. Called only for frames the core
    /// accounted for, so an unbounded channel here is bounded by
    /// [`Config::peer_queue_bytes`](crate::Config::peer_queue_bytes). May hold frames
    /// back until [`flush`](Self::flush), to hand them over in one batch.
    fn send(&mut self, frame: Frame);
    /// Hands frames held back by [`send`](Self::send) to the writer. Called once after
    /// each event.
    fn flush(&mut self) {}
    /// Stops the connection's tasks and closes its socket now.
    fn close(self);
    /// Stops reading, lets the writer send what is queued, then closes (shutdown, or
    /// the peer went away).
    fn finish(self);
}

/// What a connection's tasks report to the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketEvent {
    /// A read.
    Received(PeerId, Bytes),
    /// A write of this many bytes.
    Flushed(PeerId, usize),
    /// The socket closed or failed.
    Closed(PeerId),
}

/// A connection that went away, for the adapter to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed {
    /// The peer's id.
    pub peer: PeerId,
    /// The remote address.
    pub addr: SocketAddr,
    /// Why the core dropped it, or `None` if the socket closed.
    pub reason: Option<DisconnectReason>,
}

/// A [`Node`] plus the connections an adapter has open: every event an adapter's driver
/// task receives maps to one method here, which also carries out the core's actions (frames
/// to their connection, disconnects). What is left to the adapter is async: handing
/// [deliveries](Self::next_delivery) to the application and logging
/// [closed](Self::drain_closed) connections.
///
/// ```
/// use std::time::Instant;
/// use bytes::Bytes;
/// use gossip_core::transport::{Connection, Engine, SocketEvent};
/// use gossip_core::{frame::encode, Config, Frame, Node};
///
/// /// A connection whose "socket" is a vector.
/// struct Recorder(Vec<Frame>);
/// impl Connection for &mut Recorder {
///     fn send(&mut self, frame: Frame) { self.0.push(frame) }
///     fn close(self) {}
///     fn finish(self) {}
/// }
///
/// let (mut a, mut b) = (Recorder(vec![]), Recorder(vec![]));
/// let mut engine = Engine::new(Node::new(Config::default())?);
/// let now = Instant::now();
/// let from_a = engine.connected(now, "127.0.0.1:1".parse().unwrap(), &mut a);
/// engine.connected(now, "127.0.0.1:2".parse().unwrap(), &mut b);
/// engine.handle_socket(now, SocketEvent::Received(from_a, Bytes::from(encode(b"hi"))));
/// assert_eq!(engine.next_delivery().unwrap().payload, &b"hi"[..]);
/// drop(engine);
/// assert_eq!((a.0.len(), b.0.len()), (0, 1)); // forwarded to b only
/// # Ok::<(), gossip_core::ConfigError>(())
/// ```
#[derive(Debug)]
pub struct Engine<C> {
    node: Node,
    open: HashMap<PeerId, (SocketAddr, C)>,
    next_peer: u64,
    deliveries: VecDeque<Delivery>,
    closed: Vec<Closed>,
}

impl<C: Connection> Engine<C> {
    /// An engine with no connections.
    pub fn new(node: Node) -> Self {
        Engine {
            node,
            open: HashMap::new(),
            next_peer: 0,
            deliveries: VecDeque::new(),
            closed: Vec::new(),
        }
    }

    /// The id the next [`connected`](Self::connected) will use, so the adapter can
    /// start the connection's tasks with it first.
    pub fn next_peer(&self) -> PeerId {
        PeerId(self.next_peer)
    }

    /// A connection is up (dialled or accepted).
    pub fn connected(&mut self, now: Instant, addr: SocketAddr, connection: C) -> PeerId {
        let peer = self.next_peer();
        self.next_peer += 1;
        self.open.insert(peer, (addr, connection));
        self.node.peer_connected(now, peer);
        self.carry_out();
        peer
    }

    /// Something happened on a connection's socket.
    pub fn handle_socket(&mut self, now: Instant, event: SocketEvent) {
        match event {
            SocketEvent::Received(peer, data) => self.node.handle_received_bytes(now, peer, data),
            SocketEvent::Flushed(peer, bytes) => self.node.handle_flushed(now, peer, bytes),
            SocketEvent::Closed(peer) => {
                self.node.peer_disconnected(now, peer);
                if let Some((addr, connection)) = self.open.remove(&peer) {
                    connection.finish();
                    let reason = None;
                    self.closed.push(Closed { peer, addr, reason });
                }
            }
        }
        self.carry_out();
    }

    /// The application publishes a payload.
    pub fn publish(
        &mut self,
        now: Instant,
        payload: Bytes,
    ) -> Result<PublishOutcome, PublishError> {
        let outcome = self.node.publish(now, payload);
        self.carry_out();
        outcome
    }

    /// The deadline from [`poll_timeout`](Self::poll_timeout) passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.node.handle_timeout(now);
        self.carry_out();
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.node.poll_timeout()
    }

    /// The core's counters.
    pub fn stats(&self) -> Stats {
        self.node.stats()
    }

    /// Connections open now.
    pub fn connection_count(&self) -> usize {
        self.open.len()
    }

    /// The next message to hand to the application, oldest first. (One at a time, so
    /// the adapter can await the application between them.)
    pub fn next_delivery(&mut self) -> Option<Delivery> {
        self.deliveries.pop_front()
    }

    /// Connections that went away since the last call, for logging.
    pub fn drain_closed(&mut self) -> std::vec::Drain<'_, Closed> {
        self.closed.drain(..)
    }

    /// Finishes every connection: no more reads, queued output still goes out.
    pub fn finish_all(&mut self) {
        for (_, (_, connection)) in self.open.drain() {
            connection.finish();
        }
    }

    fn carry_out(&mut self) {
        while let Some(action) = self.node.poll_action() {
            match action {
                Action::Send { peer, frame } => {
                    if let Some((_, connection)) = self.open.get_mut(&peer) {
                        connection.send(frame);
                    }
                }
                Action::Deliver(delivery) => self.deliveries.push_back(delivery),
                Action::Disconnect { peer, reason } => {
                    if let Some((addr, connection)) = self.open.remove(&peer) {
                        connection.close();
                        let reason = Some(reason);
                        self.closed.push(Closed { peer, addr, reason });
                    }
                }
            }
        }
        for (_, connection) in self.open.values_mut() {
            connection.flush();
        }
    }
}
