//! Settling each connection's protocol before the core hears of it: a plumtree node
//! exchanges preambles with its peers (see [`hello`](crate::hello)), and a peer that
//! answers none is plain. Connections waiting for that are bounded, and a connection
//! this node made to itself is closed at both ends.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use super::{Connection, Engine, Open, Origin, Redial};
use crate::hello::Outcome;
use gossip_core::plumtree::wire;
use gossip_core::plumtree::NodeId;
use gossip_core::{Direction, DisconnectReason, PeerId};

impl<C: Connection> Engine<C> {
    /// Whether `origin`'s connection is one this node made to itself: the other end of
    /// an open connection (its two addresses swapped). If so, both are closed, and
    /// the dialler is told never to dial that address again. A peer list that names
    /// this node by an address it cannot recognise as its own (its host name, or an
    /// interface address when it listens on all of them, as a shared list in a
    /// container network does) would otherwise keep a connection to itself: every
    /// message sent once more, to itself, and two peer slots taken.
    pub(super) fn closed_as_own(
        &mut self,
        now: Instant,
        origin: &Origin,
        connection: &mut C,
    ) -> bool {
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

    /// Before another accepted connection waits for its protocol: if as many as
    /// [`Config::max_inbound_peers`](gossip_core::Config::max_inbound_peers) already
    /// wait, closes the one that has waited longest. The core does not know these
    /// connections, so its peer slots do not bound them: without this, a host that
    /// opens connections and stays silent would hold a socket and buffers per
    /// connection for `preamble_timeout` each, without limit. A plumtree dialler
    /// sends its preamble at once and waits one round trip; a silent (plain) peer
    /// waits the whole timeout, so it is the one closed when connections flood in.
    pub(super) fn make_room_to_wait(&mut self) {
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
    pub(super) fn hello_bytes(&mut self, now: Instant, peer: PeerId, data: &[u8]) {
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
    pub(super) fn settle_hello(&mut self, now: Instant, peer: PeerId, outcome: Outcome) {
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
    pub(super) fn hand_to_core(
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
    pub(super) fn hello_deadline(&self) -> Option<Instant> {
        // Only a node that speaks plumtree settles protocols: skip the connections.
        self.node.config().plumtree.as_ref()?;
        self.open
            .values()
            .filter_map(|open| open.hello.as_ref().map(|hello| hello.deadline))
            .min()
    }

    /// Settles each connection whose protocol is not settled by its deadline: plain
    /// (or, if this node dialled it, closed, to be dialled again plain).
    pub(super) fn settle_late_hellos(&mut self, now: Instant) {
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
    }
}

impl<C: Connection> Open<C> {
    /// Tells the dialler its peer does not speak plumtree: dial it plain, and send the
    /// next connection what this node took since this one opened.
    pub(super) fn redial_plain(&mut self) {
        if let Some(hello) = &self.hello {
            let since = hello.opened;
            self.connection.redial(Redial::Plain { since });
        }
    }
}
