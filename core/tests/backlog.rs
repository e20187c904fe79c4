//! What a node keeps back from the caller beyond `Config::send_ahead_bytes` of a peer's
//! queue, and the copies it drops unsent because the peer sent the message itself.

use std::time::{Duration, Instant};

use bytes::Bytes;
use gossip_core::frame::encode;
use gossip_core::{Action, Config, Direction, Node, PeerId, QUEUED_FRAME_OVERHEAD};

const A: PeerId = PeerId(1);
const B: PeerId = PeerId(2);
const C: PeerId = PeerId(3);

/// Wire bytes of a frame of 10 payload bytes.
const WIRE: usize = 14;
/// What such a frame is charged in a peer's queue.
const CHARGE: usize = WIRE + QUEUED_FRAME_OVERHEAD;

/// A node with `peers`, handing at most `send_ahead` unwritten bytes of a queue over.
fn node_with(send_ahead: usize, peers: &[PeerId]) -> (Node, Instant) {
    let config = Config {
        send_ahead_bytes: send_ahead,
        ..Config::default()
    };
    node_with_config(config, peers)
}

/// A node of `config` with `peers`.
fn node_with_config(config: Config, peers: &[PeerId]) -> (Node, Instant) {
    let now = Instant::now();
    let mut node = Node::new(config).unwrap();
    for &peer in peers {
        node.peer_connected(now, peer, Direction::Inbound);
    }
    (node, now)
}

fn message(n: u8) -> Vec<u8> {
    vec![n; WIRE - 4]
}

/// The payloads sent to each peer, in order, by the actions drained now.
fn sent(node: &mut Node) -> Vec<(PeerId, Vec<Bytes>)> {
    node.drain_actions()
        .filter_map(|action| match action {
            Action::Send { peer, frames } => Some((
                peer,
                frames.payloads().map(Bytes::copy_from_slice).collect(),
            )),
            _ => None,
        })
        .collect()
}

fn queued(node: &Node, peer: PeerId) -> usize {
    node.peers()
        .find(|(id, _)| *id == peer)
        .map_or(0, |(_, stats)| stats.queued_bytes)
}

#[test]
fn a_copy_kept_back_is_dropped_when_the_peer_sends_the_message() {
    let (mut node, now) = node_with(1, &[A, B]);
    node.handle_received(now, A, &encode(&message(1)));
    assert_eq!(sent(&mut node), [(B, vec![Bytes::from(message(1))])]);
    // B has the first frame's bytes unwritten: the second is kept back.
    node.handle_received(now, A, &encode(&message(2)));
    assert_eq!(sent(&mut node), []);
    assert_eq!(queued(&node, B), 2 * CHARGE);
    // B got it elsewhere, and sends it: its copy is not sent.
    node.handle_received(now, B, &encode(&message(2)));
    assert_eq!(sent(&mut node), []);
    assert_eq!(node.stats().copies_not_sent, 1);
    assert_eq!(queued(&node, B), CHARGE);
    node.handle_flushed(now, B, WIRE);
    assert_eq!(sent(&mut node), [], "nothing was left for B");
    let stats = node.stats();
    assert_eq!((stats.queued_bytes, stats.frames_out), (0, 1));
    // With nothing unwritten, the next goes at once.
    node.handle_received(now, A, &encode(&message(3)));
    assert_eq!(sent(&mut node), [(B, vec![Bytes::from(message(3))])]);
}

#[test]
fn a_copy_kept_back_is_dropped_when_the_peer_sends_a_message_the_node_forgot() {
    let retention = Duration::from_secs(1);
    let config = Config {
        send_ahead_bytes: 1,
        seen_retention: retention,
        ..Config::default()
    };
    let (mut node, t0) = node_with_config(config, &[A, B]);
    node.handle_received(t0, A, &encode(&message(1)));
    node.handle_received(t0, A, &encode(&message(2)));
    assert_eq!(sent(&mut node), [(B, vec![Bytes::from(message(1))])]);
    // Past the retention the node has forgotten message 2 and takes B's copy for new
    // (see `Config::seen_retention`); B has it all the same, so its kept copy goes.
    let later = t0 + 2 * retention;
    node.handle_received(later, B, &encode(&message(2)));
    assert_eq!(node.stats().messages_delivered, 3, "delivered again");
    assert_eq!(node.stats().copies_not_sent, 1);
    assert_eq!(queued(&node, B), CHARGE);
    node.drain_actions().for_each(drop);
    node.handle_flushed(later, B, WIRE);
    assert_eq!(sent(&mut node), [], "nothing echoed to B");
}

