//! The driver's synchronous half: the core plus the open connections. How each
//! connection's protocol is settled first is in [`settling`].

mod settling;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::handle::PeerInfo;
use crate::hello::{Expect, Hello, Outcome};
use gossip_core::plumtree::wire::{self, PREAMBLE_LEN};
use gossip_core::{
    Action, Delivery, Direction, DisconnectReason, Frames, Node, PeerId, PublishError,
    PublishOutcome, Stats,
};

/// One connection's tasks, as the [`Engine`] drives them. Dropping a connection stops
/// its tasks and closes its socket at once.
pub(crate) trait Connection {
    /// Hands this event's frames for the peer to its writer, in order. Called only with
    /// frames the core accounted for, so an unbounded channel here is bounded by
    /// [`Config::peer_queue_bytes`](gossip_core::Config::peer_queue_bytes).
    fn send(&mut self, frames: Vec<Frames>);
    /// Lets the reader make `count` more reads (each handed back as one
    /// [`SocketEvent::Received`]).
    fn grant_reads(&mut self, count: usize);
    /// Writes this node's plumtree preamble, before any frame.
    fn send_preamble(&mut self, preamble: [u8; PREAMBLE_LEN]);
    /// Tells the dialler that made this connection, if any, how to dial again once it
    /// is closed.
    fn redial(&mut self, hint: Redial);
}

/// How a dialler should dial its address again after the connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Redial {
    /// The peer does not speak plumtree: dial it plain from now on, at once. `since`:
    /// when the connection that found it out opened; the next plain one is sent what
    /// this node took since then ([`Node::peer_connected_since`]).
    Plain { since: Instant },
    /// The address is this node's own: stop dialling it.
    Never,
    /// Another connection to the same node is kept: dial again only after the
    /// longest backoff.
    Later,
}

/// How a connection came to be: its remote address, who dialled, and whether the
/// dialler wants it plain (its peer did not answer a preamble before).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) addr: SocketAddr,
    /// This end's address, if the socket told it.
    pub(crate) local: Option<SocketAddr>,
    pub(crate) direction: Direction,
    pub(crate) plain: bool,
    /// A plain redial's: when the connection that went unanswered opened (see
    /// [`Redial::Plain`]).
    pub(crate) missed_since: Option<Instant>,
}

/// Reads a connection may have under way or waiting for the core at once: one being
/// handled while the next is read. The core pauses a peer by receiving no more grants,
/// so after a pause at most this many reads of each connection still come in.
pub(crate) const READ_AHEAD: usize = 2;

/// What a connection's tasks report to the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SocketEvent {
    /// A read.
    Received(PeerId, Bytes),
    /// A write of this many bytes.
    Flushed(PeerId, usize),
    /// The socket closed or failed.
    Closed(PeerId),
    /// This node's plumtree preamble is written.
    PreambleSent(PeerId),
}

/// A connection that went away, for the driver to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed {
    /// The peer's id.
    pub(crate) peer: PeerId,
    /// The remote address.
    pub(crate) addr: SocketAddr,
    /// Why the core dropped it, or `None` if the socket closed.
    pub(crate) reason: Option<DisconnectReason>,
}

/// A [`Node`] plus the connections the driver has open: every event the driver task
/// receives maps to one method here, which also carries out the core's actions (frames
/// to their connection, disconnects). What is left to the driver is async: handing
/// [deliveries](Self::next_delivery) to the application and logging
/// [closed](Self::drain_closed) connections.
#[derive(Debug)]
pub(crate) struct Engine<C> {
    node: Node,
    open: HashMap<PeerId, Open<C>>,
    next_peer: u64,
    deliveries: VecDeque<Delivery>,
    closed: Vec<Closed>,
    /// Connections whose protocol was settled by a preamble exchange (or its absence),
    /// for the driver to log: the peer, its address, whether it speaks plumtree.
    settled: Vec<(PeerId, SocketAddr, bool)>,
}

/// One open connection.
#[derive(Debug)]
struct Open<C> {
    addr: SocketAddr,
    /// This end's address, if known.
    local: Option<SocketAddr>,
    connection: C,
    /// Frames of the current event, handed over in one batch.
    batch: Vec<Frames>,
    /// Whether the core wants bytes from this peer.
    reading: bool,
    /// Reads granted and not yet handed back.
    granted: usize,
    /// Who dialled.
    direction: Direction,
    /// While the protocol is not settled: the core does not know the peer yet.
    hello: Option<Hello>,
}

