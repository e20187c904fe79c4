//! Arbitrary event sequences from several peers into one node: it never panics, and
//! after every step the seen set is within its bound, no message is delivered twice
//! unless ids were forgotten in between, nothing is sent back to the peer it came
//! from, every frame sent is a message delivered, published or dropped for a stalled
//! application in that step (a run of
//! forwarded frames holds nothing else), and queued bytes stay within the budgets. Under
//! either overload policy; when reading pauses, the driver here honours it (no bytes from
//! a paused peer), and no queue passes its budget (see the bounds below).
#![no_main]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use gossip_core::{
    Action, Config, Direction, MessageId, Node, Overload, PeerId, RateLimit, SeenSet, HEADER_LEN,
    QUEUED_FRAME_OVERHEAD,
};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Event {
    Connect(u8),
    Disconnect(u8),
    /// Raw bytes: any chunking, any garbage.
    Bytes(u8, Vec<u8>),
    /// A well-formed frame, so deep states are reached quickly.
    Frame(u8, Vec<u8>),
    Flush(u8, u16),
    Publish(Vec<u8>),
    Advance(u16),
    /// The application takes this many of the deliveries waiting for it.
    Take(u8),
}

/// What the largest frame (32 bytes of payload) is charged in a queue.
const FRAME_CHARGE: usize = HEADER_LEN + 32 + QUEUED_FRAME_OVERHEAD;
/// Two of the largest frames per peer, five in all.
const PEER_QUEUE: usize = 2 * FRAME_CHARGE;
const TOTAL_QUEUE: usize = 5 * FRAME_CHARGE;

/// Partial frames of all peers: two of the largest.
const PARTIAL_BUDGET: usize = 2 * (HEADER_LEN + 32);

