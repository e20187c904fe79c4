//! Peers that squat on slots, trickle frames or flood: eviction, the partial-frame
//! budget and timeout, the per-peer rate limit, and fair resumption.

use std::time::{Duration, Instant};

use gossip_core::frame::encode;
use gossip_core::{
    Action, Config, Direction, DisconnectReason, Node, PeerId, RateLimit, HEADER_LEN,
    QUEUED_FRAME_OVERHEAD,
};

/// A node with `config` and one inbound peer, `PeerId(1)`, connected at the returned
/// time.
fn one_peer(config: Config) -> (Node, Instant, PeerId) {
    let t0 = Instant::now();
    let mut node = Node::new(config).unwrap();
    node.peer_connected(t0, PeerId(1), Direction::Inbound);
    (node, t0, PeerId(1))
}

/// Default settings with a rate limit.
fn paced(bytes_per_second: u64, messages_per_second: u64) -> Config {
    Config {
        peer_rate_limit: Some(RateLimit {
            bytes_per_second,
            messages_per_second,
        }),
        ..Config::default()
    }
}

fn actions(node: &mut Node) -> Vec<Action> {
    node.drain_actions().collect()
}

fn disconnects(actions: &[Action]) -> Vec<(PeerId, DisconnectReason)> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Disconnect { peer, reason } => Some((*peer, *reason)),
            _ => None,
        })
        .collect()
}

fn delivered(actions: &[Action]) -> Vec<Vec<u8>> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Deliver(delivery) => Some(delivery.payload.to_vec()),
            _ => None,
        })
        .collect()
}

#[test]
fn idle_squatters_cannot_lock_out_newcomers_or_configured_peers() {
    let config = Config {
        max_inbound_peers: 4,
        max_outbound_peers: 2,
        ..Config::default()
    };
    let t0 = Instant::now();
    let mut node = Node::new(config).unwrap();
    let squatters: Vec<PeerId> = (100..104).map(PeerId).collect();
    for (i, &squatter) in squatters.iter().enumerate() {
        node.peer_connected(
            t0 + Duration::from_secs(i as u64),
            squatter,
            Direction::Inbound,
        );
    }
    let now = t0 + Duration::from_secs(10);
    // Configured peers have their own slots.
    node.peer_connected(now, PeerId(1), Direction::Outbound);
    node.peer_connected(now, PeerId(2), Direction::Outbound);
    assert!(actions(&mut node).is_empty());
    // An honest newcomer evicts the oldest squatter.
    let honest = PeerId(50);
    node.peer_connected(now, honest, Direction::Inbound);
    assert_eq!(
        disconnects(&actions(&mut node)),
        [(squatters[0], DisconnectReason::Evicted)]
    );
    // The attacker keeps connecting: it evicts its own connections first, so the
    // newcomer keeps its slot through the next three arrivals.
    for i in 0..3u64 {
        let later = now + Duration::from_secs(1 + i);
        node.peer_connected(later, PeerId(200 + i), Direction::Inbound);
        let gone = disconnects(&actions(&mut node));
        assert_eq!(
            gone,
            [(squatters[1 + i as usize], DisconnectReason::Evicted)]
        );
        assert!(node.is_connected(honest));
    }
    // Outbound peers are never evicted.
    assert!(node.is_connected(PeerId(1)) && node.is_connected(PeerId(2)));
    assert_eq!(node.stats().peers_evicted, 4);
}

#[test]
fn a_peer_that_brought_something_first_recently_is_protected() {
    let protection = Duration::from_secs(60);
    let config = Config {
        max_inbound_peers: 2,
        eviction_protection: protection,
        ..Config::default()
    };
    let t0 = Instant::now();
    let mut node = Node::new(config).unwrap();
    let (useful, idle) = (PeerId(1), PeerId(2));
    node.peer_connected(t0, useful, Direction::Inbound);
    node.peer_connected(t0 + Duration::from_secs(1), idle, Direction::Inbound);
    node.handle_received(t0, useful, &encode(b"news"));
    // The useful peer is older, yet the idle one goes.
    node.peer_connected(t0 + Duration::from_secs(2), PeerId(3), Direction::Inbound);
    let gone = disconnects(&actions(&mut node));
    assert_eq!(gone, [(idle, DisconnectReason::Evicted)]);
    let stats = node.peer_stats(useful).unwrap();
    assert_eq!((stats.first_deliveries, stats.score()), (1, 1));
    assert_eq!(stats.last_first_delivery, Some(t0));
    // While the protection lasts and peer 3 has a score of 0, peer 3 goes next.
    node.peer_connected(
        t0 + protection - Duration::from_nanos(1),
        PeerId(4),
        Direction::Inbound,
    );
    let gone = disconnects(&actions(&mut node));
    assert_eq!(gone, [(PeerId(3), DisconnectReason::Evicted)]);
    // Once both remaining peers are protected, a newcomer is refused.
    node.handle_received(
        t0 + Duration::from_secs(3),
        PeerId(4),
        &encode(b"more news"),
    );
    let now = t0 + Duration::from_secs(4);
    node.peer_connected(now, PeerId(5), Direction::Inbound);
    let refused = DisconnectReason::TooManyPeers {
        direction: Direction::Inbound,
        limit: 2,
    };
    assert_eq!(disconnects(&actions(&mut node)), [(PeerId(5), refused)]);
    assert_eq!(node.stats().peers_refused, 1);
}