impl<C: Connection> Engine<C> {
    /// An engine with no connections.
    pub(crate) fn new(node: Node) -> Self {
        Engine {
            node,
            open: HashMap::new(),
            next_peer: 0,
            deliveries: VecDeque::new(),
            closed: Vec::new(),
            settled: Vec::new(),
        }
    }

    /// The id the next [`connected`](Self::connected) will use, so the adapter can
    /// start the connection's tasks with it first.
    pub(crate) fn next_peer(&self) -> PeerId {
        PeerId(self.next_peer)
    }

    /// A connection is up: dialled by this node (outbound) or accepted (inbound). With
    /// plumtree, its protocol is settled first (see [`hello`](crate::hello)), within
    /// `preamble_timeout`; meanwhile the core does not know it.
    pub(crate) fn connected(
        &mut self,
        now: Instant,
        origin: Origin,
        mut connection: C,
        preamble_timeout: Duration,
    ) -> PeerId {
        let peer = self.next_peer();
        self.next_peer += 1;
        if self.closed_as_own(now, &origin, &mut connection) {
            let (addr, reason) = (origin.addr, None);
            self.closed.push(Closed { peer, addr, reason });
            return peer;
        }
        let own = self.node.config().plumtree.as_ref().map(|p| p.node_id);
        let expect = match (own, origin.direction) {
            (Some(own), Direction::Outbound) if !origin.plain => {
                connection.send_preamble(wire::preamble(own));
                Some(Expect::Answer)
            }
            (Some(_), Direction::Inbound) => Some(Expect::Preamble),
            _ => None,
        };
        if expect == Some(Expect::Preamble) {
            self.make_room_to_wait();
        }
        let deadline = now.checked_add(preamble_timeout).unwrap_or(now);
        let direction = origin.direction;
        let open = Open {
            addr: origin.addr,
            local: origin.local,
            connection,
            batch: Vec::new(),
            reading: true,
            granted: 0,
            direction,
            hello: expect.map(|expect| Hello::new(expect, now, deadline)),
        };
        self.open.insert(peer, open);
        if expect.is_none() {
            match origin.missed_since {
                Some(since) => self.node.peer_connected_since(now, peer, direction, since),
                None => self.node.peer_connected(now, peer, direction),
            }
            self.carry_out();
        }
        if let Some(open) = self.open.get_mut(&peer) {
            open.grant_reads();
        }
        peer
    }

    /// Takes `peer`'s connection out and records that it closed, and why, for the
    /// driver to log. The caller may still tell its dialler how to dial again; dropping
    /// it closes the socket.
    fn take_closed(&mut self, peer: PeerId, reason: Option<DisconnectReason>) -> Option<Open<C>> {
        let open = self.open.remove(&peer)?;
        let addr = open.addr;
        self.closed.push(Closed { peer, addr, reason });
        Some(open)
    }

    /// Something happened on a connection's socket.
    pub(crate) fn handle_socket(&mut self, now: Instant, event: SocketEvent) {
        match event {
            SocketEvent::Received(peer, data) => {
                let Some(open) = self.open.get_mut(&peer) else {
                    return;
                };
                open.granted = open.granted.saturating_sub(1);
                match open.hello.is_some() {
                    true => self.hello_bytes(now, peer, &data),
                    false => self.node.handle_received_bytes(now, peer, data),
                }
                // After the core's actions: this read may have paused the peer.
                self.carry_out();
                if let Some(open) = self.open.get_mut(&peer) {
                    open.grant_reads();
                }
                return;
            }
            SocketEvent::Flushed(peer, bytes) => self.node.handle_flushed(now, peer, bytes),
            SocketEvent::PreambleSent(peer) => {
                let Some(open) = self.open.get_mut(&peer) else {
                    return;
                };
                if let Some((node_id, leftover)) =
                    open.hello.as_mut().and_then(Hello::take_answered)
                {
                    self.hand_to_core(now, peer, Some(node_id), leftover);
                }
                if let Some(open) = self.open.get_mut(&peer) {
                    open.grant_reads();
                }
            }
            SocketEvent::Closed(peer) => {
                if let Some(open) = self.open.get_mut(&peer) {
                    // A dialled peer that closes on our preamble does not speak it.
                    let outcome = open.hello.as_mut().map(Hello::not_plumtree);
                    if outcome == Some(Outcome::NoAnswer) {
                        open.redial_plain();
                    }
                }
                self.node.peer_disconnected(now, peer);
                // The peer is gone: what is queued for it goes nowhere. Dropping the
                // connection also frees a writer stuck on a peer that stopped reading.
                drop(self.take_closed(peer, None));
            }
        }
        self.carry_out();
    }

