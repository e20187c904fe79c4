//! Property tests of the core and of whole simulated networks.
//!
//! Case counts are modest so `cargo test` stays quick; raise them with
//! `PROPTEST_CASES=10000 cargo test --release -p gossip-core --test properties`.
//! `scripts/mutants.py` shows each property failing against a deliberately broken core.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gossip_core::frame::encode;
use gossip_core::sim::Simulation;
use gossip_core::{
    Action, Config, Direction, DisconnectReason, FrameDecoder, FrameError, MessageId, Node,
    Overload, PeerId, PeerStats, RateLimit, SeenSet, QUEUED_FRAME_OVERHEAD,
};
use proptest::prelude::*;

mod common;
use common::{cases, everyone_got_everything_once, network, topology};

/// Splits `bytes` at the given cut points (taken modulo the length).
fn chunks<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    points.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn framing_round_trips_under_any_chunking(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20),
        cuts in prop::collection::vec(any::<usize>(), 0..40),
    ) {
        let wire: Vec<u8> = payloads.iter().flat_map(|p| encode(p)).collect();
        let mut decoder = FrameDecoder::new(300);
        let mut decoded = Vec::new();
        for (n, chunk) in chunks(&wire, &cuts).into_iter().enumerate() {
            // Both ways in: borrowed slices (copied) and owned buffers (split in place).
            if n % 2 == 0 {
                decoder.extend(chunk);
            } else {
                decoder.push(Bytes::copy_from_slice(chunk));
            }
            while let Some(frame) = decoder.next_frame().unwrap() {
                decoded.push(frame.to_vec());
            }
        }
        prop_assert_eq!(decoded, payloads);
        prop_assert_eq!(decoder.buffered_len(), 0);
    }

    #[test]
    fn no_frame_over_the_limit_is_ever_accepted(
        (max, lengths) in (0usize..64).prop_flat_map(|max| {
            // Half the lengths sit at the edge: max - 1, max or max + 1.
            let edge = max.saturating_sub(1)..=max + 1;
            (Just(max), prop::collection::vec(prop_oneof![0usize..100, edge], 1..10))
        }),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let wire: Vec<u8> = lengths.iter().flat_map(|&n| encode(&vec![1; n])).collect();
        let mut decoder = FrameDecoder::new(max);
        let mut accepted = Vec::new();
        let mut error = None;
        'feed: for chunk in chunks(&wire, &cuts) {
            decoder.extend(chunk);
            loop {
                match decoder.next_frame() {
                    Ok(Some(frame)) => accepted.push(frame.len()),
                    Ok(None) => break,
                    Err(e) => { error = Some(e); break 'feed; }
                }
            }
        }
        // Exactly the frames before the first oversized one, then its error.
        let first_bad = lengths.iter().position(|&n| n > max);
        let expected: Vec<usize> = lengths[..first_bad.unwrap_or(lengths.len())].to_vec();
        prop_assert_eq!(accepted, expected);
        prop_assert_eq!(
            error,
            first_bad.map(|i| FrameError::TooLarge { len: lengths[i] as u64, max })
        );
    }

    /// The seen set keeps its documented guarantee: an id is remembered while fewer than
    /// `capacity` newer ids have arrived and the retention period has not passed, and
    /// forgotten once `2 × capacity - 1` newer ids have arrived or twice the retention
    /// period has passed. In between, either answer is allowed.
    #[test]
    fn seen_set_keeps_its_guarantee(
        capacity in 1usize..16,
        (retention_ms, steps) in (1u64..200).prop_flat_map(|retention| {
            // Time steps often land exactly on the retention edges.
            let advance = prop_oneof![0u64..60, Just(retention), Just(retention / 2), Just(1)];
            (Just(retention), prop::collection::vec((0u8..24, advance), 0..300))
        }),
    ) {
        let t0 = Instant::now();
        let retention = Duration::from_millis(retention_ms);
        let mut now = t0;
        let mut seen = SeenSet::new(capacity, retention);
        // For each id last taken as new: how many ids were new before it, and when.
        let mut taken: HashMap<u8, (usize, Instant)> = HashMap::new();
        let mut new_ids = 0;
        for (id, advance_ms) in steps {
            now += Duration::from_millis(advance_ms);
            let is_new = seen.insert(MessageId::of(&[id]), now);
            match taken.get(&id) {
                None => prop_assert!(is_new, "id {} never seen, reported seen", id),
                Some(&(index, at)) => {
                    let newer = new_ids - index - 1;
                    if newer < capacity && at + retention > now {
                        prop_assert!(!is_new, "id {} forgotten after {} newer ids", id, newer);
                    }
                    if newer >= 2 * capacity - 1 || at + 2 * retention <= now {
                        prop_assert!(is_new, "id {} remembered after {} newer ids", id, newer);
                    }
                }
            }
            if is_new {
                taken.insert(id, (new_ids, now));
                new_ids += 1;
            }
            prop_assert!(seen.len() < 2 * capacity);
        }
    }

    /// `insert_many` answers exactly as `insert` one id at a time, whatever the batch
    /// sizes, repeats within a batch, rotations in the middle of one (small capacities)
    /// or a zero retention period.
    #[test]
    fn insert_many_matches_one_at_a_time(
        capacity in 1usize..12,
        retention_ms in prop_oneof![Just(0u64), 1u64..50],
        batches in prop::collection::vec(
            (prop::collection::vec(0u8..16, 0..100), 0u64..30),
            0..20,
        ),
    ) {
        let t0 = Instant::now();
        let retention = Duration::from_millis(retention_ms);
        let mut one_by_one = SeenSet::new(capacity, retention);
        let mut batched = SeenSet::new(capacity, retention);
        let mut now = t0;
        for (ids, advance_ms) in batches {
            now += Duration::from_millis(advance_ms);
            let ids: Vec<MessageId> = ids.iter().map(|&n| MessageId::of(&[n])).collect();
            let expected: Vec<bool> = ids.iter().map(|&id| one_by_one.insert(id, now)).collect();
            let mut new = vec![false; ids.len()];
            batched.insert_many(&ids, now, &mut new);
            prop_assert_eq!(new, expected);
            prop_assert_eq!(batched.len(), one_by_one.len());
            prop_assert_eq!(batched.evicted(), one_by_one.evicted());
        }
    }

    #[test]
    fn seen_set_never_exceeds_its_bound(
        capacity in 1usize..64,
        retention_ms in 1u64..1000,
        steps in prop::collection::vec((0u16..200, 0u64..100), 0..500),
    ) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut seen = SeenSet::new(capacity, Duration::from_millis(retention_ms));
        for (id, advance_ms) in steps {
            now += Duration::from_millis(advance_ms);
            seen.insert(MessageId::of(&id.to_be_bytes()), now);
            prop_assert!(seen.len() < 2 * capacity);
            prop_assert!(seen.memory_bytes() <= SeenSet::memory_bound(capacity));
        }
    }
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn every_message_reaches_every_node_exactly_once(
        topology in topology(),
        network in network(),
        publishers in prop::collection::vec(any::<prop::sample::Index>(), 1..6),
    ) {
        let nodes = topology.nodes();
        let mut sim = Simulation::new(topology, network);
        for (n, publisher) in publishers.iter().enumerate() {
            sim.publish(publisher.index(nodes), format!("message {n}").into_bytes()).unwrap();
        }
        prop_assert!(sim.run_until_quiet());
        let report = sim.report();
        everyone_got_everything_once(&report, nodes)?;
        prop_assert_eq!(report.deliveries, (publishers.len() * (nodes - 1)) as u64);
    }

    #[test]
    fn flooding_is_loop_free_and_falls_quiet(
        topology in topology(),
        network in network(),
        publishers in prop::collection::vec(any::<prop::sample::Index>(), 1..4),
    ) {
        let (nodes, degree_sum) = (topology.nodes(), topology.degree_sum() as u64);
        let mut sim = Simulation::new(topology, network);
        for (n, publisher) in publishers.iter().enumerate() {
            sim.publish(publisher.index(nodes), vec![n as u8; 10]).unwrap();
        }
        prop_assert!(sim.run_until_quiet(), "events still pending after 24 virtual hours");
        let report = sim.report();
        let attributed: u64 = report.messages.iter().map(|m| m.frames_sent).sum();
        prop_assert_eq!(attributed, report.frames_sent, "a frame not attributed to its message");
        for message in report.messages {
            prop_assert!(
                message.frames_sent <= degree_sum,
                "{} frames for one message over links with degree sum {}",
                message.frames_sent,
                degree_sum
            );
        }
    }

    #[test]
    fn garbage_peer_is_disconnected_and_the_rest_unaffected(
        topology in topology(),
        network in network(),
        victim in any::<prop::sample::Index>(),
        length in (Config::default().max_frame_len as u32 + 1)..=u32::MAX,
        junk in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let nodes = topology.nodes();
        let mut sim = Simulation::new(topology, network);
        let attacker = sim.attach_raw_peer(victim.index(nodes));
        let mut garbage = length.to_be_bytes().to_vec();
        garbage.extend(junk);
        sim.send_raw(attacker, &garbage);
        let reason = sim.raw_peer_disconnected(attacker);
        prop_assert!(
            matches!(reason, Some(DisconnectReason::Protocol(FrameError::TooLarge { .. }))),
            "attacker not dropped for its length prefix: {:?}",
            reason
        );
        sim.publish(victim.index(nodes), &b"after the attack"[..]).unwrap();
        sim.publish(0, &b"from elsewhere"[..]).unwrap();
        prop_assert!(sim.run_until_quiet());
        prop_assert!(sim.report().all_delivered_exactly_once());
    }
}

