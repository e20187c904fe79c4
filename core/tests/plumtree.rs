//! The `plumtree` protocol in the simulator and by hand: trees, grafts, repair, mixed
//! networks, one connection per node.

use std::time::{Duration, Instant};

use bytes::Bytes;
use gossip_core::plumtree::{
    wire, LetGo, MessageCache, PlumtreeConfig, Promises, CACHED_MESSAGE_OVERHEAD,
};
use gossip_core::sim::{Churn, Report, SimConfig, Simulation, Topology};
use gossip_core::{
    Action, Config, Direction, DisconnectReason, MessageId, Node, PeerId, QUEUED_FRAME_OVERHEAD,
};
use proptest::prelude::*;

mod common;
use common::{cases, everyone_got_everything_once, network, topology};

fn plumtree(mut config: SimConfig) -> SimConfig {
    config.node.plumtree = Some(PlumtreeConfig::default());
    config
}

/// Data frames received per delivery, minus one (#14's rmr), between two reports of a
/// run: over what happened after `before` was taken.
fn rmr(before: &Report, after: &Report) -> f64 {
    let frames = after.frames_received - before.frames_received;
    let deliveries = after.deliveries - before.deliveries;
    frames as f64 / deliveries as f64 - 1.0
}

#[test]
fn the_first_message_floods_and_the_rest_follow_a_tree() {
    let topology = Topology::random_connected(300, 6, 3);
    let mut sim = Simulation::new(topology, plumtree(SimConfig::default()));
    let start = sim.report();
    sim.publish(0, &b"builds the tree"[..]).unwrap();
    assert!(sim.run_until_quiet());
    let first = sim.report();
    for n in 1..40usize {
        sim.publish(n * 7 % 300, format!("message {n}").into_bytes())
            .unwrap();
    }
    assert!(sim.run_until_quiet());
    let report = sim.report();
    assert!(report.all_delivered_exactly_once());
    assert!(rmr(&start, &first) > 3.0, "the first message floods");
    let rest = rmr(&first, &report);
    assert!(rest <= 0.05, "rmr {rest} once the tree has formed");
    assert!(report.control_frames > 0);
}

#[test]
fn a_mixed_network_delivers_everything() {
    // Every third node speaks flood only: its links are plain, the others plumtree.
    let config = SimConfig {
        plain_nodes: (0..60).step_by(3).collect(),
        ..plumtree(SimConfig::default())
    };
    let mut sim = Simulation::new(Topology::random_connected(60, 4, 9), config);
    for n in 0..20usize {
        sim.publish(n * 11 % 60, format!("message {n}").into_bytes())
            .unwrap();
    }
    assert!(sim.run_until_quiet());
    assert!(sim.report().all_delivered_exactly_once());
}

#[test]
fn a_link_that_comes_back_repairs_what_its_end_missed() {
    // A line 0 - 1 - 2: the link 1 - 2 is down while 0 publishes.
    let mut sim = Simulation::new(Topology::line(3), plumtree(SimConfig::default()));
    sim.publish(0, &b"before"[..]).unwrap();
    assert!(sim.run_until_quiet());
    assert_eq!(sim.cut_links(1.0, Duration::from_secs(2)), 2);
    // Both links are down: node 0's messages reach node 1 only when they come back,
    // and node 2 after that: by repair, from caches.
    for n in 0..5 {
        sim.publish(0, format!("while down {n}").into_bytes())
            .unwrap();
    }
    assert!(sim.run_until_quiet());
    let report = sim.report();
    assert!(report.all_delivered_exactly_once(), "{:?}", report.messages);
    // Node 1 grafts the five from node 0 and pushes them on to node 2, eager again.
    assert_eq!(report.repairs, 5);
}

/// Nodes crash and restart (empty) while messages are published, 50 ms apart: once
/// the churn stops and the network falls quiet, every message that left its origin has
/// reached every node, the restarted ones by repair from their neighbours' caches.
#[test]
fn every_node_gets_every_message_through_churn() {
    for seed in 0..4 {
        let config = SimConfig {
            seed,
            churn: Some(Churn {
                mean_interval: Duration::from_millis(200),
                downtime: Duration::from_millis(100),
            }),
            ..plumtree(SimConfig::default())
        };
        let mut sim = Simulation::new(Topology::random_connected(100, 5, seed), config);
        for n in 0..20usize {
            sim.publish(n * 37 % 100, format!("message {n}").into_bytes())
                .unwrap();
            sim.run_for(Duration::from_millis(50));
        }
        sim.stop_churn();
        assert!(sim.run_until_quiet());
        let report = sim.report();
        assert!(report.repairs > 0, "seed {seed}: nothing to repair");
        for message in &report.messages {
            // A message whose origin crashed before sending it reached no one else.
            assert!(
                message.reached == 100 || message.reached == 1,
                "seed {seed}: {message:?}"
            );
        }
    }
}

/// #14's restart case at test scale: after the tree has formed, 5 % of the nodes crash,
/// the rest of the messages are published at once at nodes that are up, and the crashed
/// nodes come back empty 200 ms later, while those messages are still on their way.
/// Returns how many crashed, the fewest nodes a message reached, and the repairs.
fn restart_five_percent(config: SimConfig, seed: u64) -> (usize, usize, u64) {
    let nodes = 400;
    let topology = Topology::random_connected(nodes, 6, seed);
    let mut sim = Simulation::new(topology, SimConfig { seed, ..config });
    sim.publish(0, &b"builds the tree"[..]).unwrap();
    assert!(sim.run_until_quiet());
    let restarted = sim.restart_nodes(0.05, Duration::from_millis(200));
    for n in 1..40usize {
        let origin = sim.first_up_from(n * 7).expect("a node is up");
        let payload = format!("message {n}").into_bytes();
        sim.publish(origin, payload).unwrap();
    }
    assert!(sim.run_until_quiet());
    let report = sim.report();
    (restarted, report.min_coverage(), report.repairs)
}

#[test]
fn nodes_that_restart_get_what_they_missed_by_repair() {
    for seed in 1..=3 {
        let (restarted, coverage, repairs) =
            restart_five_percent(plumtree(SimConfig::default()), seed);
        assert!(restarted >= 10, "seed {seed}: {restarted} restarted");
        // Every message reached every node (each is up at the end).
        assert_eq!(coverage, 400, "seed {seed}");
        assert!(repairs > 0, "seed {seed}");
        // Flooding, which repairs nothing, leaves the restarted nodes short: the
        // scenario does test repair.
        let (_, coverage, _) = restart_five_percent(SimConfig::default(), seed);
        assert!(coverage < 400, "seed {seed}: flood reached every node");
    }
}

#[test]
fn one_connection_per_node() {
    let t0 = Instant::now();
    let config = Config {
        plumtree: Some(PlumtreeConfig {
            node_id: 5,
            ..PlumtreeConfig::default()
        }),
        ..Config::default()
    };
    let mut node = Node::new(config).unwrap();
    // Itself.
    node.plumtree_peer_connected(t0, PeerId(1), Direction::Outbound, 5);
    let same = DisconnectReason::SameNode { node_id: 5 };
    assert_eq!(
        node.drain_actions().collect::<Vec<_>>(),
        [Action::Disconnect {
            peer: PeerId(1),
            reason: same
        }]
    );
    // Node 9 dials in, then this node dials it: the connection dialled by node 5 (the
    // lower id) is kept on both ends.
    node.plumtree_peer_connected(t0, PeerId(2), Direction::Inbound, 9);
    node.plumtree_peer_connected(t0, PeerId(3), Direction::Outbound, 9);
    let same = DisconnectReason::SameNode { node_id: 9 };
    let actions: Vec<Action> = node.drain_actions().collect();
    assert!(actions.contains(&Action::Disconnect {
        peer: PeerId(2),
        reason: same
    }));
    assert!(node.is_connected(PeerId(3)) && !node.is_connected(PeerId(2)));
    // Node 3 dials in after this node dialled it: node 3's is kept, as on its end.
    node.plumtree_peer_connected(t0, PeerId(4), Direction::Outbound, 3);
    node.plumtree_peer_connected(t0, PeerId(6), Direction::Inbound, 3);
    assert!(!node.is_connected(PeerId(4)) && node.is_connected(PeerId(6)));
    // A third connection to node 3, dialled by this node, is refused.
    node.plumtree_peer_connected(t0, PeerId(7), Direction::Outbound, 3);
    assert!(!node.is_connected(PeerId(7)) && node.is_connected(PeerId(6)));
}