fuzz_target!(|input: (bool, bool, Vec<Event>)| {
    let (shed, paced, events) = input;
    let overload = if shed {
        Overload::Shed
    } else {
        Overload::PauseReading
    };
    let config = Config {
        max_frame_len: 32,
        // Even ids dialled by the node, odd ones dialled in.
        max_outbound_peers: 2,
        max_inbound_peers: 2,
        eviction_protection: Duration::from_secs(5),
        frame_timeout: Duration::from_secs(3),
        partial_frame_budget_bytes: PARTIAL_BUDGET,
        peer_rate_limit: paced.then_some(RateLimit {
            bytes_per_second: 100,
            messages_per_second: 4,
        }),
        plumtree: None,
        seen_budget_bytes: SeenSet::memory_bound(8),
        seen_retention: Duration::from_secs(10),
        peer_queue_bytes: PEER_QUEUE,
        total_queue_bytes: TOTAL_QUEUE,
        slow_peer_timeout: Duration::from_secs(2),
        overload,
        stall_escape: Duration::from_millis(500),
        delivery_queue_bytes: 3 * FRAME_CHARGE,
        // One `Send` handed over at a time: the rest is kept back.
        send_ahead_bytes: 0,
    };
    let capacity = config.seen_capacity();
    let mut node = Node::new(config).expect("valid config");
    let mut now = Instant::now();
    // For each id delivered: how many ids had been forgotten when it was.
    let mut delivered: HashMap<MessageId, u64> = HashMap::new();
    // Payload lengths of the deliveries the application has not taken yet.
    let mut untaken = std::collections::VecDeque::new();
    // Payloads the node may send: what it delivered or published, in this step or
    // before (a copy kept back goes when the caller has written what it was handed).
    let mut sendable: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
    // Frames sent of payloads never delivered nor published.
    let mut unknown = 0;
    for event in events {
        let reading = |node: &Node, p: u8| node.is_reading(PeerId(u64::from(p % 8)));
        match event {
            Event::Connect(p) => {
                let direction = [Direction::Outbound, Direction::Inbound][usize::from(p % 2)];
                node.peer_connected(now, PeerId(u64::from(p % 8)), direction);
            }
            Event::Disconnect(p) => node.peer_disconnected(now, PeerId(u64::from(p % 8))),
            Event::Bytes(p, bytes) if reading(&node, p) => {
                node.handle_received(now, PeerId(u64::from(p % 8)), &bytes);
            }
            Event::Frame(p, payload) if reading(&node, p) => {
                let mut wire = (payload.len() as u32).to_be_bytes().to_vec();
                wire.extend_from_slice(&payload);
                node.handle_received(now, PeerId(u64::from(p % 8)), &wire);
            }
            Event::Bytes(..) | Event::Frame(..) => {}
            Event::Flush(p, n) => node.handle_flushed(now, PeerId(u64::from(p % 8)), n.into()),
            Event::Publish(payload) => {
                sendable.insert(payload.clone());
                let _ = node.publish(now, payload);
            }
            Event::Take(n) => {
                let taken: Vec<usize> = untaken.drain(..untaken.len().min(n.into())).collect();
                node.handle_delivered(now, taken.len(), taken.iter().sum());
            }
            Event::Advance(ms) => {
                now += Duration::from_millis(ms.into());
                node.handle_timeout(now);
            }
        }
        let evicted = node.stats().seen_evicted;
        let actions: Vec<Action> = node.drain_actions().collect();
        // Whom each message delivered in this step came from (a message is delivered
        // and sent on in the same step; one forgotten and taken again later may go
        // to the peer that sent it the first time).
        let sender: HashMap<MessageId, PeerId> = actions
            .iter()
            .filter_map(|action| match action {
                Action::Deliver(delivery) => Some((delivery.id(), delivery.from)),
                _ => None,
            })
            .collect();
        for action in actions {
            match action {
                Action::Send { peer, frames } => {
                    // Never back to the peer a message came from. (Another peer's held
                    // message may well go to the peer whose bytes are being handled.)
                    for payload in frames.payloads() {
                        let id = MessageId::of(payload);
                        assert_ne!(sender.get(&id), Some(&peer), "echoed to sender");
                    }
                    assert!(frames.count() > 0, "an empty send");
                    let payloads: Vec<_> = frames.payloads().collect();
                    assert_eq!(payloads.len(), frames.count(), "a send is whole frames");
                    // A message dropped for a stalled application is relayed all the
                    // same: sent without being delivered.
                    unknown += payloads
                        .iter()
                        .filter(|payload| !sendable.contains(&payload[..]))
                        .count();
                }
                Action::Deliver(delivery) => {
                    untaken.push_back(delivery.payload.len());
                    sendable.insert(delivery.payload.to_vec());
                    if let Some(&before) = delivered.get(&delivery.id()) {
                        assert!(evicted > before, "delivered twice while remembered");
                    }
                    delivered.insert(delivery.id(), evicted);
                }
                Action::Disconnect { .. }
                | Action::PauseReading { .. }
                | Action::ResumeReading { .. } => {}
            }
        }
        let stats = node.stats();
        // At most one frame per peer for each message dropped for the application.
        assert!(unknown as u64 <= 4 * stats.deliveries_dropped);
        assert!(stats.seen_len < 2 * capacity);
        assert!(stats.partial_frame_bytes <= PARTIAL_BUDGET);
        assert!(node.stats().seen_memory_bytes <= SeenSet::memory_bound(capacity));
        if shed {
            assert!(stats.queued_bytes <= TOTAL_QUEUE);
        } else {
            assert_eq!(stats.frames_shed, 0);
            // Within the total, but for its one exception: a total at most half full
            // takes one more message whatever it is charged (here up to four frames, a
            // publish to every peer: more than half the total).
            assert!(stats.queued_bytes <= TOTAL_QUEUE.max(TOTAL_QUEUE / 2 + 4 * FRAME_CHARGE));
            assert!(stats.delivery_queued_bytes <= 3 * FRAME_CHARGE);
            // Each peer's own queue too, until an escape lets them grow: a stall's, or
            // a peer held too long getting its message taken.
            if stats.stall_escapes == 0 && stats.held_peer_escapes == 0 {
                for (_, peer) in node.peers() {
                    assert!(peer.queued_bytes <= PEER_QUEUE, "{peer:?}");
                }
            }
        }
        assert!(stats.peers_current <= 4);
    }
    // Whatever was queued, handed over or kept back, comes back with its peer.
    for p in 0..8 {
        node.peer_disconnected(now, PeerId(p));
    }
    assert_eq!(node.stats().queued_bytes, 0);
});