/// Events a hostile or buggy environment may throw at one node.
#[derive(Debug, Clone)]
enum NodeEvent {
    Connect(u8),
    Disconnect(u8),
    Receive(u8, Vec<u8>),
    Flush(u8, u16),
    Publish(Vec<u8>),
    Advance(u16),
    /// The application takes this many of the deliveries waiting for it.
    Take(u8),
}

fn node_event() -> impl Strategy<Value = NodeEvent> {
    let small_payload = prop::collection::vec(0u8..4, 0..3);
    prop_oneof![
        (0u8..6).prop_map(NodeEvent::Connect),
        (0u8..6).prop_map(NodeEvent::Disconnect),
        (0u8..6, small_payload.clone()).prop_map(|(p, m)| NodeEvent::Receive(p, encode(&m))),
        // Several frames in one read, often repeating one another: runs with gaps.
        (0u8..6, prop::collection::vec(small_payload.clone(), 0..6))
            .prop_map(|(p, ms)| NodeEvent::Receive(p, ms.iter().flat_map(|m| encode(m)).collect())),
        (0u8..6, prop::collection::vec(any::<u8>(), 0..16))
            .prop_map(|(p, b)| NodeEvent::Receive(p, b)),
        // The beginning of a frame of up to the largest size: a partial frame.
        (
            0u8..6,
            prop::collection::vec(any::<u8>(), 0..9),
            any::<prop::sample::Index>()
        )
            .prop_map(|(p, m, cut)| {
                let frame = encode(&m);
                NodeEvent::Receive(p, frame[..cut.index(frame.len())].to_vec())
            }),
        (0u8..6, any::<u16>()).prop_map(|(p, n)| NodeEvent::Flush(p, n)),
        small_payload.prop_map(NodeEvent::Publish),
        any::<u16>().prop_map(NodeEvent::Advance),
        (0u8..4).prop_map(NodeEvent::Take),
    ]
}