#[test]
fn a_graft_for_a_message_not_cached_sends_nothing_and_is_counted() {
    let t0 = Instant::now();
    let config = Config {
        plumtree: Some(PlumtreeConfig::default()),
        ..Config::default()
    };
    let mut node = Node::new(config).unwrap();
    let peer = PeerId(1);
    node.plumtree_peer_connected(t0, peer, Direction::Inbound, 9);
    node.drain_actions().for_each(drop);
    let unknown = wire::short_id(&MessageId::of(b"never seen"));
    node.handle_received(t0, peer, &wire::graft(Some((unknown, 0))));
    assert!(node
        .drain_actions()
        .all(|action| !matches!(action, Action::Send { .. })));
    assert_eq!(node.stats().grafts_uncached, 1);
}

/// A peer that grafts without reading gets messages while they fit its queue, and no
/// more: grafts cannot grow a queue past its budget. What it grafted meanwhile waits as
/// ids and goes as it reads, however slowly, so it gets every message; a peer that
/// grafts ever more without reading has the ones past `MAX_DEFERRED_GRAFTS` refused.
#[test]
fn grafts_from_a_peer_that_does_not_read_stop_at_its_budget_and_go_as_it_reads() {
    let t0 = Instant::now();
    let frame = 4 + 3 + 1000 + QUEUED_FRAME_OVERHEAD;
    let config = Config {
        max_frame_len: 1000,
        // At least one full IHave frame (34,821 bytes): 40 messages.
        peer_queue_bytes: 40 * frame,
        total_queue_bytes: 400 * frame,
        plumtree: Some(PlumtreeConfig::default()),
        ..Config::default()
    };
    let mut node = Node::new(config).unwrap();
    let ids: Vec<MessageId> = (0..100u8)
        .map(|n| node.publish(t0, vec![n; 1000]).unwrap().id())
        .collect();
    let greedy = PeerId(1);
    node.plumtree_peer_connected(t0, greedy, Direction::Inbound, 9);
    node.drain_actions().for_each(drop);
    for id in &ids {
        let graft = wire::graft(Some((wire::short_id(id), 0)));
        node.handle_received(t0, greedy, &graft);
    }
    let stats = node.stats();
    // The announcement of the 100 cached ids on connecting (1,869 bytes charged) and 38
    // messages fill its budget; a 39th would pass it.
    assert!(stats.queued_bytes <= 40 * frame, "{stats:?}");
    assert!(stats.queued_bytes + frame > 40 * frame, "{stats:?}");
    let answered = 100 - stats.grafts_deferred as usize;
    assert_eq!(answered, 38, "{stats:?}");
    assert_eq!(stats.grafts_refused, 0);
    // It reads, a little at a time: every grafted message reaches it, in order, and its
    // queue never passes the budget.
    let mut got: Vec<u8> = Vec::new();
    for _ in 0..1000 {
        for action in node.drain_actions() {
            if let Action::Send { peer, frames } = action {
                assert_eq!(peer, greedy);
                got.extend(frames.payloads().map(|message| message[0]));
            }
        }
        if got.len() == 100 {
            break;
        }
        node.handle_flushed(t0, greedy, 10 * frame);
        assert!(node.stats().queued_bytes <= 40 * frame);
    }
    assert_eq!(got, (0..100u8).collect::<Vec<_>>());
    // Ever more grafts while it does not read: the waiting ids stop at their bound.
    for id in &ids {
        node.handle_received(t0, greedy, &wire::graft(Some((wire::short_id(id), 0))));
    }
    assert!(node.stats().congested, "full again");
    let more = gossip_core::plumtree::MAX_DEFERRED_GRAFTS + 1000;
    for n in 0..more as u64 {
        let id = wire::short_id(&MessageId::of(&n.to_le_bytes()));
        node.handle_received(t0, greedy, &wire::graft(Some((id, 0))));
    }
    assert!(node.stats().grafts_refused >= 1000, "{:?}", node.stats());
}

/// A plain peer the node was told of only once its protocol was settled (a listener
/// that never wrote, say) gets what the node cached since its connection opened, not
/// what came before; then new messages as any plain peer.
#[test]
fn a_plain_peer_settled_late_is_sent_what_came_since_its_connection_opened() {
    let (mut node, t0, [source, _]) = plumtree_node_with_two_peers();
    let before: &[u8] = b"before it connected";
    node.handle_received(t0, source, &gossip_frames(&[before], 0));
    let opened = t0 + Duration::from_millis(10);
    let meanwhile: [&[u8]; 2] = [b"while settling 1", b"while settling 2"];
    node.handle_received(opened, source, &gossip_frames(&meanwhile[..1], 0));
    node.handle_received(
        opened + Duration::from_millis(500),
        source,
        &gossip_frames(&meanwhile[1..], 0),
    );
    node.drain_actions().for_each(drop);
    let late = PeerId(3);
    let settled = opened + Duration::from_secs(1);
    node.peer_connected_since(settled, late, Direction::Inbound, opened);
    let actions: Vec<Action> = node.drain_actions().collect();
    assert_eq!(sent_to(&actions, late).0, plain_frames(&meanwhile));
    assert_eq!(node.stats().messages_caught_up, 2);
    let after: &[u8] = b"after";
    node.handle_received(settled, source, &gossip_frames(&[after], 0));
    let actions: Vec<Action> = node.drain_actions().collect();
    assert_eq!(sent_to(&actions, late).0, plain_frames(&[after]));
    // A peer connected the usual way gets none of the past.
    node.peer_connected(settled, PeerId(4), Direction::Inbound);
    assert_eq!(
        sent_to(&node.drain_actions().collect::<Vec<_>>(), PeerId(4)).1,
        0
    );
    assert_eq!(node.stats().messages_caught_up, 2);
}

/// What a late plain peer missed goes within its queue's budget: what does not fit
/// waits and goes, in order, as it reads, before anything new is taken for it.
#[test]
fn what_a_late_plain_peer_missed_waits_for_room_in_its_queue() {
    let t0 = Instant::now();
    let frame = 4 + 1000 + QUEUED_FRAME_OVERHEAD;
    // The smallest budget that holds an IHave frame of the most ids.
    let budget = 20 * frame;
    let config = Config {
        max_frame_len: 1000,
        peer_queue_bytes: budget,
        plumtree: Some(PlumtreeConfig::default()),
        ..Config::default()
    };
    let mut node = Node::new(config).unwrap();
    let source = PeerId(1);
    node.plumtree_peer_connected(t0, source, Direction::Inbound, 7);
    for n in 0..60u8 {
        node.handle_received(t0, source, &gossip_frames(&[&[n; 1000]], 0));
    }
    node.drain_actions().for_each(drop);
    let late = PeerId(2);
    node.peer_connected_since(t0, late, Direction::Inbound, t0);
    let stats = node.stats();
    assert!(stats.queued_bytes <= budget, "{stats:?}");
    assert!(stats.messages_caught_up < 60, "{stats:?}");
    // Full for `late`: a new message from the source is held, not taken.
    node.handle_received(t0, source, &gossip_frames(&[&[0xff; 1000]], 0));
    assert!(!node.is_reading(source));
    let mut got: Vec<u8> = Vec::new();
    for _ in 0..100 {
        for action in node.drain_actions() {
            if let Action::Send { peer, frames } = action {
                if peer == late {
                    got.extend(frames.payloads().map(|message| message[0]));
                }
            }
        }
        if got.len() == 61 {
            break;
        }
        node.handle_flushed(t0, late, 3 * frame);
        assert!(node.stats().queued_bytes <= budget);
    }
    let mut expected: Vec<u8> = (0..60).collect();
    expected.push(0xff);
    assert_eq!(got, expected);
    assert_eq!(node.stats().messages_caught_up, 60);
}