#[test]
fn a_copy_kept_back_is_dropped_when_a_forgotten_message_from_the_peer_is_taken_after_a_hold() {
    let retention = Duration::from_millis(500);
    let config = Config {
        send_ahead_bytes: 1,
        seen_retention: retention,
        // Two frames fill a queue, and no stall escape takes a message meanwhile.
        max_frame_len: WIRE - 4,
        peer_queue_bytes: 2 * CHARGE,
        stall_escape: Duration::from_secs(5),
        ..Config::default()
    };
    let (mut node, t0) = node_with_config(config, &[A, B, C]);
    node.handle_received(t0, A, &encode(&message(1)));
    node.handle_received(t0, A, &encode(&message(2)));
    assert_eq!(
        sent(&mut node).len(),
        2,
        "message 1 to B and C, 2 kept back"
    );
    // B sends message 2, forgotten (its timer ran): it would go to C, whose queue is
    // full, so it is held.
    let later = t0 + 2 * retention;
    node.handle_timeout(later);
    node.handle_received(later, B, &encode(&message(2)));
    assert!(!node.is_reading(B), "held");
    // C writes its queue: the held message is taken, and B's kept copy goes.
    node.handle_flushed(later, C, WIRE);
    node.handle_flushed(later, C, WIRE);
    assert_eq!(node.stats().messages_delivered, 3, "delivered again");
    assert_eq!(node.stats().copies_not_sent, 1);
    node.drain_actions().for_each(drop);
    node.handle_flushed(later, B, WIRE);
    assert_eq!(sent(&mut node), [], "nothing echoed to B");
}

#[test]
fn a_queue_is_handed_over_while_less_than_send_ahead_is_unwritten() {
    // Exactly one frame may be unwritten before the next is kept back.
    let (mut node, now) = node_with(WIRE, &[A, B]);
    node.handle_received(now, A, &encode(&message(1)));
    node.handle_received(now, A, &encode(&message(2)));
    node.handle_received(now, A, &encode(&message(3)));
    assert_eq!(sent(&mut node), [(B, vec![Bytes::from(message(1))])]);
    // One byte written: less than `send_ahead` is unwritten, so one `Send` more goes.
    node.handle_flushed(now, B, 1);
    assert_eq!(sent(&mut node), [(B, vec![Bytes::from(message(2))])]);
    node.handle_flushed(now, B, 2 * WIRE - 1);
    assert_eq!(sent(&mut node), [(B, vec![Bytes::from(message(3))])]);
    node.handle_flushed(now, B, WIRE);
    assert_eq!(node.stats().queued_bytes, 0);
    // A second peer's queue is its own: one unwritten frame each.
    let (mut node, now) = node_with(WIRE + 1, &[A, B]);
    node.handle_received(now, A, &encode(&message(1)));
    node.handle_received(now, A, &encode(&message(2)));
    let (first, second) = (vec![Bytes::from(message(1))], vec![Bytes::from(message(2))]);
    assert_eq!(sent(&mut node), [(B, first), (B, second)]);
}

#[test]
fn copies_of_one_read_share_its_bytes_until_each_is_written_or_dropped() {
    let (mut node, now) = node_with(1, &[A, B, C]);
    node.handle_received(now, A, &encode(&message(1)));
    assert_eq!(sent(&mut node).len(), 2, "one to B, one to C");
    // Two frames in one read: kept back for B and C as one run each, bytes shared.
    let read = [encode(&message(2)), encode(&message(3))].concat();
    node.handle_received(now, A, &read);
    assert_eq!(sent(&mut node), []);
    // Each message's bytes once, and the bookkeeping of each copy of each frame.
    let total = 3 * WIRE + 6 * QUEUED_FRAME_OVERHEAD;
    assert_eq!(node.stats().queued_bytes, total);
    // B has message 2: its copy goes, the run's bytes stay for C.
    node.handle_received(now, B, &encode(&message(2)));
    assert_eq!(node.stats().queued_bytes, total - QUEUED_FRAME_OVERHEAD);
    node.handle_flushed(now, B, WIRE);
    assert_eq!(sent(&mut node), [(B, vec![Bytes::from(message(3))])]);
    // C has both: its copy of the run is done with, and B's is the last.
    node.handle_received(now, C, &[encode(&message(3)), encode(&message(2))].concat());
    assert_eq!(node.stats().copies_not_sent, 3);
    node.handle_flushed(now, C, WIRE);
    assert_eq!(sent(&mut node), []);
    node.handle_flushed(now, B, WIRE);
    assert_eq!(node.stats().queued_bytes, 0);
}