#[test]
fn a_frame_must_complete_within_the_frame_timeout() {
    let timeout = Duration::from_secs(20);
    let config = Config {
        frame_timeout: timeout,
        ..Config::default()
    };
    let (mut node, t0, loris) = one_peer(config);
    assert_eq!(node.poll_timeout(), None);
    // Announces 1000 bytes and sends one; then one more byte every few seconds.
    node.handle_received(t0, loris, &[0, 0, 3, 232, 7]);
    assert_eq!(node.poll_timeout(), Some(t0 + timeout));
    assert_eq!(node.stats().partial_frame_bytes, HEADER_LEN + 1000);
    node.handle_received(t0 + Duration::from_secs(10), loris, &[8]);
    assert_eq!(
        node.poll_timeout(),
        Some(t0 + timeout),
        "progress does not reset it"
    );
    node.handle_timeout(t0 + timeout - Duration::from_nanos(1));
    assert!(actions(&mut node).is_empty());
    node.handle_timeout(t0 + timeout);
    let gone = disconnects(&actions(&mut node));
    let reason = DisconnectReason::FrameTimeout { announced: 1000 };
    assert_eq!(gone, [(loris, reason)]);
    assert_eq!(node.stats().frame_timeouts, 1);
    assert_eq!(node.stats().partial_frame_bytes, 0);
    assert_eq!(node.poll_timeout(), None);
}

#[test]
fn each_new_frame_gets_its_own_timeout() {
    let timeout = Duration::from_secs(20);
    let config = Config {
        frame_timeout: timeout,
        ..Config::default()
    };
    let (mut node, t0, peer) = one_peer(config);
    let mut two = encode(b"first");
    two.extend_from_slice(&encode(b"second"));
    node.handle_received(t0, peer, &two[..7]);
    let later = t0 + Duration::from_secs(15);
    // Completes the first frame and begins the second.
    node.handle_received(later, peer, &two[7..12]);
    assert_eq!(node.poll_timeout(), Some(later + timeout));
    node.handle_received(later, peer, &two[12..]);
    assert_eq!(node.poll_timeout(), None);
    assert_eq!(delivered(&actions(&mut node)).len(), 2);
}

#[test]
fn partial_frames_stay_within_their_budget_and_the_oldest_goes() {
    let config = Config {
        max_frame_len: 1000,
        partial_frame_budget_bytes: 2 * (HEADER_LEN + 1000),
        ..Config::default()
    };
    let t0 = Instant::now();
    let mut node = Node::new(config).unwrap();
    for peer in 1..=3 {
        node.peer_connected(t0, PeerId(peer), Direction::Inbound);
    }
    let header = [0, 0, 3, 232];
    node.handle_received(t0, PeerId(2), &header);
    node.handle_received(t0 + Duration::from_secs(1), PeerId(1), &header);
    assert!(actions(&mut node).is_empty());
    node.handle_received(t0 + Duration::from_secs(2), PeerId(3), &header);
    let gone = disconnects(&actions(&mut node));
    let reason = DisconnectReason::PartialFramesOverBudget {
        held: HEADER_LEN + 1000,
    };
    assert_eq!(gone, [(PeerId(2), reason)]);
    let stats = node.stats();
    assert_eq!(stats.partial_frame_bytes, 2 * (HEADER_LEN + 1000));
    assert_eq!(stats.partial_frame_disconnects, 1);
    // Completing a frame frees its share.
    node.handle_received(t0 + Duration::from_secs(3), PeerId(1), &[1; 1000]);
    assert_eq!(node.stats().partial_frame_bytes, HEADER_LEN + 1000);
    assert_eq!(delivered(&actions(&mut node)), [vec![1; 1000]]);
}