/// Plain frames of `messages`.
fn plain_frames(messages: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for message in messages {
        out.extend_from_slice(&(message.len() as u32).to_be_bytes());
        out.extend_from_slice(message);
    }
    out
}

/// A node that speaks plumtree, with default settings.
/// A peer that announces ids (made up, say) and never reads: the node's grafts fill its
/// queue to the budget, no further; then it waits on that peer like on any full one, and
/// cuts it after `slow_peer_timeout` (the ids it announced no longer hold the node).
#[test]
fn a_peer_that_announces_without_reading_gets_grafts_up_to_its_budget_then_is_cut() {
    let t0 = Instant::now();
    let budget = 24 << 10;
    let config = Config {
        max_frame_len: 1000,
        peer_queue_bytes: budget,
        plumtree: Some(PlumtreeConfig::default()),
        ..Config::default()
    };
    let timeout = config.slow_peer_timeout;
    let graft_timeout = PlumtreeConfig::default().graft_timeout;
    let mut node = Node::new(config).unwrap();
    let liar = PeerId(1);
    node.plumtree_peer_connected(t0, liar, Direction::Inbound, 9);
    let ids: Vec<(wire::ShortId, u16)> = (0..1000u32)
        .map(|n| (wire::short_id(&MessageId::of(&n.to_le_bytes())), 1))
        .collect();
    node.handle_received(t0, liar, &wire::ihave(&ids));
    node.drain_actions().for_each(drop);
    let t1 = t0 + graft_timeout;
    node.handle_timeout(t1);
    let grafts = node.stats().grafts_sent;
    assert!(grafts > 100 && grafts < 1000, "{:?}", node.stats());
    assert!(node.peer_stats(liar).unwrap().queued_bytes <= budget);
    assert!(node.stats().congested);
    // It reads nothing: cut at the slow-peer deadline, not before (the grafts waiting
    // for room are retried meanwhile, and still do not fit).
    let cut = |node: &mut Node| {
        node.drain_actions().any(|action| {
            matches!(
                action,
                Action::Disconnect {
                    peer,
                    reason: DisconnectReason::SlowPeer { .. }
                } if peer == liar
            )
        })
    };
    node.handle_timeout(t1 + timeout - Duration::from_millis(1));
    assert!(!cut(&mut node));
    assert!(node.peer_stats(liar).unwrap().queued_bytes <= budget);
    node.handle_timeout(t1 + timeout);
    assert!(cut(&mut node), "{:?}", node.stats());
}

fn plumtree_node() -> Node {
    let config = Config {
        plumtree: Some(PlumtreeConfig::default()),
        ..Config::default()
    };
    Node::new(config).unwrap()
}

/// A plumtree node with two plumtree peers (both eager), what it said so far drained.
fn plumtree_node_with_two_peers() -> (Node, Instant, [PeerId; 2]) {
    let t0 = Instant::now();
    let mut node = plumtree_node();
    let peers = [PeerId(1), PeerId(2)];
    for (peer, node_id) in peers.into_iter().zip([7, 8]) {
        node.plumtree_peer_connected(t0, peer, Direction::Inbound, node_id);
    }
    node.drain_actions().for_each(drop);
    (node, t0, peers)
}

/// A plumtree node with one plumtree peer, the source of what it reads (so it sends
/// what it reads whole to no one: a leaf), what it said so far drained.
fn plumtree_node_with_one_peer() -> (Node, Instant, PeerId) {
    let t0 = Instant::now();
    let mut node = plumtree_node();
    let source = PeerId(1);
    node.plumtree_peer_connected(t0, source, Direction::Inbound, 7);
    node.drain_actions().for_each(drop);
    (node, t0, source)
}

/// Whether `payload` lies in `read` (was not copied out of it).
fn lies_in(payload: &[u8], read: &Bytes) -> bool {
    let (at, start) = (payload.as_ptr() as usize, read.as_ptr() as usize);
    at >= start && at + payload.len() <= start + read.len()
}

/// A read's Gossip frames, as a plumtree peer sends them at `round`.
fn gossip_frames(messages: &[&[u8]], round: u16) -> Vec<u8> {
    let mut out = Vec::new();
    for message in messages {
        out.extend_from_slice(&wire::gossip_head(message.len(), round).unwrap());
        out.extend_from_slice(message);
    }
    out
}

/// The wire bytes of every Send to `peer` among `actions`, and how many Sends.
fn sent_to(actions: &[Action], peer: PeerId) -> (Vec<u8>, usize) {
    let mut wire = Vec::new();
    let mut sends = 0;
    for action in actions {
        if let Action::Send { peer: to, frames } = action {
            if *to == peer {
                frames.write_to(&mut wire);
                sends += 1;
            }
        }
    }
    (wire, sends)
}

#[test]
fn a_read_of_gossip_goes_on_as_one_run_and_a_duplicate_from_an_eager_peer_prunes_it() {
    let (mut node, t0, [from, other]) = plumtree_node_with_two_peers();

    // Three new messages in one read: delivered in order, and sent on to the other
    // (eager) peer as one run, each a hop further.
    let messages: [&[u8]; 3] = [b"one", b"two", b"three"];
    let read = Bytes::from(gossip_frames(&messages, 4));
    node.handle_received_bytes(t0, from, read.clone());
    let actions: Vec<Action> = node.drain_actions().collect();
    let delivered: Vec<&[u8]> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Deliver(d) => Some(&d.payload[..]),
            _ => None,
        })
        .collect();
    assert_eq!(delivered, messages);
    // Copies, which the cache keeps too: none of them keeps the read alive.
    let in_read = |p: &[u8]| read.as_ptr_range().contains(&p.as_ptr());
    assert!(!delivered.iter().any(|p| in_read(p)));
    assert_eq!(sent_to(&actions, other), (gossip_frames(&messages, 5), 1));
    assert_eq!(
        sent_to(&actions, from).1,
        0,
        "nothing goes back to its sender"
    );

    // The other peer sends one of them back while eager: it is pruned, and told.
    node.handle_received(t0, other, &gossip_frames(&messages[..1], 5));
    let actions: Vec<Action> = node.drain_actions().collect();
    assert_eq!(sent_to(&actions, other), (wire::prune().to_vec(), 1));
    assert_eq!(node.stats().prunes_sent, 1);

    // From now on it is lazy: a new message reaches it as an announcement only.
    node.handle_received(t0, from, &gossip_frames(&[b"four"], 4));
    assert_eq!(
        sent_to(&node.drain_actions().collect::<Vec<_>>(), other).1,
        0
    );
    let later = t0 + Duration::from_secs(1);
    node.handle_timeout(later);
    let id = wire::short_id(&MessageId::of(b"four"));
    let expected = wire::ihave(&[(id, 5)]).to_vec();
    assert_eq!(
        sent_to(&node.drain_actions().collect::<Vec<_>>(), other),
        (expected, 1)
    );
}

