//! Behaviour of one node, driven by hand, at the edges of every limit.

use std::time::{Duration, Instant};

use bytes::Bytes;
use gossip_core::frame::encode;
use gossip_core::{
    Action, Config, ConfigError, Direction, DisconnectReason, FrameError, MessageId, Node,
    Overload, PeerId, PublishError, PublishOutcome, RateLimit, QUEUED_FRAME_OVERHEAD,
};

const A: PeerId = PeerId(1);
const B: PeerId = PeerId(2);
const C: PeerId = PeerId(3);
const D: PeerId = PeerId(4);

/// What a queued frame of 10 payload bytes is charged: 14 wire bytes plus bookkeeping.
const FRAME_CHARGE: usize = 14 + QUEUED_FRAME_OVERHEAD;

/// What such a frame forwarded to two peers is charged in the total: its wire bytes
/// once (the two copies share them), and each copy's bookkeeping.
const TO_TWO: usize = 14 + 2 * QUEUED_FRAME_OVERHEAD;

fn node_with(config: Config, peers: &[PeerId]) -> (Node, Instant) {
    let now = Instant::now();
    let mut node = Node::new(config).unwrap();
    for &peer in peers {
        node.peer_connected(now, peer, Direction::Inbound);
    }
    (node, now)
}

fn actions(node: &mut Node) -> Vec<Action> {
    node.drain_actions().collect()
}

fn sends(actions: &[Action]) -> Vec<PeerId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { peer, .. } => Some(*peer),
            _ => None,
        })
        .collect()
}

fn disconnects(actions: &[Action]) -> Vec<PeerId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Disconnect { peer, .. } => Some(*peer),
            _ => None,
        })
        .collect()
}

fn deliveries(actions: &[Action]) -> Vec<(Bytes, PeerId)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Deliver(d) => Some((d.payload.clone(), d.from)),
            _ => None,
        })
        .collect()
}

#[test]
fn new_message_is_delivered_once_and_forwarded_to_all_but_its_sender() {
    let (mut node, now) = node_with(Config::default(), &[A, B, C]);
    node.handle_received(now, B, &encode(b"m"));
    let out = actions(&mut node);
    assert_eq!(deliveries(&out), [(Bytes::from_static(b"m"), B)]);
    assert_eq!(sends(&out), [A, C]);

    node.handle_received(now, C, &encode(b"m"));
    assert!(actions(&mut node).is_empty());
    let stats = node.stats();
    assert_eq!((stats.messages_delivered, stats.duplicates), (1, 1));
}

#[test]
fn forwarded_frames_share_one_payload_buffer() {
    let (mut node, now) = node_with(Config::default(), &[A, B, C]);
    node.handle_received(now, A, &encode(b"shared"));
    let pointers: Vec<*const u8> = actions(&mut node)
        .iter()
        .filter_map(|a| match a {
            Action::Send { frames, .. } => frames.payloads().next().map(|p| p.as_ptr()),
            Action::Deliver(d) => Some(d.payload.as_ptr()),
            _ => None,
        })
        .collect();
    assert_eq!(pointers.len(), 3);
    assert!(pointers.windows(2).all(|w| w[0] == w[1]));
}

/// Where each Deliver's payload and each payload of each Send lies.
fn payload_pointers(actions: &[Action]) -> Vec<*const u8> {
    actions
        .iter()
        .flat_map(|a| match a {
            Action::Send { frames, .. } => frames.payloads().map(<[u8]>::as_ptr).collect(),
            Action::Deliver(d) => vec![d.payload.as_ptr()],
            _ => vec![],
        })
        .collect()
}

fn lies_in(pointer: *const u8, read: &Bytes) -> bool {
    let start = read.as_ptr() as usize;
    (start..start + read.len()).contains(&(pointer as usize))
}