#[test]
fn what_is_kept_back_for_a_peer_that_goes_is_given_back_and_counted_lost() {
    let (mut node, now) = node_with(1, &[A, B, C]);
    for n in 1..=3 {
        node.handle_received(now, A, &encode(&message(n)));
    }
    assert_eq!(sent(&mut node).len(), 2);
    node.handle_flushed(now, C, WIRE);
    assert_eq!(sent(&mut node), [(C, vec![Bytes::from(message(2))])]);
    node.peer_disconnected(now, B);
    let stats = node.stats();
    assert_eq!(
        stats.frames_lost_on_disconnect, 3,
        "one handed over, two kept"
    );
    node.handle_flushed(now, C, WIRE);
    assert_eq!(sent(&mut node), [(C, vec![Bytes::from(message(3))])]);
    node.handle_flushed(now, C, WIRE);
    assert_eq!(node.stats().queued_bytes, 0);
}

#[test]
fn a_copy_sent_in_parts_round_a_dropped_frame_keeps_its_run_until_the_last_part() {
    const O: usize = QUEUED_FRAME_OVERHEAD;
    let total = |node: &Node| node.stats().queued_bytes;
    let (mut node, now) = node_with(1, &[A, B, C]);
    node.handle_received(now, A, &encode(&message(1)));
    let read = [
        encode(&message(2)),
        encode(&message(3)),
        encode(&message(4)),
    ]
    .concat();
    node.handle_received(now, A, &read);
    assert_eq!(
        sent(&mut node).len(),
        2,
        "message 1 to B and C; the run kept back"
    );
    assert_eq!(total(&node), 4 * WIRE + 8 * O);
    node.handle_received(now, B, &encode(&message(3)));
    assert_eq!(total(&node), 4 * WIRE + 7 * O);
    // C writes everything: its copy of the run is done with, B's still holds it.
    node.handle_flushed(now, C, WIRE);
    assert_eq!(sent(&mut node).len(), 1);
    node.handle_flushed(now, C, 3 * WIRE);
    assert_eq!(total(&node), 4 * WIRE + 3 * O);
    node.handle_flushed(now, B, WIRE);
    let parts = [
        (B, vec![Bytes::from(message(2))]),
        (B, vec![Bytes::from(message(4))]),
    ];
    assert_eq!(sent(&mut node), parts, "round message 3, which B has");
    assert_eq!(total(&node), 3 * WIRE + 2 * O);
    // The first part written: the run's last copy gives back what it wrote, no more.
    node.handle_flushed(now, B, WIRE);
    assert_eq!(total(&node), 2 * WIRE + O);
    node.handle_flushed(now, B, WIRE);
    assert_eq!(total(&node), 0);
}

#[test]
fn a_plumtree_node_keeps_back_for_its_plain_peers_too() {
    use gossip_core::plumtree::{wire, PlumtreeConfig};
    let now = Instant::now();
    let config = Config {
        plumtree: Some(PlumtreeConfig::default()),
        send_ahead_bytes: 1,
        ..Config::default()
    };
    let mut node = Node::new(config).unwrap();
    let tree = PeerId(9);
    node.plumtree_peer_connected(now, tree, Direction::Inbound, 7);
    node.peer_connected(now, B, Direction::Inbound);
    node.drain_actions().for_each(drop);
    for n in 1..=2 {
        let mut frame = wire::gossip_head(WIRE - 4, 1).unwrap().to_vec();
        frame.extend_from_slice(&message(n));
        node.handle_received(now, tree, &frame);
    }
    let to_b: Vec<_> = sent(&mut node)
        .into_iter()
        .filter(|(peer, _)| *peer == B)
        .collect();
    assert_eq!(
        to_b,
        [(B, vec![Bytes::from(message(1))])],
        "message 2 kept back"
    );
    // B, a plain peer, has message 2: its copy is not sent.
    node.handle_received(now, B, &encode(&message(2)));
    assert_eq!(node.stats().copies_not_sent, 1);
    node.handle_flushed(now, B, WIRE);
    assert_eq!(sent(&mut node), []);
}