/// An announcement is a promise: a lazy peer that has not shown it has a message gets
/// it whole when the cache lets it go; one that announced it back or sent it does not,
/// nor one that announced it before the node had it.
#[test]
fn a_message_announced_to_a_lazy_peer_is_sent_whole_when_the_cache_lets_it_go_unless_it_has_it() {
    let (mut node, t0) = node_caching_two_messages_of_100_bytes();
    let [source, shown, silent, early, returned] = [1, 2, 3, 4, 5].map(PeerId);
    for (peer, node_id) in [
        (source, 7),
        (shown, 8),
        (silent, 9),
        (early, 10),
        (returned, 11),
    ] {
        node.plumtree_peer_connected(t0, peer, Direction::Inbound, node_id);
    }
    // A first message, sent back by the others: they turn lazy.
    let first: &[u8] = &[0; 100];
    node.handle_received(t0, source, &gossip_frames(&[first], 0));
    for peer in [shown, silent, early, returned] {
        node.handle_received(t0, peer, &gossip_frames(&[first], 1));
    }
    node.drain_actions().for_each(drop);
    // A message `early` announces before it comes; the other three are announced it.
    let promised: &[u8] = &[1; 100];
    let id = wire::short_id(&MessageId::of(promised));
    node.handle_received(t0, early, &wire::ihave(&[(id, 1)]));
    node.handle_received(t0, source, &gossip_frames(&[promised], 0));
    let t1 = t0 + Duration::from_secs(1);
    node.handle_timeout(t1);
    let actions: Vec<Action> = node.drain_actions().collect();
    for peer in [shown, silent, returned] {
        assert_eq!(sent_to(&actions, peer).0, wire::ihave(&[(id, 1)]).to_vec());
    }
    // `shown` announces it back, `returned` sends it: they have it.
    node.handle_received(t1, shown, &wire::ihave(&[(id, 2)]));
    node.handle_received(t1, returned, &gossip_frames(&[promised], 2));
    // Two more messages: the cache lets it go, and it goes to `silent` only.
    let more: [&[u8]; 2] = [&[2; 100], &[3; 100]];
    node.handle_received(t1, source, &gossip_frames(&more, 0));
    let actions: Vec<Action> = node.drain_actions().collect();
    assert_eq!(
        sent_to(&actions, silent),
        (gossip_frames(&[promised], 1), 1)
    );
    assert_eq!(sent_to(&actions, shown).1, 0);
    for peer in [shown, early, returned] {
        assert_eq!(sent_to(&actions, peer).1, 0);
    }
    assert_eq!(node.stats().promises_kept, 1);
}

/// An eager peer that announced a message (it has it: a neighbour announcing its cache
/// to a node back from a restart, or a peer that has this node as lazy) is not sent it
/// whole when it comes, only announced it back; one that announced only some of a
/// read's messages gets the read whole, as do the other eager peers.
#[test]
fn an_eager_peer_that_announced_the_messages_is_not_sent_them() {
    let (mut node, t0, [source, holder]) = plumtree_node_with_two_peers();
    let other = PeerId(3);
    node.plumtree_peer_connected(t0, other, Direction::Inbound, 9);
    node.drain_actions().for_each(drop);
    let [m, n]: [&[u8]; 2] = [b"m", b"n"];
    let [m_id, n_id] = [m, n].map(|message| wire::short_id(&MessageId::of(message)));
    node.handle_received(t0, holder, &wire::ihave(&[(m_id, 4), (n_id, 4)]));
    node.handle_received(t0, source, &gossip_frames(&[m, n], 2));
    let interval = PlumtreeConfig::default().ihave_interval;
    node.handle_timeout(t0 + interval);
    let actions: Vec<Action> = node.drain_actions().collect();
    let announced_back = wire::ihave(&[(m_id, 3), (n_id, 3)]).to_vec();
    assert_eq!(sent_to(&actions, holder), (announced_back, 1));
    assert_eq!(sent_to(&actions, other), (gossip_frames(&[m, n], 3), 1));

    // It announced only one of the next two: it gets both.
    let [o, p]: [&[u8]; 2] = [b"o", b"p"];
    let o_id = wire::short_id(&MessageId::of(o));
    node.handle_received(t0 + interval, holder, &wire::ihave(&[(o_id, 4)]));
    node.handle_received(t0 + interval, source, &gossip_frames(&[o, p], 2));
    let actions: Vec<Action> = node.drain_actions().collect();
    assert_eq!(sent_to(&actions, holder), (gossip_frames(&[o, p], 3), 1));
    assert_eq!(sent_to(&actions, other), (gossip_frames(&[o, p], 3), 1));
}

/// A node that sends a read's new messages whole to no one (a leaf of the tree, more
/// than half the nodes of a network) keeps and delivers them where they were read,
/// with no copy, and its cache is charged for the whole read while it keeps them; so
/// only when their frames are seven eighths of the read or more (at the edge: seven
/// new frames and a duplicate). A read with more of other bytes (duplicates here) is
/// copied from instead, and the cache is charged for the new messages alone; so is a
/// message assembled across two reads, which the decoder has copied already.
#[test]
fn a_leaf_keeps_what_it_read_in_place_and_its_cache_pays_for_the_read() {
    let (mut node, t0, source) = plumtree_node_with_one_peer();
    let delivered = |node: &mut Node| -> Vec<Bytes> {
        let actions = node.drain_actions();
        let deliveries = actions.filter_map(|action| match action {
            Action::Deliver(delivery) => Some(delivery.payload),
            _ => None,
        });
        deliveries.collect()
    };
    let messages: Vec<[u8; 100]> = (0..20).map(|i| [i; 100]).collect();
    let messages: Vec<&[u8]> = messages.iter().map(|m| &m[..]).collect();
    let seen = messages[0];
    let first = gossip_frames(&[seen], 0);
    node.handle_received(t0, source, &first);
    delivered(&mut node);
    // The copy `handle_received` made is its read, kept in place.
    let mut charged = first.len() + CACHED_MESSAGE_OVERHEAD;

    // Seven new frames and a duplicate of the same size: seven eighths, kept in place.
    let new = &messages[1..8];
    let read = Bytes::from(gossip_frames(&[new, &[seen]].concat(), 0));
    node.handle_received_bytes(t0, source, read.clone());
    let payloads = delivered(&mut node);
    assert_eq!(payloads, new);
    assert!(payloads.iter().all(|payload| lies_in(payload, &read)));
    charged += read.len() + new.len() * CACHED_MESSAGE_OVERHEAD;
    assert_eq!(node.stats().plumtree_cache_bytes, charged);

    // Six and two duplicates: under seven eighths, copied.
    let new = &messages[8..14];
    let read = Bytes::from(gossip_frames(&[new, &[seen, seen]].concat(), 0));
    node.handle_received_bytes(t0, source, read.clone());
    let payloads = delivered(&mut node);
    assert_eq!(payloads, new);
    assert!(payloads.iter().all(|payload| !lies_in(payload, &read)));
    charged += new.len() * (100 + CACHED_MESSAGE_OVERHEAD);
    assert_eq!(node.stats().plumtree_cache_bytes, charged);

    // A frame begun in one read and ended in the next is assembled in a buffer of its
    // own, and kept as it is; the rest of the read (its first 7 bytes that frame's)
    // is kept in place.
    let more = &messages[14..20];
    let frames = gossip_frames(more, 0);
    let (begun, rest) = frames.split_at(100);
    node.handle_received_bytes(t0, source, Bytes::copy_from_slice(begun));
    let read = Bytes::copy_from_slice(rest);
    node.handle_received_bytes(t0, source, read.clone());
    let payloads = delivered(&mut node);
    assert_eq!(payloads, more);
    let in_place: Vec<bool> = payloads.iter().map(|p| lies_in(p, &read)).collect();
    assert_eq!(in_place, [false, true, true, true, true, true]);
    charged += 100 + read.len() + more.len() * CACHED_MESSAGE_OVERHEAD;
    assert_eq!(node.stats().plumtree_cache_bytes, charged);
}