#[test]
fn new_messages_stay_in_their_read_unless_they_are_a_small_part_of_it() {
    let (mut node, now) = node_with(Config::default(), &[A, B, C]);
    // A read of 100 new messages: all kept in place, no copy.
    let mut all_new = Vec::new();
    for n in 0..100u32 {
        all_new.extend(encode(&[n.to_be_bytes(); 8].concat()));
    }
    let all_new = Bytes::from(all_new);
    node.handle_received_bytes(now, A, all_new.clone());
    let out = actions(&mut node);
    assert_eq!(deliveries(&out).len(), 100);
    assert_eq!(sends(&out), [B, C], "one run of 100 frames each");
    let pointers = payload_pointers(&out);
    assert_eq!(pointers.len(), 300);
    assert!(pointers.iter().all(|&p| lies_in(p, &all_new)));

    // The same 100 again plus one new message of 6 bytes: keeping that one in place
    // would keep 3.6 KB alive for 6 bytes, so it is copied, once for all its actions.
    let mut mostly_old = all_new.to_vec();
    mostly_old.extend(encode(b"fresh!"));
    let mostly_old = Bytes::from(mostly_old);
    node.handle_received_bytes(now, B, mostly_old.clone());
    let out = actions(&mut node);
    assert_eq!(deliveries(&out), [(Bytes::from_static(b"fresh!"), B)]);
    assert_eq!(sends(&out), [A, C]);
    let pointers = payload_pointers(&out);
    assert!(pointers.iter().all(|&p| !lies_in(p, &mostly_old)));
    assert!(pointers.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(node.stats().payloads_copied, 1);

    // The edge: new bytes at exactly a quarter of the read stay in place, one byte less
    // is copied. A known 31-byte message (35 on the wire) and a new one of 13 (17): 52
    // bytes, 13 of them new.
    node.handle_received(now, A, &encode(&[9; 31]));
    actions(&mut node);
    for (new, copied) in [(&[1u8; 13][..], false), (&[2u8; 12][..], true)] {
        let mut read = encode(&[9; 31]);
        read.extend(encode(new));
        let read = Bytes::from(read);
        let copies_before = node.stats().payloads_copied;
        node.handle_received_bytes(now, B, read.clone());
        let out = actions(&mut node);
        assert_eq!(deliveries(&out).len(), 1);
        let in_place = payload_pointers(&out).iter().all(|&p| lies_in(p, &read));
        assert_eq!(
            in_place,
            !copied,
            "{} new bytes in {}",
            new.len(),
            read.len()
        );
        assert_eq!(
            node.stats().payloads_copied - copies_before,
            u64::from(copied)
        );
    }
}

#[test]
fn publisher_gets_no_delivery_and_every_peer_gets_the_frame() {
    let (mut node, now) = node_with(Config::default(), &[A, B]);
    let outcome = node.publish(now, &b"mine"[..]).unwrap();
    assert_eq!(
        outcome,
        PublishOutcome::Sent {
            id: MessageId::of(b"mine"),
            peers: 2
        }
    );
    let out = actions(&mut node);
    assert!(deliveries(&out).is_empty());
    assert_eq!(sends(&out), [A, B]);
    // Echoed back by a peer, it is a duplicate, not a delivery.
    node.handle_received(now, A, &encode(b"mine"));
    assert!(actions(&mut node).is_empty());
}

#[test]
fn publishing_the_same_bytes_again_is_a_no_op() {
    let (mut node, now) = node_with(Config::default(), &[A]);
    node.publish(now, &b"x"[..]).unwrap();
    actions(&mut node);
    let again = node.publish(now, &b"x"[..]).unwrap();
    assert_eq!(
        again,
        PublishOutcome::AlreadySeen {
            id: MessageId::of(b"x")
        }
    );
    assert!(actions(&mut node).is_empty());
}

#[test]
fn oversized_publish_is_refused_and_not_marked_seen() {
    let config = Config {
        max_frame_len: 8,
        ..Config::default()
    };
    let (mut node, now) = node_with(config, &[A]);
    assert!(node.publish(now, vec![0u8; 8]).is_ok());
    let big = vec![1u8; 9];
    assert_eq!(
        node.publish(now, big.clone()),
        Err(PublishError::TooLarge { len: 9, max: 8 })
    );
    assert!(!node.has_seen(&big));
    assert_eq!(node.stats().messages_published, 1);
}

/// A node that speaks only flood remembers payloads by a keyed fingerprint, so it can
/// say whether it has seen a payload but not an id; one that speaks plumtree can say both.
#[test]
fn a_node_tells_payloads_it_has_seen_and_ids_only_if_it_speaks_plumtree() {
    let plumtree = Config {
        plumtree: Some(gossip_core::plumtree::PlumtreeConfig::default()),
        ..Config::default()
    };
    for (config, by_id) in [(Config::default(), false), (plumtree, true)] {
        let (mut node, now) = node_with(config, &[A, B]);
        node.handle_received_bytes(now, A, Bytes::from(encode(b"m")));
        node.handle_received_bytes(now, B, Bytes::from(encode(b"m")));
        assert_eq!(node.stats().messages_delivered, 1);
        assert_eq!(node.stats().duplicates, 1, "the second copy is known");
        assert!(node.has_seen(b"m") && !node.has_seen(b"n"));
        let known = |payload: &[u8]| node.has_seen_id(&MessageId::of(payload));
        match by_id {
            true => assert_eq!((known(b"m"), known(b"n")), (Some(true), Some(false))),
            false => assert_eq!((known(b"m"), known(b"n")), (None, None)),
        }
    }
}

#[test]
fn zero_length_frames_are_messages_with_an_empty_payload() {
    let (mut node, now) = node_with(Config::default(), &[A, B]);
    node.handle_received(now, A, &[0, 0, 0, 0, 0, 0, 0, 0]);
    let out = actions(&mut node);
    assert_eq!(deliveries(&out), [(Bytes::new(), A)]);
    assert_eq!(sends(&out), [B]);
    assert_eq!(node.stats().duplicates, 1);
}

#[test]
fn frame_at_the_limit_passes_and_one_byte_more_disconnects_only_that_peer() {
    let config = Config {
        max_frame_len: 16,
        ..Config::default()
    };
    let (mut node, now) = node_with(config, &[A, B]);
    node.handle_received(now, A, &encode(&[7; 16]));
    assert_eq!(deliveries(&actions(&mut node)).len(), 1);

    let mut wire = encode(&[8; 17]);
    wire.extend(encode(b"after the bad frame"));
    node.handle_received(now, A, &wire);
    assert_eq!(
        actions(&mut node),
        [Action::Disconnect {
            peer: A,
            reason: DisconnectReason::Protocol(FrameError::TooLarge { len: 17, max: 16 })
        }]
    );
    assert!(!node.is_connected(A));
    assert_eq!(node.stats().protocol_errors, 1);

    node.handle_received(now, B, &encode(b"still fine"));
    assert_eq!(deliveries(&actions(&mut node)).len(), 1);
}

#[test]
fn four_gigabyte_length_prefix_is_dropped_before_any_payload() {
    let (mut node, now) = node_with(Config::default(), &[A, B]);
    node.handle_received(now, A, &4_000_000_000u32.to_be_bytes());
    assert!(matches!(
        actions(&mut node)[..],
        [Action::Disconnect {
            peer: A,
            reason: DisconnectReason::Protocol(FrameError::TooLarge { .. })
        }]
    ));
}

#[test]
fn outbound_limit_is_exact_and_inbound_peers_do_not_count_against_it() {
    let config = Config {
        max_outbound_peers: 2,
        max_inbound_peers: 1,
        ..Config::default()
    };
    let now = Instant::now();
    let mut node = Node::new(config).unwrap();
    node.peer_connected(now, PeerId(10), Direction::Inbound);
    node.peer_connected(now, A, Direction::Outbound);
    node.peer_connected(now, B, Direction::Outbound);
    assert!(actions(&mut node).is_empty());
    node.peer_connected(now, C, Direction::Outbound);
    assert_eq!(
        actions(&mut node),
        [Action::Disconnect {
            peer: C,
            reason: DisconnectReason::TooManyPeers {
                direction: Direction::Outbound,
                limit: 2
            }
        }]
    );
    assert!(!node.is_connected(C));
    assert_eq!(node.stats().peers_refused, 1);
    node.peer_disconnected(now, A);
    node.peer_connected(now, C, Direction::Outbound);
    assert!(actions(&mut node).is_empty());
    assert!(node.is_connected(C));
    assert_eq!(node.peer_stats(C).unwrap().direction, Direction::Outbound);
}

#[test]
fn slow_peer_is_shed_at_its_budget_then_disconnected_after_the_timeout() {
    // Frames of 10 payload bytes are 14 wire bytes, charged 14 + 64; the budget holds
    // exactly two.
    let timeout = Duration::from_secs(5);
    let config = Config {
        max_frame_len: 10,
        peer_queue_bytes: 2 * FRAME_CHARGE,
        slow_peer_timeout: timeout,
        overload: Overload::Shed,
        ..Config::default()
    };
    let (mut node, t0) = node_with(config, &[A, B]);
    for n in 0..3u8 {
        node.handle_received(t0, A, &encode(&[n; 10]));
    }
    assert_eq!(sends(&actions(&mut node)), [B, B]);
    assert_eq!(node.stats().frames_shed, 1);
    assert_eq!(node.stats().queued_bytes, 2 * FRAME_CHARGE);
    assert_eq!(node.poll_timeout(), Some(t0 + timeout));

    node.handle_timeout(t0 + timeout - Duration::from_millis(1));
    assert!(actions(&mut node).is_empty());
    node.handle_timeout(t0 + timeout);
    assert_eq!(
        actions(&mut node),
        [Action::Disconnect {
            peer: B,
            reason: DisconnectReason::SlowPeer {
                queued_bytes: 2 * FRAME_CHARGE
            }
        }]
    );
    assert_eq!(node.stats().slow_peer_disconnects, 1);
    assert_eq!(node.stats().queued_bytes, 0);
}

#[test]
fn draining_to_half_the_budget_clears_the_overload() {
    let config = Config {
        max_frame_len: 10,
        peer_queue_bytes: 2 * FRAME_CHARGE,
        overload: Overload::Shed,
        ..Config::default()
    };
    let (mut node, t0) = node_with(config, &[A, B]);
    for n in 0..3u8 {
        node.handle_received(t0, A, &encode(&[n; 10]));
    }
    actions(&mut node);
    node.handle_flushed(t0, B, 13);
    assert!(
        node.poll_timeout().is_some(),
        "one byte and one frame's overhead past half"
    );
    assert_eq!(node.stats().queued_bytes, 2 * FRAME_CHARGE - 13);
    // The last byte of the first frame releases its overhead too.
    node.handle_flushed(t0, B, 1);
    assert_eq!(node.stats().queued_bytes, FRAME_CHARGE);
    assert_eq!(node.poll_timeout(), None);
    // Flushing more than was queued is clamped, not an underflow.
    node.handle_flushed(t0, B, 1000);
    assert_eq!(node.stats().queued_bytes, 0);
    assert_eq!(node.stats().bytes_flushed, 28);
}

/// Actions with their payloads spelled out: Sends list the payloads they carry.
#[derive(Debug, PartialEq)]
enum Out {
    Deliver(Bytes, PeerId),
    Send(PeerId, Vec<Bytes>),
    Disconnect(PeerId, DisconnectReason),
    Reading(PeerId, bool),
}

fn spelled_out(actions: Vec<Action>) -> Vec<Out> {
    actions
        .into_iter()
        .map(|action| match action {
            Action::Deliver(d) => Out::Deliver(d.payload, d.from),
            Action::Send { peer, frames } => Out::Send(
                peer,
                frames.payloads().map(Bytes::copy_from_slice).collect(),
            ),
            Action::Disconnect { peer, reason } => Out::Disconnect(peer, reason),
            Action::PauseReading { peer } => Out::Reading(peer, false),
            Action::ResumeReading { peer } => Out::Reading(peer, true),
        })
        .collect()
}

#[test]
fn a_long_read_is_handled_frame_by_frame_in_order() {
    // 300 frames in one read (several internal batches): 200 new messages with a
    // duplicate among them after every second one, then an oversized length. The
    // duplicates split the new frames into runs of two.
    let (mut node, now) = node_with(Config::default(), &[A, B]);
    let mut read = Vec::new();
    let mut expected = Vec::new();
    let payload = |n: u32| Bytes::copy_from_slice(&n.to_be_bytes());
    for n in 0..200u32 {
        read.extend(encode(&n.to_be_bytes()));
        expected.push(Out::Deliver(payload(n), A));
        if n % 2 == 1 {
            expected.push(Out::Send(B, vec![payload(n - 1), payload(n)]));
            read.extend(encode(&(n / 2).to_be_bytes()));
        }
    }
    read.extend(u32::MAX.to_be_bytes());
    read.extend(encode(b"after the error"));
    node.handle_received(now, A, &read);
    let mut out = spelled_out(actions(&mut node));
    assert!(
        matches!(
            out.pop(),
            Some(Out::Disconnect(
                A,
                DisconnectReason::Protocol(FrameError::TooLarge { .. })
            ))
        ),
        "the last action is the disconnect"
    );
    assert_eq!(out, expected);
    let stats = node.stats();
    assert_eq!((stats.frames_in, stats.duplicates), (300, 100));
    assert_eq!((stats.frames_out, stats.messages_delivered), (200, 200));
}

#[test]
fn a_run_is_split_around_a_frame_shed_for_one_peer_only() {
    // B's queue already holds one 10-byte frame; C's was flushed. B has room for 147
    // more bytes of charge: the next 10-byte frame (78), not a second (78), but then a
    // 1-byte one (69) fits again, exactly as if the frames came one by one.
    let config = Config {
        max_frame_len: 10,
        peer_queue_bytes: 2 * FRAME_CHARGE + 69,
        overload: Overload::Shed,
        ..Config::default()
    };
    let (mut node, t0) = node_with(config, &[A, B, C]);
    node.publish(t0, vec![0; 10]).unwrap();
    actions(&mut node);
    node.handle_flushed(t0, A, 14);
    node.handle_flushed(t0, C, 14);
    let mut read = encode(&[1; 10]);
    read.extend(encode(&[2; 10]));
    read.extend(encode(&[3]));
    node.handle_received(t0, A, &read);
    let payload = |byte: u8, len: usize| Bytes::from(vec![byte; len]);
    let out = spelled_out(actions(&mut node));
    assert_eq!(
        out[3..],
        [
            Out::Send(B, vec![payload(1, 10)]),
            Out::Send(B, vec![payload(3, 1)]),
            Out::Send(C, vec![payload(1, 10), payload(2, 10), payload(3, 1)]),
        ]
    );
    assert_eq!(node.stats().frames_shed, 1);
    assert_eq!(
        node.poll_timeout(),
        Some(t0 + Config::default().slow_peer_timeout)
    );
    // B holds its old frame and two new ones; C one run of three.
    assert_eq!(node.stats().queued_bytes, (2 * FRAME_CHARGE + 69) * 2);
}

#[test]
fn a_run_releases_each_frame_overhead_when_it_is_written_whole() {
    let (mut node, t0) = node_with(Config::default(), &[A, B]);
    let mut read = encode(&[1; 10]);
    read.extend(encode(&[2; 10]));
    node.handle_received(t0, A, &read);
    assert_eq!(sends(&actions(&mut node)), [B]);
    assert_eq!(node.stats().queued_bytes, 2 * FRAME_CHARGE);
    // 27 of the run's 28 bytes: its overheads are held until the last byte is out.
    node.handle_flushed(t0, B, 27);
    assert_eq!(node.stats().queued_bytes, 2 * FRAME_CHARGE - 27);
    node.handle_flushed(t0, B, 1);
    assert_eq!(node.stats().queued_bytes, 0);
}

#[test]
fn frames_that_are_not_back_to_back_in_the_read_go_on_their_own() {
    let (mut node, t0) = node_with(Config::default(), &[A, B]);
    // "xx" starts in one read and ends in the next, which also brings "y", an empty
    // payload and "z".
    let mut wire = encode(b"xx");
    wire.extend(encode(b"y"));
    wire.extend(encode(b""));
    wire.extend(encode(b"z"));
    node.handle_received(t0, A, &wire[..3]);
    node.handle_received(t0, A, &wire[3..]);
    let text = |t: &'static [u8]| Bytes::from_static(t);
    assert_eq!(
        spelled_out(actions(&mut node)),
        [
            Out::Deliver(text(b"xx"), A),
            Out::Send(B, vec![text(b"xx")]),
            Out::Deliver(text(b"y"), A),
            Out::Send(B, vec![text(b"y")]),
            Out::Deliver(text(b""), A),
            Out::Send(B, vec![text(b"")]),
            Out::Deliver(text(b"z"), A),
            Out::Send(B, vec![text(b"z")]),
        ]
    );
}

#[test]
fn copied_messages_keep_their_runs_in_one_copy() {
    let (mut node, t0) = node_with(Config::default(), &[A, B]);
    let old: Vec<u8> = (0..20u8).flat_map(|n| encode(&[n; 40])).collect();
    node.handle_received(t0, A, &old);
    actions(&mut node);
    // Mostly old frames, with two new ones back to back and one more further on.
    let mut read = encode(b"new one");
    read.extend(encode(b"new two"));
    read.extend(&old);
    read.extend(encode(b"new three"));
    let read = Bytes::from(read);
    node.handle_received_bytes(t0, A, read.clone());
    let out = actions(&mut node);
    let text = |t: &'static [u8]| Bytes::from_static(t);
    assert_eq!(
        spelled_out(out.clone()),
        [
            Out::Deliver(text(b"new one"), A),
            Out::Deliver(text(b"new two"), A),
            Out::Send(B, vec![text(b"new one"), text(b"new two")]),
            Out::Deliver(text(b"new three"), A),
            Out::Send(B, vec![text(b"new three")]),
        ]
    );
    assert_eq!(node.stats().payloads_copied, 3);
    // One copy of the three frames, end to end, shared by the Delivers and the Sends.
    let pointers = payload_pointers(&out);
    assert!(pointers.iter().all(|&p| !lies_in(p, &read)));
    let at = |i: usize| pointers[i] as usize;
    assert_eq!((at(2), at(3), at(4)), (at(0), at(1), at(5)));
    assert_eq!((at(1) - at(0), at(5) - at(1)), (11, 11));
}

#[test]
fn tiny_frames_are_charged_their_bookkeeping_not_only_their_wire_bytes() {
    // One-byte payloads are 5 wire bytes; counted alone, 690 bytes would queue 138.
    let config = Config {
        max_frame_len: 1,
        peer_queue_bytes: 10 * (5 + QUEUED_FRAME_OVERHEAD),
        overload: Overload::Shed,
        ..Config::default()
    };
    let (mut node, t0) = node_with(config, &[B]);
    for n in 0..20u8 {
        node.publish(t0, vec![n]).unwrap();
    }
    assert_eq!(sends(&actions(&mut node)).len(), 10);
    assert_eq!(node.stats().frames_shed, 10);
    // Flushing them all releases the whole charge; then one more fits.
    node.handle_flushed(t0, B, 10 * 5);
    assert_eq!(node.stats().queued_bytes, 0);
    assert_eq!(node.stats().bytes_flushed, 50);
    node.publish(t0, vec![20]).unwrap();
    assert_eq!(sends(&actions(&mut node)), [B]);
}

#[test]
fn total_queue_budget_sheds_without_blaming_fast_peers() {
    let config = Config {
        max_frame_len: 10,
        peer_queue_bytes: 2 * FRAME_CHARGE,
        total_queue_bytes: 3 * FRAME_CHARGE,
        overload: Overload::Shed,
        ..Config::default()
    };
    let (mut node, t0) = node_with(config, &[A, B, C]);
    for n in 0..2u8 {
        node.handle_received(t0, A, &encode(&[n; 10]));
    }
    // Four frames wanted, three fit the total.
    assert_eq!(sends(&actions(&mut node)), [B, C, B]);
    assert_eq!(node.stats().frames_shed, 1);
    assert_eq!(node.poll_timeout(), None);
}

#[test]
fn a_copy_arriving_after_the_retention_is_a_new_message() {
    let retention = Duration::from_secs(60);
    let config = Config {
        seen_retention: retention,
        ..Config::default()
    };
    let (mut node, t0) = node_with(config, &[A]);
    node.handle_received(t0, A, &encode(b"old"));
    node.handle_received(t0 + retention - Duration::from_nanos(1), A, &encode(b"old"));
    node.handle_received(t0 + retention, A, &encode(b"old"));
    assert_eq!(node.stats().messages_delivered, 2);
}

#[test]
fn time_going_backwards_does_not_panic() {
    let (mut node, t0) = node_with(Config::default(), &[A, B]);
    node.handle_received(t0 + Duration::from_secs(100), A, &encode(b"a"));
    node.handle_received(t0, A, &encode(b"b"));
    node.handle_timeout(t0);
    assert_eq!(node.stats().messages_delivered, 2);
}

#[test]
fn events_for_unknown_peers_are_ignored() {
    let (mut node, now) = node_with(Config::default(), &[]);
    node.handle_received(now, A, &encode(b"x"));
    node.handle_flushed(now, A, 10);
    node.peer_disconnected(now, A);
    assert!(actions(&mut node).is_empty());
    assert_eq!(node.stats().bytes_in, 0);
}

#[test]
fn inconsistent_configs_are_rejected() {
    let too_big = Config {
        max_frame_len: u32::MAX as usize + 1,
        ..Config::default()
    };
    assert!(matches!(
        Node::new(too_big),
        Err(ConfigError::FrameLenTooLarge(_))
    ));
    let tiny_seen = Config {
        seen_budget_bytes: 10,
        ..Config::default()
    };
    assert!(matches!(
        Node::new(tiny_seen),
        Err(ConfigError::SeenBudgetTooSmall(10))
    ));
    for (zero, name) in [
        (
            Config {
                max_frame_len: 0,
                ..Config::default()
            },
            "max_frame_len",
        ),
        (
            Config {
                max_outbound_peers: 0,
                max_inbound_peers: 0,
                ..Config::default()
            },
            "max_outbound_peers + max_inbound_peers",
        ),
        (
            Config {
                frame_timeout: Duration::ZERO,
                ..Config::default()
            },
            "frame_timeout",
        ),
        (
            Config {
                peer_rate_limit: Some(RateLimit {
                    bytes_per_second: 0,
                    messages_per_second: 1,
                }),
                ..Config::default()
            },
            "peer_rate_limit.bytes_per_second",
        ),
        (
            Config {
                peer_rate_limit: Some(RateLimit {
                    bytes_per_second: 1,
                    messages_per_second: 0,
                }),
                ..Config::default()
            },
            "peer_rate_limit.messages_per_second",
        ),
        (
            Config {
                slow_peer_timeout: Duration::ZERO,
                ..Config::default()
            },
            "slow_peer_timeout",
        ),
    ] {
        assert_eq!(Node::new(zero).unwrap_err(), ConfigError::Zero(name));
    }
    let one = Config {
        max_frame_len: 1,
        max_outbound_peers: 0,
        max_inbound_peers: 1,
        partial_frame_budget_bytes: 5,
        slow_peer_timeout: Duration::from_nanos(1),
        frame_timeout: Duration::from_nanos(1),
        ..Config::default()
    };
    assert!(one.validate().is_ok(), "one is enough");
    let tiny_partial = Config {
        max_frame_len: 100,
        partial_frame_budget_bytes: 103,
        ..Config::default()
    };
    assert_eq!(
        Node::new(tiny_partial).unwrap_err(),
        ConfigError::PartialBudgetSmallerThanFrame {
            budget: 103,
            frame: 104
        }
    );
    let tiny_queue = Config {
        max_frame_len: 100,
        peer_queue_bytes: 104 + QUEUED_FRAME_OVERHEAD - 1,
        ..Config::default()
    };
    assert_eq!(
        Node::new(tiny_queue).unwrap_err(),
        ConfigError::QueueSmallerThanFrame {
            budget: 104 + QUEUED_FRAME_OVERHEAD - 1,
            frame: 104 + QUEUED_FRAME_OVERHEAD
        }
    );
}

#[test]
fn time_going_backwards_panics_nothing_and_deadlines_follow_the_times_given() {
    let timeout = Duration::from_secs(5);
    let config = Config {
        max_frame_len: 10,
        peer_queue_bytes: 2 * FRAME_CHARGE,
        slow_peer_timeout: timeout,
        seen_retention: Duration::from_secs(1),
        overload: Overload::Shed,
        ..Config::default()
    };
    let (mut node, t0) = node_with(config, &[A, B]);
    let late = t0 + Duration::from_secs(60);
    for n in 0..3u8 {
        node.handle_received(late, A, &encode(&[n; 10]));
    }
    // The clock steps back a minute: every call still works.
    node.handle_timeout(t0);
    node.handle_flushed(t0, B, 1);
    node.handle_received(t0, A, &encode(&[0; 10]));
    assert!(node.publish(t0, &b"new"[..]).is_ok());
    assert_eq!(
        node.stats().duplicates,
        1,
        "ids seen 'later' are still remembered"
    );
    // B overflowed at `late`; its deadline is counted from then.
    assert_eq!(node.poll_timeout(), Some(late + timeout));
    node.handle_timeout(late + timeout);
    assert!(actions(&mut node)
        .iter()
        .any(|a| matches!(a, Action::Disconnect { peer: B, .. })));
}

/// Two frames of 10 payload bytes fill a peer's queue exactly; no stall escape unless a
/// test asks for one.
fn pausing(timeout: Duration) -> Config {
    Config {
        max_frame_len: 10,
        peer_queue_bytes: 2 * FRAME_CHARGE,
        slow_peer_timeout: timeout,
        stall_escape: Duration::from_secs(3600),
        ..Config::default()
    }
}

fn reading_changes(actions: &[Action]) -> Vec<(PeerId, bool)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::PauseReading { peer } => Some((*peer, false)),
            Action::ResumeReading { peer } => Some((*peer, true)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_full_node_holds_new_messages_takes_duplicates_and_loses_nothing() {
    let (mut node, t0) = node_with(pausing(Duration::from_secs(5)), &[A, B, C]);
    assert!(node.can_publish());
    // A's two messages fill B's and C's queues.
    node.handle_received(t0, A, &encode(&[1; 10]));
    node.handle_received(t0, A, &encode(&[2; 10]));
    assert_eq!(sends(&actions(&mut node)), [B, C, B, C]);
    assert!(node.stats().congested && !node.can_publish());
    // A's next new message is held, and A is no longer read; nothing is shed.
    node.handle_received(t0, A, &encode(&[3; 10]));
    assert_eq!(actions(&mut node), [Action::PauseReading { peer: A }]);
    assert_eq!(node.stats().frames_shed, 0);
    // B's duplicate costs nothing: dropped, B is still read. Its new message is held.
    node.handle_received(t0, B, &encode(&[2; 10]));
    assert!(actions(&mut node).is_empty());
    assert_eq!(node.stats().duplicates, 1);
    node.handle_received(t0, B, &encode(&[4; 10]));
    assert_eq!(actions(&mut node), [Action::PauseReading { peer: B }]);
    // Local publishing waits too: refused, not marked seen.
    assert_eq!(node.publish(t0, &b"mine"[..]), Err(PublishError::Congested));
    assert_eq!(node.stats().publishes_refused, 1);
    // C drains to half its budget: only B is full, so B's message (which goes to A and
    // C) is taken.
    node.handle_flushed(t0, C, 14);
    let out = actions(&mut node);
    assert_eq!(reading_changes(&out), [(B, true)]);
    assert_eq!(deliveries(&out), [(Bytes::from(vec![4; 10]), B)]);
    assert_eq!(sends(&out), [A, C]);
    // B drains, and C (which took [4] too): A's held message is taken, everything flows
    // again.
    node.handle_flushed(t0, B, 2 * 14);
    node.handle_flushed(t0, C, 2 * 14);
    let out = actions(&mut node);
    assert_eq!(reading_changes(&out), [(A, true)]);
    assert_eq!(deliveries(&out), [(Bytes::from(vec![3; 10]), A)]);
    assert!(node.can_publish());
    assert!(node.publish(t0, &b"mine"[..]).is_ok());
    assert_eq!(node.stats().congestion_episodes, 1);
    assert_eq!(node.stats().messages_delivered, 4);
}

/// Budgets of two and a half frames: a queue with two frames is under its budget, and
/// a third would pass it.
fn two_and_a_half(budget: usize) -> usize {
    2 * budget + budget / 2
}

#[test]
fn one_read_fills_queues_up_to_their_budget_and_not_a_byte_past_it() {
    let config = Config {
        peer_queue_bytes: two_and_a_half(FRAME_CHARGE),
        ..pausing(Duration::from_secs(5))
    };
    let (mut node, t0) = node_with(config, &[A, B, C]);
    let mut read = Vec::new();
    for n in 1..=5 {
        read.extend(encode(&[n; 10]));
    }
    node.handle_received(t0, A, &read);
    // Two frames each for B and C; the third would pass their budgets: held, A paused.
    let out = actions(&mut node);
    assert_eq!(deliveries(&out).len(), 2);
    assert_eq!(sends(&out), [B, C]);
    assert_eq!(reading_changes(&out), [(A, false)]);
    for peer in [B, C] {
        assert_eq!(
            node.peer_stats(peer).unwrap().queued_bytes,
            2 * FRAME_CHARGE
        );
    }
    assert!(node.stats().congested && !node.can_publish());
    // B drains; C has no room yet: still held, and A is not resumed meanwhile.
    node.handle_flushed(t0, B, 2 * 14);
    assert!(actions(&mut node).is_empty());
    // C drains too: two more messages go, the last is held, A stays paused.
    node.handle_flushed(t0, C, 2 * 14);
    let out = actions(&mut node);
    let (three, four) = (Bytes::from(vec![3; 10]), Bytes::from(vec![4; 10]));
    assert_eq!(deliveries(&out), [(three, A), (four, A)]);
    assert_eq!(reading_changes(&out), []);
    for peer in [B, C] {
        assert_eq!(
            node.peer_stats(peer).unwrap().queued_bytes,
            2 * FRAME_CHARGE
        );
    }
    // They drain again: the last goes, and A is read again.
    node.handle_flushed(t0, B, 1 << 20);
    node.handle_flushed(t0, C, 1 << 20);
    let out = actions(&mut node);
    assert_eq!(deliveries(&out).len(), 1);
    assert_eq!(reading_changes(&out), [(A, true)]);
    assert_eq!(node.stats().messages_delivered, 5);
    assert_eq!(node.stats().frames_shed, 0);
}

#[test]
fn the_total_and_the_delivery_queue_are_never_passed_either() {
    // The total: each message goes to B and C; a third would pass it by a byte.
    let config = Config {
        peer_queue_bytes: 100 * FRAME_CHARGE,
        total_queue_bytes: 3 * TO_TWO - 1,
        ..pausing(Duration::from_secs(5))
    };
    let (mut node, t0) = node_with(config, &[A, B, C]);
    for n in 1..=3 {
        node.handle_received(t0, A, &encode(&[n; 10]));
    }
    assert_eq!(reading_changes(&actions(&mut node)), [(A, false)]);
    assert_eq!(node.stats().queued_bytes, 2 * TO_TWO);
    // The application: room for two and a half deliveries.
    let delivery = 10 + QUEUED_FRAME_OVERHEAD;
    let config = Config {
        delivery_queue_bytes: two_and_a_half(delivery),
        ..pausing(Duration::from_secs(5))
    };
    let (mut node, t0) = node_with(config, &[A, B]);
    for n in 1..=3 {
        node.handle_received(t0, A, &encode(&[n; 10]));
        node.handle_flushed(t0, B, 1 << 20);
    }
    let out = actions(&mut node);
    assert_eq!(deliveries(&out).len(), 2);
    assert_eq!(reading_changes(&out), [(A, false)]);
    assert_eq!(node.stats().delivery_queued_bytes, 2 * delivery);
    node.handle_delivered(t0, 1, 10);
    assert_eq!(deliveries(&actions(&mut node)).len(), 1);
}

#[test]
fn a_publish_that_would_pass_a_budget_is_refused_and_waits_for_the_drain() {
    let config = Config {
        peer_queue_bytes: two_and_a_half(FRAME_CHARGE),
        ..pausing(Duration::from_secs(5))
    };
    let (mut node, t0) = node_with(config, &[A]);
    for n in 1..=2 {
        assert!(node.publish(t0, vec![n; 10]).is_ok());
    }
    // Not full yet (two frames are under the budget), but a third does not fit.
    assert!(node.can_publish());
    assert_eq!(node.publish(t0, vec![3; 10]), Err(PublishError::Congested));
    assert_eq!(node.peer_stats(A).unwrap().queued_bytes, 2 * FRAME_CHARGE);
    // Refused once, then the node says so until A has drained to half.
    assert!(!node.can_publish());
    assert_eq!(node.stats().publishes_refused, 1);
    node.handle_flushed(t0, A, 14);
    assert!(node.can_publish());
    assert!(node.publish(t0, vec![3; 10]).is_ok());
}

#[test]
fn the_one_full_peer_is_still_read_so_two_nodes_never_wait_on_each_other() {
    let (mut node, t0) = node_with(pausing(Duration::from_secs(5)), &[A, B]);
    node.handle_received(t0, A, &encode(&[1; 10]));
    node.handle_received(t0, A, &encode(&[2; 10]));
    node.handle_received(t0, A, &encode(&[3; 10]));
    // B is full: A's next message (for B) is held, while B itself is read on.
    assert_eq!(reading_changes(&actions(&mut node)), [(A, false)]);
    assert!(node.is_reading(B) && !node.is_reading(A));
    // What B sends goes to A, whose queue has room.
    node.handle_received(t0, B, &encode(&[9; 10]));
    assert_eq!(sends(&actions(&mut node)), [A]);
}

#[test]
fn a_message_held_is_dropped_if_a_copy_came_another_way_meanwhile() {
    let (mut node, t0) = node_with(pausing(Duration::from_secs(5)), &[A, B, C]);
    node.handle_received(t0, A, &encode(&[1; 10]));
    node.handle_received(t0, A, &encode(&[2; 10]));
    // B and C are full: C's [8] and A's copy of it are both held.
    node.handle_received(t0, C, &encode(&[8; 10]));
    node.handle_received(t0, A, &encode(&[8; 10]));
    assert_eq!(
        reading_changes(&actions(&mut node)),
        [(C, false), (A, false)]
    );
    // B drains: C is the only full peer, so C's [8] (for A and B) is taken.
    node.handle_flushed(t0, B, 2 * 14);
    let out = actions(&mut node);
    assert_eq!(deliveries(&out), [(Bytes::from(vec![8; 10]), C)]);
    assert_eq!(sends(&out), [A, B]);
    // C drains too: A's held copy is a duplicate now, dropped, and A is read again.
    node.handle_flushed(t0, C, 2 * 14);
    let out = actions(&mut node);
    assert_eq!(reading_changes(&out), [(A, true)]);
    assert!(deliveries(&out).is_empty());
    assert_eq!(node.stats().messages_delivered, 3);
    assert_eq!(node.stats().duplicates, 1);
}

#[test]
fn a_peer_connecting_while_the_node_is_full_is_read_until_it_sends_something_new() {
    let (mut node, t0) = node_with(pausing(Duration::from_secs(5)), &[A, B, C]);
    for n in 0..2 {
        node.handle_received(t0, A, &encode(&[n; 10]));
    }
    actions(&mut node);
    let d = PeerId(4);
    node.peer_connected(t0, d, Direction::Inbound);
    node.handle_received(t0, d, &encode(&[1; 10]));
    assert!(actions(&mut node).is_empty() && node.is_reading(d));
    node.handle_received(t0, d, &encode(&[5; 10]));
    assert_eq!(actions(&mut node), [Action::PauseReading { peer: d }]);
}

#[test]
fn a_full_peer_is_cut_only_after_taking_nothing_for_the_timeout() {
    let timeout = Duration::from_secs(5);
    let (mut node, t0) = node_with(pausing(timeout), &[A, B]);
    for n in 1..=3 {
        node.handle_received(t0, A, &encode(&[n; 10]));
    }
    actions(&mut node);
    assert_eq!(node.poll_timeout(), Some(t0 + timeout));
    // B takes one byte just before its deadline: the clock starts over from then.
    let t1 = t0 + timeout - Duration::from_millis(1);
    node.handle_flushed(t1, B, 1);
    node.handle_timeout(t0 + timeout);
    assert!(actions(&mut node).is_empty());
    assert_eq!(node.poll_timeout(), Some(t1 + timeout));
    // Then nothing: cut at the deadline, the frames it had are counted as lost for it.
    node.handle_timeout(t1 + timeout);
    let out = actions(&mut node);
    assert!(matches!(
        out[0],
        Action::Disconnect {
            peer: B,
            reason: DisconnectReason::SlowPeer { .. }
        }
    ));
    // A's message, held for B's sake, is taken and A read again.
    assert_eq!(reading_changes(&out), [(A, true)]);
    assert_eq!(node.stats().messages_delivered, 3);
    assert_eq!(node.stats().frames_lost_on_disconnect, 2);
    assert_eq!(node.poll_timeout(), None);
}

#[test]
fn a_full_total_holds_every_peer_with_bytes_to_the_slow_peer_rule() {
    // Five messages to B and C fill the total; no single peer's queue is full.
    let timeout = Duration::from_secs(5);
    let config = Config {
        peer_queue_bytes: 100 * FRAME_CHARGE,
        total_queue_bytes: 5 * TO_TWO,
        ..pausing(timeout)
    };
    let (mut node, t0) = node_with(config, &[A, B, C]);
    for n in 0..5 {
        node.handle_received(t0, A, &encode(&[n; 10]));
    }
    actions(&mut node);
    assert!(node.stats().congested);
    // B keeps taking bytes, C takes none: only C is cut.
    let t1 = t0 + timeout / 2;
    node.handle_flushed(t1, B, 14);
    node.handle_timeout(t0 + timeout);
    let out = actions(&mut node);
    assert!(
        matches!(out[0], Action::Disconnect { peer: C, .. }),
        "{out:?}"
    );
    assert!(node.is_connected(B));
}

#[test]
fn peers_that_stopped_reading_together_are_cut_together() {
    // B and C take nothing: A's third message fits neither queue (two and a half
    // frames: not full at its budget after two) and is held. The node waits on B
    // alone (the first it does not fit), and C, which took nothing all that time
    // either, is cut with it one slow-peer timeout later, not a timeout after.
    let timeout = Duration::from_secs(5);
    let config = Config {
        peer_queue_bytes: 5 * FRAME_CHARGE / 2,
        ..pausing(timeout)
    };
    let (mut node, t0) = node_with(config.clone(), &[A, B, C]);
    for n in 0..3 {
        node.handle_received(t0, A, &encode(&[n; 10]));
    }
    actions(&mut node);
    assert_eq!(node.poll_timeout(), Some(t0 + timeout));
    node.handle_timeout(t0 + timeout);
    let cut = disconnects(&actions(&mut node));
    assert_eq!(cut, [B, C]);
    assert_eq!(node.stats().slow_peer_disconnects, 2);
    // A's held message went to nobody but was taken: A is read again.
    assert!(node.is_reading(A));
    // The same for a message published here.
    let (mut node, t0) = node_with(config, &[B, C]);
    node.publish(t0, &[1; 10][..]).unwrap();
    node.publish(t0, &[2; 10][..]).unwrap();
    assert!(node.publish(t0, &[3; 10][..]).is_err());
    node.handle_timeout(t0 + timeout);
    assert_eq!(node.stats().slow_peer_disconnects, 2);
}

#[test]
fn peers_stuck_as_long_as_a_slow_one_are_cut_with_it() {
    // Queues of four frames; B, C and E take nothing, D takes a frame halfway through.
    // C and E took A's first message(s) before they stopped, so when A's fourth
    // message fills B's queue (the node waits on B alone), C holds three frames (more
    // than half) and E two (half). One timeout later B is cut, and C with it: it took
    // nothing all that time either, and would hold the node back next. E, which holds
    // nothing back soon, and D, which keeps taking bytes, stay.
    const E: PeerId = PeerId(5);
    let timeout = Duration::from_secs(5);
    let config = Config {
        peer_queue_bytes: 4 * FRAME_CHARGE,
        ..pausing(timeout)
    };
    let (mut node, t0) = node_with(config, &[A, B, C, D, E]);
    node.handle_received(t0, A, &encode(&[0; 10]));
    node.handle_flushed(t0, C, 14);
    node.handle_flushed(t0, E, 14);
    node.handle_received(t0, A, &encode(&[1; 10]));
    node.handle_flushed(t0, E, 14);
    for n in 2..4 {
        node.handle_received(t0, A, &encode(&[n; 10]));
    }
    actions(&mut node);
    assert!(node.stats().congested);
    node.handle_flushed(t0 + timeout / 2, D, 14);
    node.handle_timeout(t0 + timeout);
    let cut = disconnects(&actions(&mut node));
    assert_eq!(cut, [B, C]);
    assert!(node.is_connected(D) && node.is_connected(E));
}

/// The stall escape of the escape tests.
const ESCAPE: Duration = Duration::from_millis(200);

/// `pausing` queues (two frames each) that escape a stall after [`ESCAPE`], within a
/// total of `total` bytes.
fn escaping(total: usize) -> Config {
    Config {
        stall_escape: ESCAPE,
        total_queue_bytes: total,
        ..pausing(Duration::from_secs(5))
    }
}

#[test]
fn a_stall_escape_takes_held_messages_until_the_total_is_full() {
    // B and C are full and take nothing: after `stall_escape`, A's held message is
    // taken anyway (past their budgets, within the total).
    let (mut node, t0) = node_with(escaping(3 * TO_TWO), &[A, B, C]);
    for n in 1..=3 {
        node.handle_received(t0, A, &encode(&[n; 10]));
    }
    assert_eq!(reading_changes(&actions(&mut node)), [(A, false)]);
    assert_eq!(node.poll_timeout(), Some(t0 + ESCAPE));
    node.handle_timeout(t0 + ESCAPE);
    let out = actions(&mut node);
    assert_eq!(reading_changes(&out), [(A, true)]);
    assert_eq!(sends(&out), [B, C]);
    assert_eq!(node.stats().stall_escapes, 1);
    // The total (three messages to B and C) is full now: A's next one is held again.
    node.handle_received(t0 + ESCAPE, A, &encode(&[4; 10]));
    assert_eq!(actions(&mut node), [Action::PauseReading { peer: A }]);
    assert_eq!(node.stats().queued_bytes, 3 * TO_TWO);
}

#[test]
fn each_round_of_a_stall_escape_takes_at_least_one_message_from_each_peer() {
    // B and C are full and take nothing; A has four more messages waiting. Half a
    // budget (one frame) shared among three peers is less than a message: one each.
    let (mut node, t0) = node_with(escaping(100 * FRAME_CHARGE), &[A, B, C]);
    let mut read = Vec::new();
    for n in 1..=6 {
        read.extend(encode(&[n; 10]));
    }
    node.handle_received(t0, A, &read);
    actions(&mut node);
    assert_eq!(node.stats().messages_delivered, 2);
    // A round: half a budget (one frame here) from A, not everything it sent.
    node.handle_timeout(t0 + ESCAPE);
    actions(&mut node);
    assert_eq!(node.stats().messages_delivered, 3);
    assert!(!node.is_reading(A));
    // Nothing moves: the next round comes a stall escape later, not sooner.
    assert_eq!(node.poll_timeout(), Some(t0 + 2 * ESCAPE));
    node.handle_timeout(t0 + 2 * ESCAPE);
    assert_eq!(node.stats().messages_delivered, 4);
    assert_eq!(node.stats().stall_escapes, 2);
}

#[test]
fn a_round_of_a_stall_escape_is_half_a_budget_shared_among_the_peers() {
    // Queues of twelve frames: half a budget is six frames, two for each of A, B and C.
    let config = Config {
        peer_queue_bytes: 12 * FRAME_CHARGE,
        ..escaping(100 * FRAME_CHARGE)
    };
    let (mut node, t0) = node_with(config, &[A, B, C]);
    let read: Vec<u8> = (1..=20).flat_map(|n| encode(&[n; 10])).collect();
    node.handle_received(t0, A, &read);
    actions(&mut node);
    assert_eq!(node.stats().messages_delivered, 12, "B and C are full");
    node.handle_timeout(t0 + ESCAPE);
    actions(&mut node);
    assert_eq!(node.stats().messages_delivered, 14, "two of the six frames");
    assert!(!node.is_reading(A));
}

#[test]
fn a_stall_escape_goes_on_while_the_total_is_marked_full_but_has_room() {
    // Queues of two frames, a total of four messages to B and C: two escape rounds fill
    // the total, then B takes the first run (two messages) and C half of it. The total
    // stays marked full (three messages' worth, more than half), but the next round
    // takes what fits instead of waiting for it to drain to half.
    let (mut node, t0) = node_with(escaping(4 * TO_TWO), &[A, B, C]);
    let read: Vec<u8> = (1..=6).flat_map(|n| encode(&[n; 10])).collect();
    node.handle_received(t0, A, &read);
    node.handle_timeout(t0 + ESCAPE);
    node.handle_timeout(t0 + 2 * ESCAPE);
    actions(&mut node);
    assert_eq!(node.stats().messages_delivered, 4);
    assert_eq!(node.stats().queued_bytes, 4 * TO_TWO);
    // No room in the total: no escape, only the slow-peer deadline of B and C.
    assert_eq!(node.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    let t1 = t0 + 3 * ESCAPE;
    node.handle_flushed(t1, B, 2 * (10 + 4));
    assert_eq!(
        node.stats().queued_bytes,
        4 * TO_TWO - 2 * QUEUED_FRAME_OVERHEAD,
        "C still holds the run's bytes"
    );
    node.handle_flushed(t1, C, 10 + 4);
    assert_eq!(
        node.stats().queued_bytes,
        3 * TO_TWO,
        "the last copy gives back what it writes"
    );
    assert_eq!(node.poll_timeout(), Some(t1 + ESCAPE));
    node.handle_timeout(t1 + ESCAPE);
    actions(&mut node);
    assert_eq!(node.stats().messages_delivered, 5);
    assert_eq!(node.stats().stall_escapes, 3);
    assert_eq!(node.stats().queued_bytes, 4 * TO_TWO);
}

/// A quarter of the slow-peer timeout of `escaping` (5 s).
const HOLD_LIMIT: Duration = Duration::from_millis(1250);

/// B and C take a byte every 100 ms from `t0` until [`HOLD_LIMIT`] later: the node
/// waits on them, never stalls, and takes nothing meanwhile. Returns whose messages it
/// takes then, in order.
fn trickle_to_hold_limit(node: &mut Node, t0: Instant) -> Vec<PeerId> {
    let mut t = t0;
    while t + Duration::from_millis(100) < t0 + HOLD_LIMIT {
        t += Duration::from_millis(100);
        node.handle_flushed(t, B, 1);
        node.handle_flushed(t, C, 1);
        node.handle_timeout(t);
        assert!(deliveries(&actions(node)).is_empty());
    }
    assert_eq!(node.stats().stall_escapes, 0, "the queues moved");
    assert_eq!(node.stats().held_peer_escapes, 0);
    assert_eq!(node.poll_timeout(), Some(t0 + HOLD_LIMIT));
    node.handle_timeout(t0 + HOLD_LIMIT);
    let out = actions(node);
    deliveries(&out).into_iter().map(|(_, from)| from).collect()
}

#[test]
fn a_peer_held_for_a_quarter_of_the_slow_peer_timeout_gets_a_message_taken() {
    // B and C take nothing but a byte now and then: the node waits on them, never
    // stalls (their queues move), and stays full. A reads everything, so the node does
    // not wait on it, but A's third message is held, and so are B's and C's. A node
    // behind A, seeing its queue to this one stand still, would cut it as slow: after
    // a quarter of the slow-peer timeout (1.25 s of 5 s) the node takes one held
    // message from each peer it has held that long, stalled or not.
    let (mut node, t0) = node_with(escaping(100 * FRAME_CHARGE), &[A, B, C]);
    for n in 1..=3 {
        node.handle_received(t0, A, &encode(&[n; 10]));
    }
    node.handle_received(t0, B, &encode(&[11; 10]));
    node.handle_received(t0, C, &encode(&[21; 10]));
    assert_eq!(deliveries(&actions(&mut node)).len(), 2);
    assert!(!node.is_reading(A) && !node.is_reading(B) && !node.is_reading(C));
    let taken = trickle_to_hold_limit(&mut node, t0);
    assert_eq!(taken, [A, B, C], "one message from each");
    // Counted, as they may take the peer queues past their budgets.
    assert_eq!(node.stats().held_peer_escapes, 3);
    assert!(node.is_reading(A), "A sent nothing more");
    // B's next message is held again, and its clock starts afresh.
    node.handle_received(t0 + HOLD_LIMIT, B, &encode(&[12; 10]));
    assert!(deliveries(&actions(&mut node)).is_empty());
    assert!(!node.is_reading(B));
}

#[test]
fn a_peer_held_too_long_gets_what_was_read_from_it_taken_too() {
    // As above, but A's held message came in one read with two more. The node takes
    // all three, so its runtime reads A's socket again and A sees its bytes taken: one
    // message at a time, out of the reads a runtime takes in ahead (two of 64 KiB),
    // would not have moved A's socket for tens of seconds, and a node behind A would
    // have cut it as slow all the same.
    let (mut node, t0) = node_with(escaping(100 * FRAME_CHARGE), &[A, B, C]);
    node.handle_received(t0, A, &encode(&[1; 10]));
    node.handle_received(t0, A, &encode(&[2; 10]));
    let read: Vec<u8> = (3..=5).flat_map(|n| encode(&[n; 10])).collect();
    node.handle_received(t0, A, &read);
    node.handle_received(t0, B, &encode(&[11; 10]));
    assert_eq!(deliveries(&actions(&mut node)).len(), 2);
    assert!(!node.is_reading(A));
    let taken = trickle_to_hold_limit(&mut node, t0);
    assert_eq!(
        taken,
        [A, A, A, B],
        "A's held message and the two read with it"
    );
    assert!(node.is_reading(A), "A's socket is read again");
}

#[test]
fn a_full_application_queue_holds_new_messages_until_it_takes_them() {
    // Room for two deliveries of 10 bytes.
    let config = Config {
        delivery_queue_bytes: 2 * (10 + QUEUED_FRAME_OVERHEAD),
        ..pausing(Duration::from_secs(5))
    };
    let (mut node, t0) = node_with(config, &[A, B]);
    node.handle_received(t0, A, &encode(&[1; 10]));
    node.handle_received(t0, A, &encode(&[2; 10]));
    assert_eq!(deliveries(&actions(&mut node)).len(), 2);
    assert_eq!(
        node.stats().delivery_queued_bytes,
        2 * (10 + QUEUED_FRAME_OVERHEAD)
    );
    // Full: the next new message is held, wherever it comes from.
    node.handle_received(t0, B, &encode(&[3; 10]));
    assert_eq!(actions(&mut node), [Action::PauseReading { peer: B }]);
    // The application takes one: at half its budget, B's message is taken.
    node.handle_delivered(t0, 1, 10);
    let out = actions(&mut node);
    assert_eq!(reading_changes(&out), [(B, true)]);
    assert_eq!(deliveries(&out), [(Bytes::from(vec![3; 10]), B)]);
    assert_eq!(node.stats().deliveries_dropped, 0);
}

#[test]
fn a_stalled_application_stops_getting_deliveries_but_the_node_keeps_relaying() {
    let timeout = Duration::from_secs(5);
    let config = Config {
        delivery_queue_bytes: 10 + QUEUED_FRAME_OVERHEAD,
        ..pausing(timeout)
    };
    let (mut node, t0) = node_with(config, &[A, B]);
    node.handle_received(t0, A, &encode(&[1; 10]));
    node.handle_received(t0, A, &encode(&[2; 10]));
    assert_eq!(reading_changes(&actions(&mut node)), [(A, false)]);
    // It takes nothing for the slow-peer timeout: stalled.
    assert_eq!(node.poll_timeout(), Some(t0 + timeout));
    node.handle_timeout(t0 + timeout);
    assert_eq!(node.stats().application_stalls, 1);
    // The held message is relayed but not delivered, and so are the next ones.
    let out = actions(&mut node);
    assert_eq!(reading_changes(&out), [(A, true)]);
    assert!(deliveries(&out).is_empty());
    assert_eq!(sends(&out), [B]);
    node.handle_flushed(t0 + timeout, B, 2 * 14);
    node.handle_received(t0 + timeout, A, &encode(&[3; 10]));
    assert_eq!(sends(&actions(&mut node)), [B]);
    assert_eq!(node.stats().deliveries_dropped, 2);
    // It takes something: deliveries start again.
    node.handle_delivered(t0 + timeout, 1, 10);
    node.handle_received(t0 + timeout, A, &encode(&[4; 10]));
    assert_eq!(deliveries(&actions(&mut node)).len(), 1);
}