proptest! {
    #![proptest_config(cases(256))]

    /// Under any event sequence the node's bounds hold, it never echoes a message to the
    /// peer it came from, and it sends only whole frames of messages it delivered,
    /// published, or dropped for a stalled application in the same step. With either overload policy; when reading pauses, the
    /// caller here stops handing in reads of paused peers at once (a real one may still
    /// hand in what it had read ahead), nothing is ever shed, and every queue stays
    /// under its budget plus one read.
    #[test]
    fn node_invariants_hold_under_any_events(
        events in prop::collection::vec(node_event(), 0..200),
        shed in any::<bool>(),
        paced in any::<bool>(),
    ) {
        let overload = if shed { Overload::Shed } else { Overload::PauseReading };
        let config = Config {
            max_frame_len: 8,
            // Even ids dialled by the node, odd ones dialled in.
            max_outbound_peers: 2,
            max_inbound_peers: 2,
            eviction_protection: Duration::from_millis(30_000),
            frame_timeout: Duration::from_millis(2000),
            // Two partial frames of the largest size.
            partial_frame_budget_bytes: 2 * 12,
            // A few frames a second at most, when on.
            peer_rate_limit: paced.then_some(RateLimit { bytes_per_second: 40, messages_per_second: 3 }),
            plumtree: None,
            seen_budget_bytes: SeenSet::memory_bound(5),
            seen_retention: Duration::from_millis(5000),
            // Two frames of 8 bytes for one peer, five in all.
            peer_queue_bytes: 2 * (12 + QUEUED_FRAME_OVERHEAD),
            total_queue_bytes: 5 * (12 + QUEUED_FRAME_OVERHEAD),
            slow_peer_timeout: Duration::from_millis(3000),
            overload,
            stall_escape: Duration::from_millis(1000),
            // Three deliveries of 2-byte payloads.
            delivery_queue_bytes: 3 * (2 + QUEUED_FRAME_OVERHEAD),
            // One `Send` handed over at a time: the rest is kept back.
            send_ahead_bytes: 0,
        };
        let capacity = config.seen_capacity();
        // The most one read adds to a queue: six frames of up to 2 payload bytes.
        let one_read = 6 * (6 + QUEUED_FRAME_OVERHEAD);
        let t0 = Instant::now();
        let mut now = t0;
        let mut node = Node::new(config).unwrap();
        // Peers the node told to pause, as its caller tracks them.
        let mut paused = std::collections::HashSet::new();
        // Payload lengths of the deliveries the application has not taken yet.
        let mut untaken = std::collections::VecDeque::new();
        // What the node knew of its peers before each event.
        let mut peers_before: Vec<(PeerId, PeerStats)> = Vec::new();
        // Every payload delivered or published so far: a message can be sent steps
        // after it came (kept back for a peer until the caller writes what it has).
        let mut sendable: std::collections::HashSet<Bytes> = std::collections::HashSet::new();
        // Frames sent of payloads never delivered nor published.
        let mut unsent = 0;
        for event in events {
            match event {
                NodeEvent::Connect(p) => {
                    let direction = [Direction::Outbound, Direction::Inbound][usize::from(p % 2)];
                    node.peer_connected(now, PeerId(p.into()), direction);
                }
                NodeEvent::Disconnect(p) => {
                    node.peer_disconnected(now, PeerId(p.into()));
                    paused.remove(&PeerId(p.into()));
                }
                NodeEvent::Receive(p, bytes) => {
                    let peer = PeerId(p.into());
                    if !node.is_connected(peer) || node.is_reading(peer) {
                        node.handle_received(now, peer, &bytes);
                    }
                }
                NodeEvent::Flush(p, n) => node.handle_flushed(now, PeerId(p.into()), n.into()),
                NodeEvent::Publish(payload) => {
                    sendable.insert(Bytes::from(payload.clone()));
                    let _ = node.publish(now, payload);
                }
                NodeEvent::Take(n) => {
                    let taken: Vec<usize> = untaken.drain(..untaken.len().min(n.into())).collect();
                    node.handle_delivered(now, taken.len(), taken.iter().sum());
                }
                NodeEvent::Advance(ms) => {
                    now += Duration::from_millis(ms.into());
                    node.handle_timeout(now);
                    // Everything due by `now` was done: a driver never spins on it.
                    prop_assert!(node.poll_timeout().is_none_or(|at| at > now));
                }
            }
            let before: std::collections::HashMap<PeerId, PeerStats> = peers_before.drain(..).collect();
            let actions: Vec<Action> = node.drain_actions().collect();
            // Whom each message delivered so far in this step came from. Not always the
            // peer whose bytes are handled: a held message of another peer may be taken
            // and sent on, to that peer too. A delivery comes before the sends that
            // forward it; a send before it is not an echo (a copy of a message the node
            // published, kept back for a peer that sent it in the same step after the
            // seen set forgot it).
            let mut sender: std::collections::HashMap<Bytes, PeerId> = std::collections::HashMap::new();
            for action in actions {
                match action {
                    Action::Send { peer, frames } => {
                        for payload in frames.payloads() {
                            prop_assert_ne!(sender.get(payload), Some(&peer), "echoed a message to its sender");
                        }
                        let payloads: Vec<&[u8]> = frames.payloads().collect();
                        prop_assert_eq!(payloads.len(), frames.count());
                        prop_assert!(frames.count() > 0);
                        // A message dropped for a stalled application is relayed all the
                        // same: it is sent without being delivered.
                        let unknown = payloads.iter().filter(|p| !sendable.contains(**p));
                        unsent += unknown.count();
                    }
                    Action::Deliver(delivery) => {
                        sender.insert(delivery.payload.clone(), delivery.from);
                        untaken.push_back(delivery.payload.len());
                        sendable.insert(delivery.payload);
                    }
                    Action::Disconnect { peer, reason } => {
                        paused.remove(&peer);
                        if reason == DisconnectReason::Evicted {
                            // Only inbound peers go, never a protected one.
                            let victim = before[&peer];
                            prop_assert_eq!(victim.direction, Direction::Inbound);
                            prop_assert!(!victim.is_protected(now, Duration::from_millis(30_000)));
                        }
                    }
                    // Each change is told once, and only with reading pauses or a rate
                    // limit.
                    Action::PauseReading { peer } => prop_assert!((!shed || paced) && paused.insert(peer)),
                    Action::ResumeReading { peer } => prop_assert!((!shed || paced) && paused.remove(&peer)),
                }
            }
            for p in 0..6u64 {
                let peer = PeerId(p);
                if node.is_connected(peer) {
                    prop_assert_eq!(node.is_reading(peer), !paused.contains(&peer));
                }
            }
            let stats = node.stats();
            // Frames sent of payloads never delivered nor published: at most one per
            // peer for each message dropped for the application.
            let dropped = stats.deliveries_dropped as usize;
            prop_assert!(unsent <= 4 * dropped, "{} unknown frames sent", unsent);
            let untaken_bytes: usize = untaken.iter().map(|len| len + QUEUED_FRAME_OVERHEAD).sum();
            prop_assert_eq!(stats.delivery_queued_bytes, untaken_bytes);
            // The application's queue too is passed by at most what one read brings.
            prop_assert!(stats.delivery_queued_bytes <= 3 * (2 + QUEUED_FRAME_OVERHEAD) + one_read);
            prop_assert!(stats.seen_len < 2 * capacity);
            prop_assert!(stats.peers_current <= 4);
            prop_assert!(stats.partial_frame_bytes <= 2 * 12);
            let partial: usize = node.peers().map(|(_, peer)| peer.partial_frame_bytes).sum();
            prop_assert_eq!(partial, stats.partial_frame_bytes);
            peers_before.extend(node.peers());
            let total = 5 * (12 + QUEUED_FRAME_OVERHEAD);
            if shed {
                prop_assert!(stats.queued_bytes <= total);
            } else {
                prop_assert_eq!(stats.frames_shed, 0);
                // Past the total by what the event that filled it brought: one read (to at
                // most three other peers) or one publish (to all four).
                prop_assert!(stats.queued_bytes <= total + 4 * one_read, "{}", stats.queued_bytes);
                prop_assert_eq!(stats.congested, !node.can_publish());
            }
            prop_assert!(node.stats().seen_memory_bytes <= SeenSet::memory_bound(capacity));
        }
        // Whatever was queued, handed over or kept back, is given back with its peer.
        for p in 0..6u64 {
            node.peer_disconnected(now, PeerId(p));
        }
        prop_assert_eq!(node.stats().queued_bytes, 0);
    }
}