/// A read of more messages than the node handles at once (64) is taken in several
/// batches: all of them stay in place, the last batch too though it is a small part of
/// the read (the read is kept already: its first batch, 64 of 70 frames, was dense
/// enough), and the cache is charged for the read once.
#[test]
fn the_batches_of_one_read_share_its_charge() {
    let (mut node, t0, source) = plumtree_node_with_one_peer();
    let messages: Vec<Vec<u8>> = (0..70u32).map(|i| [i.to_be_bytes(); 25].concat()).collect();
    let messages: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let read = Bytes::from(gossip_frames(&messages, 0));
    node.handle_received_bytes(t0, source, read.clone());
    let mut delivered = 0;
    for action in node.drain_actions() {
        if let Action::Deliver(delivery) = action {
            let in_place = lies_in(&delivery.payload, &read);
            assert!(in_place, "message {delivered} copied");
            delivered += 1;
        }
    }
    assert_eq!(delivered, 70);
    let charged = read.len() + 70 * CACHED_MESSAGE_OVERHEAD;
    assert_eq!(node.stats().plumtree_cache_bytes, charged);
}

/// A plumtree node whose cache has room for two messages of 100 bytes.
fn node_caching_two_messages_of_100_bytes() -> (Node, Instant) {
    let plumtree = PlumtreeConfig {
        cache_bytes: 2 * (100 + CACHED_MESSAGE_OVERHEAD),
        ..PlumtreeConfig::default()
    };
    let config = Config {
        plumtree: Some(plumtree),
        ..Config::default()
    };
    (Node::new(config).unwrap(), Instant::now())
}

/// A peer that goes while messages are promised to it costs nothing as it goes (no pass
/// over the cache); its promise slot is not given to a newcomer until the cache has let
/// those messages go, and they go to no one.
#[test]
fn a_gone_peers_promises_go_with_it_and_its_slot_waits_for_them() {
    let (mut node, t0) = node_caching_two_messages_of_100_bytes();
    let [source, gone, newcomer] = [1, 2, 3].map(PeerId);
    for (peer, node_id) in [(source, 7), (gone, 8)] {
        node.plumtree_peer_connected(t0, peer, Direction::Inbound, node_id);
    }
    let first: &[u8] = &[0; 100];
    node.handle_received(t0, source, &gossip_frames(&[first], 0));
    node.handle_received(t0, gone, &gossip_frames(&[first], 1));
    // Promised to `gone`, which goes.
    let promised: &[u8] = &[1; 100];
    node.handle_received(t0, source, &gossip_frames(&[promised], 0));
    node.peer_disconnected(t0, gone);
    node.plumtree_peer_connected(t0, newcomer, Direction::Inbound, 9);
    node.drain_actions().for_each(drop);
    // The cache lets it go: the newcomer (eager) gets the new messages only.
    let more: [&[u8]; 2] = [&[2; 100], &[3; 100]];
    node.handle_received(t0, source, &gossip_frames(&more, 0));
    let actions: Vec<Action> = node.drain_actions().collect();
    assert_eq!(sent_to(&actions, newcomer).0, gossip_frames(&more, 1));
    assert_eq!(node.stats().promises_kept, 0);
}

/// The messages a node owes (promised, let go by its cache while the peer's queue was
/// full) stop growing at `cache_bytes + total_queue_bytes`: they grow only while the
/// node escapes a stall, and escapes stop there. Here a lazy peer never reads, a source
/// writes as fast as the node reads it, and every escape round pushes promised
/// messages out of a cache that holds two.
#[test]
fn messages_owed_to_a_peer_that_does_not_read_stop_at_their_bound() {
    let t0 = Instant::now();
    let peer_budget = 24 << 10;
    let config = Config {
        max_frame_len: 100,
        peer_queue_bytes: peer_budget,
        total_queue_bytes: 16 * peer_budget,
        plumtree: Some(PlumtreeConfig {
            cache_bytes: 2 * (100 + CACHED_MESSAGE_OVERHEAD),
            ..PlumtreeConfig::default()
        }),
        ..Config::default()
    };
    let cache_bytes = 2 * (100 + CACHED_MESSAGE_OVERHEAD);
    let bound = cache_bytes + config.total_queue_bytes;
    let slow_peer_timeout = config.slow_peer_timeout;
    let mut node = Node::new(config).unwrap();
    let [source, stuck] = [1, 2].map(PeerId);
    node.plumtree_peer_connected(t0, source, Direction::Inbound, 7);
    node.plumtree_peer_connected(t0, stuck, Direction::Inbound, 8);
    // `stuck` sends a message back: it turns lazy, and is only announced to from now.
    let first = [0u8; 100];
    node.handle_received(t0, source, &gossip_frames(&[&first], 0));
    node.handle_received(t0, stuck, &gossip_frames(&[&first], 1));
    let mut now = t0;
    let mut sent = 0u64;
    let (mut most_owed, mut escapes_at_bound) = (0, None);
    while now < t0 + slow_peer_timeout * 2 && node.is_connected(stuck) {
        // The source writes whenever the node reads it.
        for _ in 0..100 {
            if !node.is_reading(source) {
                break;
            }
            sent += 1;
            let mut message = [0x5a; 100];
            message[..8].copy_from_slice(&sent.to_be_bytes());
            node.handle_received(now, source, &gossip_frames(&[&message], 0));
        }
        node.drain_actions().for_each(drop);
        let stats = node.stats();
        let owed = stats.plumtree_cache_bytes.saturating_sub(cache_bytes);
        most_owed = most_owed.max(owed);
        // Past the bound by at most one round (half a peer budget) and a message.
        assert!(owed <= bound + peer_budget, "{owed} owed: {stats:?}");
        if owed >= bound && escapes_at_bound.is_none() {
            escapes_at_bound = Some(stats.stall_escapes);
        }
        now = node.poll_timeout().map_or(now, |at| at.max(now)) + Duration::from_millis(1);
        node.handle_timeout(now);
    }
    let stats = node.stats();
    assert!(
        most_owed >= bound,
        "the bound was not reached: {most_owed} owed, {stats:?}"
    );
    // No escape after the bound, and the peer that does not read is cut as always.
    assert!(!node.is_connected(stuck), "{stats:?}");
    assert_eq!(escapes_at_bound, Some(stats.stall_escapes), "{stats:?}");
    assert!(
        stats.plumtree_cache_bytes <= cache_bytes,
        "owed messages go with their peer"
    );
}

/// What is still lost is counted: a message this node was announced and grafted, whose
/// announcer went away before answering, is given up and, once the cache retention has
/// passed without it, counted in `messages_missed`.
#[test]
fn a_message_whose_announcer_went_away_unanswered_is_counted_missed() {
    let (mut node, t0, [announcer, _]) = plumtree_node_with_two_peers();
    let config = PlumtreeConfig::default();
    let id = wire::short_id(&MessageId::of(b"lost"));
    node.handle_received(t0, announcer, &wire::ihave(&[(id, 1)]));
    let grafted = t0 + config.graft_timeout;
    node.handle_timeout(grafted);
    assert_eq!(node.stats().grafts_sent, 1);
    node.peer_disconnected(grafted, announcer);
    let mut now = grafted;
    for _ in 0..10 {
        let Some(next) = node.poll_timeout() else {
            break;
        };
        now = next;
        node.handle_timeout(now);
    }
    let stats = node.stats();
    assert_eq!((stats.grafts_given_up, stats.messages_missed), (1, 1));
    assert!(now >= grafted + config.cache_retention, "counted too early");
}

/// Announces `payload` from `announcer` at `at`, runs the timers until `came`, then
/// has it come whole from `sender`; returns how many grafts the node sent meanwhile.
fn announce_then_send(
    node: &mut Node,
    (announcer, sender): (PeerId, PeerId),
    payload: &[u8],
    at: Instant,
    came: Instant,
) -> u64 {
    let before = node.stats().grafts_sent;
    let id = wire::short_id(&MessageId::of(payload));
    node.handle_received(at, announcer, &wire::ihave(&[(id, 1)]));
    while let Some(next) = node.poll_timeout().filter(|&next| next < came) {
        node.handle_timeout(next);
    }
    node.handle_received(came, sender, &gossip_frames(&[payload], 1));
    node.drain_actions().for_each(drop);
    node.stats().grafts_sent - before
}