#[test]
fn a_peer_over_its_rate_is_read_more_slowly_not_cut() {
    let (mut node, t0, loud) = one_peer(paced(1000, 1_000_000));
    // A second's worth of burst is fine.
    node.handle_received(t0, loud, &encode(&[0; 996]));
    assert_eq!(delivered(&actions(&mut node)).len(), 1);
    assert!(node.is_reading(loud));
    // 500 bytes more: half a second over.
    node.handle_received(t0, loud, &encode(&[1; 496]));
    let taken = actions(&mut node);
    assert_eq!(delivered(&taken).len(), 1, "what was read is never refused");
    assert!(taken.contains(&Action::PauseReading { peer: loud }));
    assert!(!node.is_reading(loud));
    let resume = t0 + Duration::from_millis(500);
    assert_eq!(node.poll_timeout(), Some(resume));
    node.handle_timeout(resume - Duration::from_nanos(1));
    assert!(actions(&mut node).is_empty());
    node.handle_timeout(resume);
    assert_eq!(actions(&mut node), [Action::ResumeReading { peer: loud }]);
    assert!(node.is_connected(loud));
    assert_eq!(node.stats().rate_limit_pauses, 1);
}

#[test]
fn new_messages_have_their_own_rate() {
    let (mut node, t0, loud) = one_peer(paced(u64::MAX, 10));
    let burst: Vec<u8> = (0..15u8).flat_map(|i| encode(&[i])).collect();
    node.handle_received(t0, loud, &burst);
    assert!(!node.is_reading(loud));
    // Five messages over a rate of ten a second: half a second.
    assert_eq!(node.poll_timeout(), Some(t0 + Duration::from_millis(500)));
    // Duplicates cost nothing on the message rate.
    let (mut quiet, t0, loud) = one_peer(paced(u64::MAX, 10));
    let same: Vec<u8> = (0..15).flat_map(|_| encode(b"x")).collect();
    quiet.handle_received(t0, loud, &same);
    assert!(quiet.is_reading(loud));
}

#[test]
fn the_frame_timeout_starts_over_when_reading_resumes() {
    let timeout = Duration::from_secs(20);
    let config = Config {
        frame_timeout: timeout,
        ..paced(10, 10)
    };
    let (mut node, t0, peer) = one_peer(config);
    // 30 bytes of a 100-byte frame: 2 s over the rate, and not read meanwhile.
    let mut frame = vec![0, 0, 0, 100];
    frame.extend_from_slice(&[5; 26]);
    node.handle_received(t0, peer, &frame);
    assert_eq!(actions(&mut node), [Action::PauseReading { peer }]);
    let resume = t0 + Duration::from_secs(2);
    assert_eq!(node.poll_timeout(), Some(resume));
    node.handle_timeout(resume);
    assert_eq!(actions(&mut node), [Action::ResumeReading { peer }]);
    assert_eq!(node.poll_timeout(), Some(resume + timeout));
}

#[test]
fn held_messages_are_taken_round_robin_when_room_frees_up() {
    // A sink whose queue holds two frames of 1 byte; it is full at two, free at one.
    let charge = HEADER_LEN + 1 + QUEUED_FRAME_OVERHEAD;
    let config = Config {
        max_frame_len: 1,
        peer_queue_bytes: 2 * charge,
        ..Config::default()
    };
    let t0 = Instant::now();
    let mut node = Node::new(config).unwrap();
    let (sink, a, b) = (PeerId(0), PeerId(1), PeerId(2));
    for peer in [sink, a, b] {
        node.peer_connected(t0, peer, Direction::Inbound);
    }
    // Fill the sink: one message from each sender; the second fills it (and goes to the
    // other sender too, whose queue has room).
    node.handle_received(t0, a, &encode(&[0]));
    node.handle_received(t0, b, &encode(&[1]));
    let mut next = 2u8;
    let mut order = Vec::new();
    for _ in 0..6 {
        // Each sender has a new message waiting.
        for sender in [a, b] {
            if node.is_reading(sender) {
                node.handle_received(t0, sender, &encode(&[next]));
                next += 1;
            }
        }
        actions(&mut node);
        // The senders read everything; the sink takes one frame: room for exactly one
        // more message.
        node.handle_flushed(t0, a, usize::MAX);
        node.handle_flushed(t0, b, usize::MAX);
        node.handle_flushed(t0, sink, HEADER_LEN + 1);
        for action in actions(&mut node) {
            if let Action::Deliver(delivery) = action {
                order.push(delivery.from);
            }
        }
    }
    assert_eq!(order, [a, b, a, b, a, b], "each sender in turn");
}