/// What peers do to a node's slots: connect either way, go, bring a new message, or let
/// time pass.
#[derive(Debug, Clone)]
enum SlotEvent {
    Connect(u8, bool),
    Disconnect(u8),
    BringNew(u8),
    Advance(u16),
}

fn slot_event() -> impl Strategy<Value = SlotEvent> {
    prop_oneof![
        3 => (0u8..10, any::<bool>()).prop_map(|(p, inbound)| SlotEvent::Connect(p, inbound)),
        1 => (0u8..10).prop_map(SlotEvent::Disconnect),
        3 => (0u8..10).prop_map(SlotEvent::BringNew),
        1 => (0u16..20_000).prop_map(SlotEvent::Advance),
    ]
}

proptest! {
    #![proptest_config(cases(256))]

    /// Eviction takes only inbound peers and never one that brought a new message first
    /// within the protection window; an inbound newcomer is refused only when every
    /// inbound peer is protected; an outbound peer is accepted whenever an outbound slot
    /// is free, however many inbound connections there are.
    #[test]
    fn slots_and_eviction_keep_their_rules(events in prop::collection::vec(slot_event(), 0..150)) {
        let protection = Duration::from_secs(30);
        let config = Config {
            max_outbound_peers: 2,
            max_inbound_peers: 3,
            eviction_protection: protection,
            ..Config::default()
        };
        let mut now = Instant::now();
        let mut node = Node::new(config).unwrap();
        let mut fresh = 0u32;
        for event in events {
            let before: std::collections::HashMap<PeerId, PeerStats> = node.peers().collect();
            let count = |direction| before.values().filter(|s| s.direction == direction).count();
            let mut newcomer = None;
            match event {
                SlotEvent::Connect(p, inbound) => {
                    let direction = if inbound { Direction::Inbound } else { Direction::Outbound };
                    let peer = PeerId(p.into());
                    if !node.is_connected(peer) {
                        newcomer = Some((peer, direction));
                    }
                    node.peer_connected(now, peer, direction);
                }
                SlotEvent::Disconnect(p) => node.peer_disconnected(now, PeerId(p.into())),
                SlotEvent::BringNew(p) => {
                    fresh += 1;
                    node.handle_received(now, PeerId(p.into()), &encode(&fresh.to_be_bytes()));
                }
                SlotEvent::Advance(ms) => now += Duration::from_millis(ms.into()),
            }
            for action in node.drain_actions() {
                let Action::Disconnect { peer, reason } = action else { continue };
                match reason {
                    DisconnectReason::Evicted => {
                        let victim = before[&peer];
                        prop_assert_eq!(victim.direction, Direction::Inbound);
                        prop_assert!(!victim.is_protected(now, protection));
                    }
                    DisconnectReason::TooManyPeers { direction, .. } => {
                        prop_assert_eq!(Some((peer, direction)), newcomer);
                        match direction {
                            Direction::Outbound => prop_assert_eq!(count(Direction::Outbound), 2),
                            Direction::Inbound => {
                                let all_protected = before.values().all(|s| {
                                    s.direction == Direction::Outbound || s.is_protected(now, protection)
                                });
                                prop_assert!(all_protected);
                            }
                        }
                    }
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
            if let Some((peer, Direction::Outbound)) = newcomer {
                prop_assert_eq!(node.is_connected(peer), count(Direction::Outbound) < 2);
            }
        }
    }
}