/// Announces `count` messages (`name 0`, `name 1`, ...) from `peers.0` one after
/// another from `now`, each coming whole from `peers.1` `late` after its announcement;
/// returns the grafts each cost and when the last came.
fn announce_many(
    node: &mut Node,
    peers: (PeerId, PeerId),
    (name, count): (&str, u32),
    late: Duration,
    mut now: Instant,
) -> (Vec<u64>, Instant) {
    let mut grafts = Vec::new();
    for n in 0..count {
        let payload = format!("{name} {n}");
        grafts.push(announce_then_send(
            node,
            peers,
            payload.as_bytes(),
            now,
            now + late,
        ));
        now += late;
    }
    (grafts, now)
}

/// Announces `payload` from `peers.0` at `now`; it comes from `peers.1` only as late as
/// a graft at the floor timeout would have it. Returns the grafts sent for it.
fn announce_one_lost(
    node: &mut Node,
    peers: (PeerId, PeerId),
    payload: &[u8],
    now: Instant,
) -> u64 {
    let config = PlumtreeConfig::default();
    let came = now + config.graft_timeout + config.graft_retry;
    announce_then_send(node, peers, payload, now, came)
}

/// Under load the tree's copies come long after the announcements; the graft timers
/// stretch with them (up to `graft_timeout_max`), so the node stops grafting what the
/// tree brings anyway, and shrink back when the copies come on time again.
#[test]
fn graft_timers_stretch_with_how_late_the_tree_brings_announced_messages() {
    let (mut node, t0, [announcer, tree]) = plumtree_node_with_two_peers();
    let config = PlumtreeConfig::default();
    let late = Duration::from_secs(2);
    let peers = (announcer, tree);
    let (grafts, now) = announce_many(&mut node, peers, ("late", 30), late, t0);
    assert!(grafts[0] > 0, "at first the floor: {grafts:?}");
    assert_eq!(grafts[20..], [0; 10], "stretched: {grafts:?}");
    let stretched = node.stats().graft_timeout;
    assert!(
        stretched > late && stretched <= config.graft_timeout_max,
        "{stretched:?}"
    );
    // Later than the ceiling: grafted by then.
    let came = now + config.graft_timeout_max + late;
    assert!(announce_then_send(&mut node, peers, b"past the ceiling", now, came) > 0);
    // On time again: back to the floor.
    let on_time = Duration::from_millis(10);
    let (_, now) = announce_many(&mut node, peers, ("on time", 60), on_time, came);
    assert_eq!(node.stats().graft_timeout, config.graft_timeout);
    assert_eq!(announce_one_lost(&mut node, peers, b"lost", now), 1);
}

/// Once the load is gone the tree's copies come before their announcements and tell
/// nothing: the stretch halves every `graft_timeout_max` without a late message, so a
/// message lost a minute later is grafted at the floor again.
#[test]
fn stretched_graft_timers_come_back_once_no_message_is_late() {
    let (mut node, t0, [announcer, tree]) = plumtree_node_with_two_peers();
    let late = Duration::from_secs(3);
    let (_, now) = announce_many(&mut node, (announcer, tree), ("late", 30), late, t0);
    assert!(node.stats().graft_timeout > late);
    // Lost a minute later: grafted at the floor, and the graft answers it.
    let later = now + Duration::from_secs(60);
    let answered = (announcer, announcer);
    assert_eq!(announce_one_lost(&mut node, answered, b"lost", later), 1);
    let floor = PlumtreeConfig::default().graft_timeout;
    assert_eq!(node.stats().graft_timeout, floor);
}

/// As Karn's rule for TCP: a message that came from the peer it was grafted from says
/// nothing of how late the tree is (its lateness includes the timer), so lost messages
/// repaired by grafts do not stretch the timers.
#[test]
fn grafted_messages_do_not_stretch_the_graft_timers() {
    let (mut node, t0, [announcer, _]) = plumtree_node_with_two_peers();
    let answered = (announcer, announcer);
    let late = Duration::from_secs(2);
    let (grafts, now) = announce_many(&mut node, answered, ("lost", 30), late, t0);
    assert_eq!(grafts, [1; 30]);
    assert_eq!(announce_one_lost(&mut node, answered, b"one more", now), 1);
}

/// A graft whose announcer's connection goes will not be answered: the next announcer
/// is asked at once, not after the retry.
#[test]
fn a_graft_whose_announcer_goes_is_sent_to_the_next_announcer_at_once() {
    let t0 = Instant::now();
    let mut node = plumtree_node();
    let [first, second, third] = [PeerId(1), PeerId(2), PeerId(3)];
    for (peer, node_id) in [(first, 7), (second, 8), (third, 9)] {
        node.plumtree_peer_connected(t0, peer, Direction::Inbound, node_id);
    }
    let config = PlumtreeConfig::default();
    let id = wire::short_id(&MessageId::of(b"wanted"));
    for peer in [first, third, second] {
        node.handle_received(t0, peer, &wire::ihave(&[(id, 1)]));
    }
    // The third goes before it is asked: it is asked for nothing.
    node.peer_disconnected(t0, third);
    node.drain_actions().for_each(drop);
    let grafted = t0 + config.graft_timeout;
    node.handle_timeout(grafted);
    assert_eq!(node.stats().grafts_sent, 1);
    let (wire_to_first, _) = sent_to(&node.drain_actions().collect::<Vec<_>>(), first);
    assert!(!wire_to_first.is_empty());
    node.peer_disconnected(grafted, first);
    assert_eq!(node.poll_timeout(), Some(grafted), "{:?}", node.stats());
    node.handle_timeout(grafted);
    assert_eq!(node.stats().grafts_sent, 2);
    let (wire_to_second, _) = sent_to(&node.drain_actions().collect::<Vec<_>>(), second);
    assert_eq!(wire_to_second, wire_to_first, "the same graft");
    // None left: the last is awaited one more timeout, then given up.
    node.peer_disconnected(grafted, second);
    node.handle_timeout(grafted);
    assert_eq!(node.stats().grafts_given_up, 0);
    node.handle_timeout(grafted + config.graft_timeout);
    assert_eq!(
        (node.stats().grafts_given_up, node.stats().grafts_sent),
        (1, 2)
    );
}

/// The ids of every IHave frame in `wire` (whole frames, length-prefixed), in order.
fn announced_ids(wire: &[u8]) -> Vec<wire::ShortId> {
    let mut ids = Vec::new();
    let mut rest = wire;
    while rest.len() >= 4 {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let payload = Bytes::copy_from_slice(&rest[4..4 + len]);
        if let Ok(wire::Frame::IHave(entries)) = wire::Frame::parse(&payload) {
            ids.extend(entries.iter().map(|(id, _)| id));
        }
        rest = &rest[4 + len..];
    }
    ids
}