    /// Whether the core takes a new message now (see
    /// [`Node::can_publish`](gossip_core::Node::can_publish)).
    pub(crate) fn can_publish(&self) -> bool {
        self.node.can_publish()
    }

    /// The core's configuration.
    pub(crate) fn config(&self) -> &gossip_core::Config {
        self.node.config()
    }

    /// The application publishes a payload.
    pub(crate) fn publish(
        &mut self,
        now: Instant,
        payload: Bytes,
    ) -> Result<PublishOutcome, PublishError> {
        let outcome = self.node.publish(now, payload);
        self.carry_out();
        outcome
    }

    /// The application took deliveries.
    pub(crate) fn handle_delivered(&mut self, now: Instant, count: usize, bytes: usize) {
        self.node.handle_delivered(now, count, bytes);
        self.carry_out();
    }

    /// The deadline from [`poll_timeout`](Self::poll_timeout) passed.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.settle_late_hellos(now);
        self.node.handle_timeout(now);
        self.carry_out();
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        [self.node.poll_timeout(), self.hello_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// The core's counters.
    pub(crate) fn stats(&self) -> Stats {
        self.node.stats()
    }

    /// What the core observed of each connected peer, with its address.
    pub(crate) fn peers(&self) -> Vec<PeerInfo> {
        let addr = |peer| self.open.get(&peer).map(|open| open.addr);
        self.node
            .peers()
            .filter_map(|(peer, stats)| {
                Some(PeerInfo {
                    peer,
                    addr: addr(peer)?,
                    stats,
                })
            })
            .collect()
    }

    /// Connections open now whose protocol is settled.
    pub(crate) fn connection_count(&self) -> usize {
        // Not those whose protocol is still being settled: the core does not know them.
        self.open
            .values()
            .filter(|open| open.hello.is_none())
            .count()
    }

    /// The next message to hand to the application, oldest first. (One at a time, so
    /// the adapter can await the application between them.)
    pub(crate) fn next_delivery(&mut self) -> Option<Delivery> {
        self.deliveries.pop_front()
    }

    /// Connections whose protocol was settled since the last call, for logging: the
    /// peer, its address, whether it speaks plumtree.
    pub(crate) fn drain_settled(&mut self) -> std::vec::Drain<'_, (PeerId, SocketAddr, bool)> {
        self.settled.drain(..)
    }

    /// Connections that went away since the last call, for logging.
    pub(crate) fn drain_closed(&mut self) -> std::vec::Drain<'_, Closed> {
        self.closed.drain(..)
    }

    /// Takes every connection out, for the driver's shutdown to finish them.
    pub(crate) fn drain_connections(&mut self) -> impl Iterator<Item = C> + '_ {
        self.open.drain().map(|(_, open)| open.connection)
    }

    fn carry_out(&mut self) {
        while let Some(action) = self.node.poll_action() {
            match action {
                Action::Send { peer, frames } => {
                    if let Some(open) = self.open.get_mut(&peer) {
                        open.batch.push(frames);
                    }
                }
                Action::Deliver(delivery) => self.deliveries.push_back(delivery),
                Action::PauseReading { peer } => {
                    if let Some(open) = self.open.get_mut(&peer) {
                        open.reading = false;
                    }
                }
                Action::ResumeReading { peer } => {
                    if let Some(open) = self.open.get_mut(&peer) {
                        open.reading = true;
                        open.grant_reads();
                    }
                }
                Action::Disconnect { peer, reason } => {
                    let own = self.node.config().plumtree.as_ref().map(|p| p.node_id);
                    if let Some(mut open) = self.take_closed(peer, Some(reason)) {
                        if let DisconnectReason::SameNode { node_id } = reason {
                            let itself = own == Some(node_id);
                            let redial = if itself { Redial::Never } else { Redial::Later };
                            open.connection.redial(redial);
                        }
                    }
                }
            }
        }
        for open in self.open.values_mut() {
            if !open.batch.is_empty() {
                open.connection.send(std::mem::take(&mut open.batch));
            }
        }
    }
}

impl<C: Connection> Open<C> {
    /// Tops the reader up to [`READ_AHEAD`] reads, if the core wants its bytes (and,
    /// while this node's preamble answer is being written, not at all: what the peer
    /// sends meanwhile is kept, so it must not be read without bound).
    fn grant_reads(&mut self) {
        let answering = self.hello.as_ref().is_some_and(Hello::is_answered);
        if self.reading && !answering && self.granted < READ_AHEAD {
            self.connection.grant_reads(READ_AHEAD - self.granted);
            self.granted = READ_AHEAD;
        }
    }
}

#[cfg(test)]
mod tests;
