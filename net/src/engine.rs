//! The driver's synchronous half: the core plus the open connections.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::handle::PeerInfo;
use crate::hello::{Expect, Hello, Outcome};
use gossip_core::plumtree::wire::{self, PREAMBLE_LEN};
use gossip_core::plumtree::NodeId;
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

    /// Whether `origin`'s connection is one this node made to itself: the other end of
    /// an open connection (its two addresses swapped). If so, both are closed, and
    /// the dialler is told never to dial that address again. A peer list that names
    /// this node by an address it cannot recognise as its own (its host name, or an
    /// interface address when it listens on all of them, as a shared list in a
    /// container network does) would otherwise keep a connection to itself: every
    /// message sent once more, to itself, and two peer slots taken.
    fn closed_as_own(&mut self, now: Instant, origin: &Origin, connection: &mut C) -> bool {
        let canonical = |addr: SocketAddr| SocketAddr::new(addr.ip().to_canonical(), addr.port());
        let Some(local) = origin.local.map(canonical) else {
            return false;
        };
        let remote = canonical(origin.addr);
        let twin = self.open.iter().find(|(_, open)| {
            open.direction != origin.direction
                && canonical(open.addr) == local
                && open.local.map(canonical) == Some(remote)
        });
        let Some((&twin, _)) = twin else {
            return false;
        };
        let Some(mut open) = self.take_closed(twin, None) else {
            return false;
        };
        self.node.peer_disconnected(now, twin);
        match origin.direction {
            Direction::Outbound => connection.redial(Redial::Never),
            Direction::Inbound => open.connection.redial(Redial::Never),
        }
        self.carry_out();
        true
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

    /// Before another accepted connection waits for its protocol: if as many as
    /// [`Config::max_inbound_peers`](gossip_core::Config::max_inbound_peers) already
    /// wait, closes the one that has waited longest. The core does not know these
    /// connections, so its peer slots do not bound them: without this, a host that
    /// opens connections and stays silent would hold a socket and buffers per
    /// connection for `preamble_timeout` each, without limit. A plumtree dialler
    /// sends its preamble at once and waits one round trip; a silent (plain) peer
    /// waits the whole timeout, so it is the one closed when connections flood in.
    fn make_room_to_wait(&mut self) {
        let limit = self.node.config().max_inbound_peers;
        let waiting = || {
            self.open
                .iter()
                .filter_map(|(peer, open)| Some((peer, open.hello.as_ref()?)))
                .filter(|(_, hello)| hello.is_accepted())
        };
        if waiting().count() < limit {
            return;
        }
        let Some(longest) = waiting()
            .min_by_key(|(peer, hello)| (hello.opened, **peer))
            .map(|(peer, _)| *peer)
        else {
            return;
        };
        let direction = Direction::Inbound;
        self.take_closed(
            longest,
            Some(DisconnectReason::TooManyPeers { direction, limit }),
        );
    }

    /// Bytes from a connection whose protocol is not settled yet.
    fn hello_bytes(&mut self, now: Instant, peer: PeerId, data: &[u8]) {
        let Some(hello) = self
            .open
            .get_mut(&peer)
            .and_then(|open| open.hello.as_mut())
        else {
            return;
        };
        let outcome = hello.received(data);
        self.settle_hello(now, peer, outcome);
    }

    /// Hands a connection whose protocol is now known to the core (or closes it, for
    /// its dialler to dial again plain).
    fn settle_hello(&mut self, now: Instant, peer: PeerId, outcome: Outcome) {
        let Some(open) = self.open.get_mut(&peer) else {
            return;
        };
        let direction = open.direction;
        match outcome {
            Outcome::Wait => {}
            Outcome::NoAnswer | Outcome::Dropped => {
                if let Some(mut open) = self.take_closed(peer, None) {
                    if outcome == Outcome::NoAnswer {
                        open.redial_plain();
                    }
                }
            }
            Outcome::Plumtree { node_id, leftover } if direction == Direction::Inbound => {
                // Answer, and hand the peer to the core once the answer is written: if
                // the core then closes the connection (another one to that node is
                // kept), the dialler has seen the answer and knows it speaks plumtree.
                if let Some(own) = self.node.config().plumtree.as_ref() {
                    open.connection.send_preamble(wire::preamble(own.node_id));
                }
                if let Some(hello) = open.hello.as_mut() {
                    hello.answered(node_id, &leftover);
                }
            }
            Outcome::Plumtree { node_id, leftover } => {
                self.hand_to_core(now, peer, Some(node_id), leftover);
            }
            Outcome::Plain { received } => self.hand_to_core(now, peer, None, received),
        }
    }

    /// The protocol of `peer`'s connection is settled: plumtree with `node_id`, or plain.
    /// The core hears of the peer, then of `first_bytes` (what it sent after its
    /// preamble, or a plain peer's first frames).
    fn hand_to_core(
        &mut self,
        now: Instant,
        peer: PeerId,
        node_id: Option<NodeId>,
        first_bytes: Bytes,
    ) {
        let Some(open) = self.open.get_mut(&peer) else {
            return;
        };
        let opened = open.hello.take().map_or(now, |hello| hello.opened);
        self.settled.push((peer, open.addr, node_id.is_some()));
        let direction = open.direction;
        match node_id {
            Some(node_id) => self
                .node
                .plumtree_peer_connected(now, peer, direction, node_id),
            // It missed what the node took while it waited.
            None => self.node.peer_connected_since(now, peer, direction, opened),
        }
        if !first_bytes.is_empty() {
            self.node.handle_received_bytes(now, peer, first_bytes);
        }
        self.carry_out();
    }

    /// The earliest deadline of a connection whose protocol is not settled.
    fn hello_deadline(&self) -> Option<Instant> {
        // Only a node that speaks plumtree settles protocols: skip the connections.
        self.node.config().plumtree.as_ref()?;
        self.open
            .values()
            .filter_map(|open| open.hello.as_ref().map(|hello| hello.deadline))
            .min()
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
        let late: Vec<PeerId> = self
            .open
            .iter()
            .filter(|(_, open)| open.hello.as_ref().is_some_and(|h| h.deadline <= now))
            .map(|(peer, _)| *peer)
            .collect();
        for peer in late {
            if let Some(hello) = self.open.get_mut(&peer).and_then(|o| o.hello.as_mut()) {
                let outcome = hello.not_plumtree();
                self.settle_hello(now, peer, outcome);
            }
        }
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

    /// Tells the dialler its peer does not speak plumtree: dial it plain, and send the
    /// next connection what this node took since this one opened.
    fn redial_plain(&mut self) {
        if let Some(hello) = &self.hello {
            let since = hello.opened;
            self.connection.redial(Redial::Plain { since });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gossip_core::frame::encode;
    use gossip_core::{Config, FrameError};
    use std::cell::RefCell;
    use std::rc::Rc;

    /// What happened to one test connection.
    #[derive(Debug, Default)]
    struct Log {
        /// Reads granted so far.
        granted: usize,
        /// Per batch: how many `Frames`, and how many frames in them.
        batches: Vec<(usize, usize)>,
        /// How often the connection was dropped (closed).
        closed: usize,
        /// Preambles written.
        preambles: usize,
        /// The last redial hint.
        redial: Option<Redial>,
    }

    struct Recorder(Rc<RefCell<Log>>);

    impl Connection for Recorder {
        fn send(&mut self, frames: Vec<Frames>) {
            let count = frames.iter().map(Frames::count).sum();
            self.0.borrow_mut().batches.push((frames.len(), count));
        }
        fn grant_reads(&mut self, count: usize) {
            self.0.borrow_mut().granted += count;
        }
        fn send_preamble(&mut self, _: [u8; PREAMBLE_LEN]) {
            self.0.borrow_mut().preambles += 1;
        }
        fn redial(&mut self, hint: Redial) {
            self.0.borrow_mut().redial = Some(hint);
        }
    }

    impl Drop for Recorder {
        fn drop(&mut self) {
            self.0.borrow_mut().closed += 1;
        }
    }

    fn engine_with(peers: usize) -> (Engine<Recorder>, Vec<Rc<RefCell<Log>>>, Instant) {
        engine_with_config(peers, Config::default())
    }

    fn engine_with_config(
        peers: usize,
        config: Config,
    ) -> (Engine<Recorder>, Vec<Rc<RefCell<Log>>>, Instant) {
        let now = Instant::now();
        let mut engine = Engine::new(Node::new(config).unwrap());
        let logs: Vec<_> = (0..peers).map(|_| Rc::default()).collect();
        for (i, log) in logs.iter().enumerate() {
            let addr = SocketAddr::from(([127, 0, 0, 1], 1000 + i as u16));
            let direction = Direction::Inbound;
            let origin = Origin {
                addr,
                local: None,
                direction,
                plain: false,
                missed_since: None,
            };
            let timeout = Duration::from_secs(1);
            engine.connected(now, origin, Recorder(Rc::clone(log)), timeout);
        }
        (engine, logs, now)
    }

    #[test]
    fn frames_of_one_event_reach_each_writer_as_one_batch() {
        let (mut engine, logs, now) = engine_with(2);
        // A duplicate in the middle splits the new frames into two runs.
        let mut read = encode(b"one");
        read.extend(encode(b"two"));
        read.extend(encode(b"one"));
        read.extend(encode(b"three"));
        engine.handle_socket(now, SocketEvent::Received(PeerId(0), Bytes::from(read)));
        assert_eq!(logs[0].borrow().batches, []);
        assert_eq!(logs[1].borrow().batches, [(2, 3)]);
        assert_eq!(std::iter::from_fn(|| engine.next_delivery()).count(), 3);
    }

    #[test]
    fn reads_are_granted_ahead_and_stop_while_the_core_pauses_the_peer() {
        // A queue budget of one maximal frame: one forwarded frame fills B.
        let config = Config {
            max_frame_len: 100,
            peer_queue_bytes: 104 + gossip_core::QUEUED_FRAME_OVERHEAD,
            ..Config::default()
        };
        let (mut engine, logs, now) = engine_with_config(3, config);
        let granted = |peer: usize| logs[peer].borrow().granted;
        assert_eq!(granted(0), READ_AHEAD, "a new connection may read ahead");
        // A read from peer 1 is handed back and replaced by a new grant.
        let one = Bytes::from(encode(&[1; 10]));
        engine.handle_socket(now, SocketEvent::Received(PeerId(1), one));
        assert_eq!(granted(1), READ_AHEAD + 1);
        // This read of peer 0 fills peers 1 and 2; it is still replaced.
        let full = Bytes::from(encode(&[2; 100]));
        engine.handle_socket(now, SocketEvent::Received(PeerId(0), full));
        assert_eq!(granted(0), READ_AHEAD + 1);
        // Peer 0's next message is held: no grant replaces that read, nor the read
        // already granted when it comes in.
        let held = Bytes::from(encode(&[3; 100]));
        engine.handle_socket(now, SocketEvent::Received(PeerId(0), held));
        assert!(!engine.node.is_reading(PeerId(0)));
        let late = Bytes::from(encode(&[4; 100]));
        engine.handle_socket(now, SocketEvent::Received(PeerId(0), late));
        assert_eq!(granted(0), READ_AHEAD + 1);
        // The queues drain: the held message goes and fills them again, so the late one
        // is held in turn. They drain again: reading resumes, topped up to the
        // read-ahead again.
        let drain = |engine: &mut Engine<Recorder>| {
            for peer in [1, 2] {
                engine.handle_socket(now, SocketEvent::Flushed(PeerId(peer), 1 << 20));
            }
        };
        drain(&mut engine);
        assert!(!engine.node.is_reading(PeerId(0)));
        assert_eq!(granted(0), READ_AHEAD + 1, "no read granted in between");
        drain(&mut engine);
        assert!(engine.node.is_reading(PeerId(0)));
        assert_eq!(granted(0), READ_AHEAD + 1 + READ_AHEAD);
        assert_eq!(std::iter::from_fn(|| engine.next_delivery()).count(), 4);
    }

    #[test]
    fn a_protocol_error_closes_the_connection_and_reports_why() {
        let (mut engine, logs, now) = engine_with(2);
        let garbage = Bytes::from_static(b"GET / HTTP/1.1");
        engine.handle_socket(now, SocketEvent::Received(PeerId(1), garbage));
        assert_eq!(logs[1].borrow().closed, 1);
        let closed: Vec<Closed> = engine.drain_closed().collect();
        assert_eq!(closed.len(), 1);
        assert!(matches!(
            closed[0].reason,
            Some(DisconnectReason::Protocol(FrameError::TooLarge { .. }))
        ));
        assert_eq!(engine.connection_count(), 1);
    }

    #[test]
    fn a_closed_socket_closes_its_connection_once() {
        let (mut engine, logs, now) = engine_with(1);
        engine.handle_socket(now, SocketEvent::Closed(PeerId(0)));
        engine.handle_socket(now, SocketEvent::Closed(PeerId(0)));
        assert_eq!(logs[0].borrow().closed, 1);
        let closed: Vec<Closed> = engine.drain_closed().collect();
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].reason, None);
        assert_eq!(engine.stats().peers_current, 0);
    }

    /// A plumtree engine (node id 5) and one connection from `direction`.
    fn plumtree_engine(
        direction: Direction,
    ) -> (Engine<Recorder>, Rc<RefCell<Log>>, Instant, Instant) {
        let now = Instant::now();
        let config = Config {
            plumtree: Some(gossip_core::plumtree::PlumtreeConfig {
                node_id: 5,
                ..Default::default()
            }),
            ..Config::default()
        };
        let mut engine = Engine::new(Node::new(config).unwrap());
        let log: Rc<RefCell<Log>> = Rc::default();
        let origin = Origin {
            addr: SocketAddr::from(([127, 0, 0, 1], 1000)),
            local: None,
            direction,
            plain: false,
            missed_since: None,
        };
        let timeout = Duration::from_secs(1);
        engine.connected(now, origin, Recorder(Rc::clone(&log)), timeout);
        (engine, log, now, now + timeout)
    }

    fn received(peer: u64, bytes: &[u8]) -> SocketEvent {
        SocketEvent::Received(PeerId(peer), Bytes::copy_from_slice(bytes))
    }

    #[test]
    fn a_dialled_plumtree_peer_is_known_to_the_core_once_it_answers() {
        let (mut engine, log, now, _) = plumtree_engine(Direction::Outbound);
        assert_eq!(log.borrow().preambles, 1, "the dialler speaks first");
        assert_eq!(engine.connection_count(), 0);
        assert_eq!(engine.poll_timeout(), Some(now + Duration::from_secs(1)));
        // The answer in two reads, a Gossip frame right behind it.
        let gossip = wire::gossip_head(1, 0).expect("small");
        let answer = [&wire::preamble(9)[..], &gossip, b"m"].concat();
        engine.handle_socket(now, received(0, &answer[..7]));
        assert_eq!(engine.connection_count(), 0);
        engine.handle_socket(now, received(0, &answer[7..]));
        assert_eq!(engine.connection_count(), 1);
        assert_eq!(
            engine.next_delivery().map(|d| d.payload),
            Some(Bytes::from("m"))
        );
        let settled: Vec<_> = engine.drain_settled().collect();
        assert_eq!(settled.len(), 1);
        assert!(settled[0].2, "speaks plumtree");
    }

    #[test]
    fn a_dialled_peer_that_answers_plain_or_not_at_all_is_dialled_again_plain() {
        // The redial's peer will be sent what it missed since this connection opened.
        let (mut engine, log, now, _) = plumtree_engine(Direction::Outbound);
        engine.handle_socket(now, received(0, &encode(b"plain frame")));
        assert_eq!(log.borrow().redial, Some(Redial::Plain { since: now }));
        assert_eq!(log.borrow().closed, 1);
        let (mut engine, log, now, deadline) = plumtree_engine(Direction::Outbound);
        engine.handle_timeout(deadline - Duration::from_nanos(1));
        assert_eq!(log.borrow().closed, 0);
        engine.handle_timeout(deadline);
        assert_eq!(log.borrow().redial, Some(Redial::Plain { since: now }));
        assert_eq!(log.borrow().closed, 1);
        let (mut engine, log, now, _) = plumtree_engine(Direction::Outbound);
        engine.handle_socket(now, SocketEvent::Closed(PeerId(0)));
        assert_eq!(
            log.borrow().redial,
            Some(Redial::Plain { since: now }),
            "closed on our preamble"
        );
    }

    #[test]
    fn an_accepted_peer_is_answered_and_known_once_the_answer_is_written() {
        let (mut engine, log, now, _) = plumtree_engine(Direction::Inbound);
        assert_eq!(
            log.borrow().preambles,
            0,
            "a listener waits for the dialler"
        );
        engine.handle_socket(now, received(0, &wire::preamble(9)));
        assert_eq!(log.borrow().preambles, 1);
        assert_eq!(
            engine.connection_count(),
            0,
            "not before the answer is written"
        );
        engine.handle_socket(now, SocketEvent::PreambleSent(PeerId(0)));
        assert_eq!(engine.connection_count(), 1);
    }

    #[test]
    fn an_accepted_peer_that_sends_frames_or_nothing_is_plain() {
        let (mut engine, log, now, _) = plumtree_engine(Direction::Inbound);
        engine.handle_socket(now, received(0, &encode(b"hello")));
        assert_eq!(log.borrow().preambles, 0);
        assert_eq!(engine.connection_count(), 1);
        assert_eq!(
            engine.next_delivery().map(|d| d.payload),
            Some(Bytes::from("hello"))
        );
        let (mut engine, _, _, deadline) = plumtree_engine(Direction::Inbound);
        engine.handle_timeout(deadline);
        assert_eq!(
            engine.connection_count(),
            1,
            "silent: plain after the timeout"
        );
    }

    #[test]
    fn a_connection_to_itself_is_closed_at_both_ends_and_never_dialled_again() {
        let (mut engine, _, now) = engine_with(0);
        let listener = SocketAddr::from(([127, 0, 0, 1], 7000));
        let ephemeral = SocketAddr::from(([127, 0, 0, 1], 40000));
        let timeout = Duration::from_secs(1);
        let connect = |engine: &mut Engine<Recorder>, direction, addr, local| {
            let log: Rc<RefCell<Log>> = Rc::default();
            let (plain, missed_since, local) = (false, None, Some(local));
            let origin = Origin {
                addr,
                local,
                direction,
                plain,
                missed_since,
            };
            engine.connected(now, origin, Recorder(Rc::clone(&log)), timeout);
            log
        };
        // This node dials another one from port 40000, and another process dials this
        // node from port 40000 too (Linux reuses a port towards other destinations):
        // neither is this node talking to itself.
        let peer = SocketAddr::from(([127, 0, 0, 1], 8000));
        let to_peer = connect(&mut engine, Direction::Outbound, peer, ephemeral);
        let from_other = connect(&mut engine, Direction::Inbound, ephemeral, listener);
        assert_eq!(engine.connection_count(), 2);
        // This node dials its own listener, named by its IPv4-mapped IPv6 address: the
        // accepted end is the dialled one with its two addresses swapped.
        let mapped = |addr: SocketAddr| match addr {
            SocketAddr::V4(v4) => SocketAddr::from((v4.ip().to_ipv6_mapped(), v4.port())),
            v6 => v6,
        };
        let own = SocketAddr::from(([127, 0, 0, 1], 40002));
        let dialled = connect(
            &mut engine,
            Direction::Outbound,
            mapped(listener),
            mapped(own),
        );
        assert_eq!(engine.connection_count(), 3);
        let accepted = connect(&mut engine, Direction::Inbound, own, listener);
        assert_eq!(engine.connection_count(), 2, "the other two are left");
        assert_eq!(dialled.borrow().redial, Some(Redial::Never));
        assert_eq!((dialled.borrow().closed, accepted.borrow().closed), (1, 1));
        assert_eq!(
            (to_peer.borrow().closed, from_other.borrow().closed),
            (0, 0)
        );
        assert_eq!(engine.drain_closed().count(), 2);
    }

    #[test]
    fn accepted_connections_waiting_for_their_protocol_are_bounded_by_the_inbound_slots() {
        let (mut engine, first, now, _) = plumtree_engine(Direction::Inbound);
        let limit = engine.config().max_inbound_peers;
        let mut logs = vec![first];
        let accept = |engine: &mut Engine<Recorder>, at: Instant| {
            let log: Rc<RefCell<Log>> = Rc::default();
            let origin = Origin {
                addr: SocketAddr::from(([127, 0, 0, 1], 2000)),
                local: None,
                direction: Direction::Inbound,
                plain: false,
                missed_since: None,
            };
            let timeout = Duration::from_secs(1);
            engine.connected(at, origin, Recorder(Rc::clone(&log)), timeout);
            log
        };
        for n in 1..limit {
            logs.push(accept(&mut engine, now + Duration::from_millis(n as u64)));
        }
        let closed =
            |logs: &[Rc<RefCell<Log>>]| logs.iter().filter(|l| l.borrow().closed > 0).count();
        assert_eq!(closed(&logs), 0, "{limit} may wait");
        assert_eq!(engine.drain_closed().count(), 0);
        let later = now + Duration::from_millis(limit as u64);
        logs.push(accept(&mut engine, later));
        assert_eq!(logs[0].borrow().closed, 1, "the one waiting longest goes");
        assert_eq!(closed(&logs), 1);
        let reasons: Vec<_> = engine.drain_closed().map(|c| (c.peer, c.reason)).collect();
        let direction = Direction::Inbound;
        let reason = Some(DisconnectReason::TooManyPeers { direction, limit });
        assert_eq!(reasons, [(PeerId(0), reason)]);
        // Settled connections do not count: once one settles, another may wait.
        engine.handle_socket(later, received(1, &encode(b"plain")));
        logs.push(accept(&mut engine, later));
        assert_eq!(closed(&logs), 1);
    }

    /// Frames sent on a connection so far (`Log::batches` counts them).
    fn frames_sent(log: &Rc<RefCell<Log>>) -> usize {
        log.borrow().batches.iter().map(|&(_, frames)| frames).sum()
    }

    #[test]
    fn a_plain_peer_settled_late_is_sent_what_was_published_while_it_waited() {
        // A listener that never writes: plain once the timeout passes.
        let (mut engine, log, now, deadline) = plumtree_engine(Direction::Inbound);
        for n in 0..3u8 {
            engine.publish(now, Bytes::from(vec![n; 10])).unwrap();
        }
        assert_eq!(frames_sent(&log), 0);
        engine.handle_timeout(deadline);
        assert_eq!(engine.connection_count(), 1);
        assert_eq!(frames_sent(&log), 3);
        // One that writes plain frames after a while, likewise.
        let (mut engine, log, now, _) = plumtree_engine(Direction::Inbound);
        engine
            .publish(now, Bytes::from_static(b"meanwhile"))
            .unwrap();
        let later = now + Duration::from_millis(300);
        engine.handle_socket(later, received(0, &encode(b"hello")));
        assert_eq!(frames_sent(&log), 1);
    }

    #[test]
    fn a_plain_redial_is_sent_what_its_peer_missed_since_the_unanswered_dial() {
        let (mut engine, _, opened, deadline) = plumtree_engine(Direction::Outbound);
        engine
            .publish(opened, Bytes::from_static(b"meanwhile"))
            .unwrap();
        engine.handle_timeout(deadline);
        let log: Rc<RefCell<Log>> = Rc::default();
        let origin = Origin {
            addr: SocketAddr::from(([127, 0, 0, 1], 1000)),
            local: None,
            direction: Direction::Outbound,
            plain: true,
            missed_since: Some(opened),
        };
        let timeout = Duration::from_secs(1);
        engine.connected(deadline, origin, Recorder(Rc::clone(&log)), timeout);
        assert_eq!(engine.connection_count(), 1);
        assert_eq!(frames_sent(&log), 1);
        // A plain dial with nothing missed is sent nothing of the past.
        let log: Rc<RefCell<Log>> = Rc::default();
        let origin = Origin {
            addr: SocketAddr::from(([127, 0, 0, 1], 1001)),
            missed_since: None,
            ..origin
        };
        engine.connected(deadline, origin, Recorder(Rc::clone(&log)), timeout);
        assert_eq!(engine.connection_count(), 2);
        assert_eq!(frames_sent(&log), 0);
    }

    #[test]
    fn a_second_connection_to_the_same_node_tells_its_dialler_to_wait() {
        let (mut engine, _, now, _) = plumtree_engine(Direction::Inbound);
        engine.handle_socket(now, received(0, &wire::preamble(9)));
        engine.handle_socket(now, SocketEvent::PreambleSent(PeerId(0)));
        // This node (5) dials node 9 too: its own connection is kept (lower id), the
        // one node 9 dialled is dropped.
        let log: Rc<RefCell<Log>> = Rc::default();
        let origin = Origin {
            addr: SocketAddr::from(([127, 0, 0, 1], 1001)),
            local: None,
            direction: Direction::Outbound,
            plain: false,
            missed_since: None,
        };
        engine.connected(
            now,
            origin,
            Recorder(Rc::clone(&log)),
            Duration::from_secs(1),
        );
        engine.handle_socket(now, received(1, &wire::preamble(9)));
        assert_eq!(engine.connection_count(), 1);
        assert_eq!(log.borrow().closed, 0, "this node's own dial is kept");
        // Dialled by this node's own address: the dialler stops.
        let (mut engine, log, now, _) = plumtree_engine(Direction::Outbound);
        engine.handle_socket(now, received(0, &wire::preamble(5)));
        assert_eq!(log.borrow().redial, Some(Redial::Never));
    }
}