/// A plumtree peer that connects is announced the newest cached messages whose ids
/// fit half its queue's budget, however large the cache: the repair stays within the
/// budget, and leaves room for what follows.
#[test]
fn a_peer_that_connects_is_announced_the_newest_cached_ids_that_fit_half_its_queue() {
    let t0 = Instant::now();
    // 19 bytes an id (18 and its share of the frame): a thousand ids.
    let peer_queue_bytes = 2 * 1000 * 19;
    let config = Config {
        plumtree: Some(PlumtreeConfig::default()),
        peer_queue_bytes,
        max_frame_len: 1024,
        ..Config::default()
    };
    let mut node = Node::new(config).unwrap();
    let payloads: Vec<String> = (0..1500).map(|n| format!("m{n}")).collect();
    for payload in &payloads {
        node.publish(t0, payload.clone().into_bytes()).unwrap();
    }
    node.drain_actions().for_each(drop);
    let peer = PeerId(1);
    node.plumtree_peer_connected(t0, peer, Direction::Inbound, 7);
    let (wire_to_peer, _) = sent_to(&node.drain_actions().collect::<Vec<_>>(), peer);
    let newest: Vec<wire::ShortId> = payloads[500..]
        .iter()
        .map(|payload| wire::short_id(&MessageId::of(payload.as_bytes())))
        .collect();
    assert_eq!(announced_ids(&wire_to_peer), newest);
    assert!(node.peer_stats(peer).unwrap().queued_bytes <= peer_queue_bytes / 2);
}

#[test]
fn with_the_default_threshold_the_tree_never_changes_on_announcements() {
    // Off means off, even for a round no honest path reaches.
    let (mut node, t0, [source, lazy]) = plumtree_node_with_two_peers();
    node.handle_received(t0, source, &gossip_frames(&[b"first"], 0));
    // A duplicate from `lazy` makes it lazy.
    node.handle_received(t0, lazy, &gossip_frames(&[b"first"], 1));
    node.handle_received(t0, source, &gossip_frames(&[b"far"], u16::MAX));
    let far = wire::short_id(&MessageId::of(b"far"));
    node.handle_received(t0, lazy, &wire::ihave(&[(far, 0)]));
    let stats = node.stats();
    assert_eq!((stats.tree_swaps, stats.prunes_sent), (0, 1));
}

#[test]
fn a_node_without_plumtree_takes_a_plumtree_peer_as_plain() {
    let t0 = Instant::now();
    let mut node = Node::new(Config::default()).unwrap();
    node.plumtree_peer_connected(t0, PeerId(1), Direction::Inbound, 7);
    node.handle_received(t0, PeerId(1), &gossip_core::frame::encode(b"plain"));
    let delivered = node
        .drain_actions()
        .any(|a| matches!(a, Action::Deliver(_)));
    assert!(delivered);
}

#[test]
fn garbage_from_a_plumtree_peer_disconnects_it_with_the_reason() {
    let t0 = Instant::now();
    let mut node = plumtree_node();
    node.plumtree_peer_connected(t0, PeerId(1), Direction::Inbound, 7);
    node.handle_received(t0, PeerId(1), &[0, 0, 0, 1, 9]);
    let reason = DisconnectReason::Plumtree(wire::WireError::UnknownType);
    assert!(node.drain_actions().any(|a| a
        == Action::Disconnect {
            peer: PeerId(1),
            reason
        }));
    assert_eq!(node.stats().protocol_errors, 1);
}

proptest! {
    #![proptest_config(cases(128))]

    /// Any topology, any network, any mix of plumtree and plain nodes: every message
    /// reaches every node exactly once, and the network falls quiet (no loops).
    #[test]
    fn plumtree_delivers_every_message_exactly_once(
        topology in topology(),
        network in network(),
        plain in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        publishers in prop::collection::vec(any::<prop::sample::Index>(), 1..6),
    ) {
        let nodes = topology.nodes();
        let config = SimConfig {
            plain_nodes: plain.iter().map(|i| i.index(nodes)).collect(),
            ..plumtree(network)
        };
        let mut sim = Simulation::new(topology, config);
        for (n, publisher) in publishers.iter().enumerate() {
            sim.publish(publisher.index(nodes), format!("message {n}").into_bytes()).unwrap();
        }
        prop_assert!(sim.run_until_quiet(), "events still pending after 24 virtual hours");
        let report = sim.report();
        everyone_got_everything_once(&report, nodes)?;
    }

    /// Links cut while messages are published, and restored: every message still
    /// reaches every node, by repair from the caches once the links are back.
    #[test]
    fn plumtree_repairs_what_cut_links_lost(
        topology in topology(),
        network in network(),
        cut in 0.0f64..0.5,
        publishers in prop::collection::vec(any::<prop::sample::Index>(), 1..6),
    ) {
        let nodes = topology.nodes();
        let mut sim = Simulation::new(topology, plumtree(network));
        sim.publish(0, &b"first"[..]).unwrap();
        prop_assert!(sim.run_until_quiet());
        sim.cut_links(cut, Duration::from_millis(500));
        for (n, publisher) in publishers.iter().enumerate() {
            sim.publish(publisher.index(nodes), format!("message {n}").into_bytes()).unwrap();
        }
        prop_assert!(sim.run_until_quiet());
        let report = sim.report();
        everyone_got_everything_once(&report, nodes)?;
    }

    /// Nodes crash and come back empty while messages are published at the nodes that
    /// are up: every message reaches every node (a restarted one gets again what it had,
    /// and delivers it again: it remembers nothing), by repair once the links are back.
    #[test]
    fn plumtree_repairs_what_restarted_nodes_missed(
        topology in topology(),
        network in network(),
        share in 0.0f64..0.5,
        downtime_ms in 1u64..500,
        publishers in prop::collection::vec(any::<prop::sample::Index>(), 1..6),
    ) {
        let nodes = topology.nodes();
        let mut sim = Simulation::new(topology, plumtree(network));
        sim.publish(0, &b"first"[..]).unwrap();
        prop_assert!(sim.run_until_quiet());
        sim.restart_nodes(share, Duration::from_millis(downtime_ms));
        for (n, publisher) in publishers.iter().enumerate() {
            let Some(up) = sim.first_up_from(publisher.index(nodes)) else {
                continue;
            };
            sim.publish(up, format!("message {n}").into_bytes()).unwrap();
        }
        prop_assert!(sim.run_until_quiet());
        for message in &sim.report().messages {
            prop_assert_eq!(message.reached, nodes, "{:?}", message);
        }
    }

    /// The message cache never holds more than its budget, keeps the newest, and gives
    /// back each message it keeps as it was, whether it came alone or in a batch sharing
    /// one buffer with others.
    #[test]
    fn the_cache_never_passes_its_budget(
        sizes in prop::collection::vec(0usize..300, 0..200),
        budget in 0usize..4000,
        steps in prop::collection::vec(0u64..20, 0..200),
        batch_lens in prop::collection::vec(1usize..6, 1..50),
    ) {
        let mut now = Instant::now();
        let mut cache = MessageCache::new(budget, Duration::from_millis(100));
        let mut batches = batch_lens.iter().cycle();
        let mut steps = steps.iter().chain(std::iter::repeat(&0));
        let mut sizes = sizes.iter().enumerate().peekable();
        let mut kept: Vec<(MessageId, Bytes, Promises)> = Vec::new();
        let mut let_go: Vec<LetGo> = Vec::new();
        while sizes.peek().is_some() {
            now += Duration::from_millis(*steps.next().unwrap_or(&0));
            // The next messages, back to back in one buffer, each filled with its number.
            let mut buffer = Vec::new();
            let mut batch = Vec::new();
            for (n, &size) in sizes.by_ref().take(*batches.next().unwrap_or(&1)) {
                let start = buffer.len();
                buffer.extend(std::iter::repeat_n(n as u8, size));
                // Every third is promised to a peer slot.
                let promised = match n % 3 {
                    0 => Promises::NONE.with((n % 5) as u8),
                    _ => Promises::NONE,
                };
                let id = MessageId::of(&(n as u64).to_be_bytes());
                batch.push((id, start..buffer.len(), 0, promised));
            }
            let buffer = Bytes::from(buffer);
            match batch.len() {
                1 if batch[0].3.is_empty() => {
                    let (id, range, round, _) = batch[0].clone();
                    cache.insert(now, (id, buffer.slice(range)), round, None);
                }
                _ => cache.insert_many(now, &buffer, batch.clone(), None),
            }
            prop_assert!(cache.bytes() <= budget);
            let_go.extend(cache.take_let_go());
            let (last, range, _, _) = batch.last().cloned().expect("not empty");
            if range.len() + CACHED_MESSAGE_OVERHEAD <= budget {
                prop_assert!(cache.get(&wire::short_id(&last)).is_some(), "the newest was not kept");
            }
            kept.extend(
                batch.into_iter().map(|(id, range, _, promised)| (id, buffer.slice(range), promised)),
            );
            for (id, message, promised) in &kept {
                match cache.get(&wire::short_id(id)) {
                    Some((got, _)) => prop_assert_eq!(&got, message),
                    // A promised message goes only to be sent to whom it was promised.
                    None if !promised.is_empty() => prop_assert!(
                        let_go.iter().any(|l| l.message == *message && l.promised == *promised),
                        "a promised message was forgotten"
                    ),
                    None => {}
                }
            }
        }
        // Everything promised is let go with its promise by the end of its retention.
        cache.expire(now + Duration::from_millis(100));
        let_go.extend(cache.take_let_go());
        let promised = kept.iter().filter(|(_, _, promised)| !promised.is_empty()).count();
        prop_assert_eq!(let_go.len(), promised);
    }
}

