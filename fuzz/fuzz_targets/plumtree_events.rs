//! A plumtree node under any sequence of events from plain and plumtree peers (plain
//! ones settled at once or late): raw bytes, well-formed Gossip, IHave, Graft and Prune
//! frames, flushes, publishes, time. Nothing may panic, the bounds hold, and every frame
//! sent to a plumtree peer parses.
#![no_main]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::Bytes;
use gossip_core::plumtree::wire::{self, short_id, Frame};
use gossip_core::plumtree::PlumtreeConfig;
use gossip_core::{Action, Config, Direction, MessageId, Node, PeerId, SeenSet};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Event {
    /// A peer connects, plain or plumtree (with a node id from a small set, so that
    /// duplicates and this node's own id occur).
    Connect {
        peer: u8,
        plumtree: bool,
        node_id: u8,
    },
    /// A plain peer whose protocol took `waited` milliseconds to settle: it is sent
    /// what the node cached meanwhile.
    ConnectSettledLate {
        peer: u8,
        inbound: bool,
        waited: u16,
    },
    Disconnect(u8),
    Bytes(u8, Vec<u8>),
    Gossip {
        peer: u8,
        round: u16,
        message: u8,
    },
    IHave {
        peer: u8,
        messages: Vec<(u8, u16)>,
    },
    Graft {
        peer: u8,
        message: Option<u8>,
    },
    Prune(u8),
    Flush(u8, u16),
    Publish(u8),
    Advance(u16),
}

/// Messages come from a small set, so that ids repeat and announcements match.
fn message(n: u8) -> Vec<u8> {
    vec![n % 16; usize::from(n % 16)]
}

const CACHE_BYTES: usize = 400;

fuzz_target!(|events: Vec<Event>| {
    let config = Config {
        max_frame_len: 32,
        seen_budget_bytes: SeenSet::memory_bound(8),
        seen_retention: Duration::from_secs(10),
        plumtree: Some(PlumtreeConfig {
            node_id: 3,
            cache_bytes: CACHE_BYTES,
            cache_retention: Duration::from_secs(5),
            max_missing: 4,
            optimization_threshold: 2,
            ..PlumtreeConfig::default()
        }),
        ..Config::default()
    };
    let capacity = config.seen_capacity();
    let mut node = Node::new(config).expect("valid config");
    let mut now = Instant::now();
    let mut plumtree_peers: HashMap<PeerId, bool> = HashMap::new();
    for event in events {
        let peer_of = |p: u8| PeerId(u64::from(p % 8));
        match event {
            Event::Connect {
                peer,
                plumtree,
                node_id,
            } => {
                let peer = peer_of(peer);
                let direction = [Direction::Outbound, Direction::Inbound][usize::from(node_id % 2)];
                if plumtree {
                    node.plumtree_peer_connected(now, peer, direction, u64::from(node_id % 6));
                } else {
                    node.peer_connected(now, peer, direction);
                }
                if node.is_connected(peer) {
                    plumtree_peers.entry(peer).or_insert(plumtree);
                }
            }
            Event::ConnectSettledLate {
                peer,
                inbound,
                waited,
            } => {
                let peer = peer_of(peer);
                let direction = [Direction::Outbound, Direction::Inbound][usize::from(inbound)];
                let opened = now.checked_sub(Duration::from_millis(u64::from(waited)));
                node.peer_connected_since(now, peer, direction, opened.unwrap_or(now));
                if node.is_connected(peer) {
                    plumtree_peers.entry(peer).or_insert(false);
                }
            }
            Event::Disconnect(p) => {
                node.peer_disconnected(now, peer_of(p));
                plumtree_peers.remove(&peer_of(p));
            }
            Event::Bytes(p, bytes) => node.handle_received(now, peer_of(p), &bytes),
            Event::Gossip {
                peer,
                round,
                message: m,
            } => {
                let body = message(m);
                let head = wire::gossip_head(body.len(), round).expect("small");
                let frame = [&head[..], &body].concat();
                node.handle_received(now, peer_of(peer), &frame);
            }
            Event::IHave { peer, messages } => {
                let entries: Vec<_> = messages
                    .iter()
                    .take(wire::MAX_IHAVE)
                    .map(|&(m, round)| (short_id(&MessageId::of(&message(m))), round))
                    .collect();
                if !entries.is_empty() {
                    node.handle_received(now, peer_of(peer), &wire::ihave(&entries));
                }
            }
            Event::Graft { peer, message: m } => {
                let wanted = m.map(|m| (short_id(&MessageId::of(&message(m))), 0));
                node.handle_received(now, peer_of(peer), &wire::graft(wanted));
            }
            Event::Prune(p) => node.handle_received(now, peer_of(p), &wire::prune()),
            Event::Flush(p, n) => node.handle_flushed(now, peer_of(p), n.into()),
            Event::Publish(m) => {
                let _ = node.publish(now, message(m));
            }
            Event::Advance(ms) => {
                now += Duration::from_millis(ms.into());
                node.handle_timeout(now);
                assert!(
                    node.poll_timeout().is_none_or(|at| at > now),
                    "a due timer left"
                );
            }
        }
        for action in node.drain_actions() {
            match action {
                Action::Send { peer, frames } => {
                    let mut bytes = Vec::new();
                    frames.write_to(&mut bytes);
                    let mut decoder = gossip_core::FrameDecoder::new(1 << 20);
                    decoder.push(Bytes::from(bytes));
                    while let Some(payload) = decoder.next_frame().expect("well framed") {
                        if plumtree_peers.get(&peer) == Some(&true) {
                            assert!(Frame::parse(&payload).is_ok(), "sent a bad plumtree frame");
                        }
                    }
                }
                Action::Disconnect { peer, .. } => {
                    plumtree_peers.remove(&peer);
                }
                _ => {}
            }
        }
        let stats = node.stats();
        assert!(stats.seen_len < 2 * capacity);
        assert!(stats.plumtree_cache_bytes <= CACHE_BYTES);
    }
});