/// The mean over messages of the hops of each one's last delivery, and their rmr, on
/// `topology`: one message builds the tree, then `messages` more from nodes spread over
/// the network.
fn tree_depths(topology: Topology, shortcut_window: Duration, messages: usize) -> (f64, f64) {
    let nodes = topology.nodes();
    let mut config = plumtree(SimConfig::default());
    if let Some(plumtree) = config.node.plumtree.as_mut() {
        plumtree.shortcut_window = shortcut_window;
    }
    let mut sim = Simulation::new(topology, config);
    sim.publish(0, &b"builds the tree"[..]).unwrap();
    assert!(sim.run_until_quiet());
    let first = sim.report();
    for n in 1..=messages {
        sim.publish(n * 7919 % nodes, format!("message {n}").into_bytes())
            .unwrap();
    }
    assert!(sim.run_until_quiet());
    let report = sim.report();
    assert!(report.all_delivered_exactly_once());
    let rest = &report.messages[1..];
    let hops: u32 = rest.iter().map(|m| m.last_delivery_hops).sum();
    (hops as f64 / rest.len() as f64, rmr(&first, &report))
}

/// Over random graphs, shortcuts shorten the paths of the tree the first message builds,
/// for the messages from everywhere else, and the tree stays a tree.
#[test]
fn shortcuts_shorten_the_trees_paths() {
    let (mut off, mut on) = (0.0, 0.0);
    for seed in 1..=6 {
        let topology = || Topology::random_connected(400, 6, seed);
        let (mean, rmr) = tree_depths(topology(), Duration::ZERO, 30);
        off += mean;
        assert!(rmr <= 0.05, "seed {seed}: rmr {rmr} without shortcuts");
        let window = PlumtreeConfig::default().shortcut_window;
        let (mean, rmr) = tree_depths(topology(), window, 30);
        on += mean;
        assert!(rmr <= 0.05, "seed {seed}: rmr {rmr} with shortcuts");
    }
    // Measured: 53.7 against 64.1 hops over the six graphs.
    assert!(on < 0.92 * off, "{on} hops with shortcuts, {off} without");
}

/// A plumtree node with plumtree peers `first`, `short` and `other` (all eager), that
/// got message `m` from `first` at round 5 at `t0`; with shortcuts taken within
/// `window`.
fn node_that_got_m_from_first(window: Duration) -> (Node, Instant, [PeerId; 3]) {
    let t0 = Instant::now();
    let config = Config {
        plumtree: Some(PlumtreeConfig {
            shortcut_window: window,
            ..PlumtreeConfig::default()
        }),
        ..Config::default()
    };
    let mut node = Node::new(config).unwrap();
    let peers = [PeerId(1), PeerId(2), PeerId(3)];
    for (peer, node_id) in peers.into_iter().zip([7, 8, 9]) {
        node.plumtree_peer_connected(t0, peer, Direction::Inbound, node_id);
    }
    node.handle_received(t0, peers[0], &gossip_frames(&[b"m"], 5));
    let actions: Vec<Action> = node.drain_actions().collect();
    assert_eq!(sent_to(&actions, peers[1]), (gossip_frames(&[b"m"], 6), 1));
    (node, t0, peers)
}

#[test]
fn a_duplicate_two_rounds_shorter_soon_after_the_first_copy_is_taken_as_a_shortcut() {
    let window = PlumtreeConfig::default().shortcut_window;
    let (mut node, t0, [first, short, other]) = node_that_got_m_from_first(window);

    // `short` sends `m` two rounds closer to its origin, at the end of the window: it
    // becomes this node's link (told by an empty Graft, as it prunes this node on the
    // copy it was sent), and `first` is pruned.
    node.handle_received(t0 + window, short, &gossip_frames(&[b"m"], 3));
    let actions: Vec<Action> = node.drain_actions().collect();
    assert_eq!(sent_to(&actions, short), (wire::graft(None).to_vec(), 1));
    assert_eq!(sent_to(&actions, first), (wire::prune().to_vec(), 1));
    let stats = node.stats();
    assert_eq!((stats.shortcuts, stats.prunes_sent), (1, 1));

    // The Prune `short` sent for that copy is stale: it stays eager.
    node.handle_received(t0 + window, short, &wire::prune());
    node.handle_received(t0 + window, other, &gossip_frames(&[b"n"], 2));
    let actions: Vec<Action> = node.drain_actions().collect();
    assert_eq!(sent_to(&actions, short), (gossip_frames(&[b"n"], 3), 1));
    assert_eq!(sent_to(&actions, first).1, 0, "first is lazy");

    // A later Prune counts.
    node.handle_received(t0 + window, short, &wire::prune());
    node.handle_received(t0 + window, other, &gossip_frames(&[b"o"], 2));
    let actions: Vec<Action> = node.drain_actions().collect();
    assert_eq!(sent_to(&actions, short).1, 0, "short is lazy now");

    // A connection is taken as a shortcut once: a peer echoing every message back as
    // if from its origin would otherwise have the node prune its links again and again.
    node.handle_received(t0 + window, short, &wire::graft(None));
    node.handle_received(t0 + window, other, &gossip_frames(&[b"p"], 5));
    let actions: Vec<Action> = node.drain_actions().collect();
    assert_eq!(sent_to(&actions, short), (gossip_frames(&[b"p"], 6), 1));
    node.handle_received(t0 + window, short, &gossip_frames(&[b"p"], 0));
    let actions: Vec<Action> = node.drain_actions().collect();
    assert_eq!(sent_to(&actions, short), (wire::prune().to_vec(), 1));
    assert_eq!(sent_to(&actions, other).1, 0, "other stays the link");
    assert_eq!(node.stats().shortcuts, 1);
}

#[test]
fn a_duplicate_one_round_shorter_or_after_the_window_is_pruned() {
    let window = PlumtreeConfig::default().shortcut_window;
    let cases = [
        ("one round shorter", window, 4, Duration::ZERO),
        (
            "after the window",
            window,
            3,
            window + Duration::from_nanos(1),
        ),
        ("shortcuts off", Duration::ZERO, 3, Duration::ZERO),
    ];
    for (case, window, round, after) in cases {
        let (mut node, t0, [first, short, _]) = node_that_got_m_from_first(window);
        node.handle_received(t0 + after, short, &gossip_frames(&[b"m"], round));
        let actions: Vec<Action> = node.drain_actions().collect();
        assert_eq!(
            sent_to(&actions, short),
            (wire::prune().to_vec(), 1),
            "{case}"
        );
        assert_eq!(sent_to(&actions, first).1, 0, "{case}");
        assert_eq!(node.stats().shortcuts, 0, "{case}");
    }
}
