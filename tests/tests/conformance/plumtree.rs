//! `plumtree` over TCP on every runtime: negotiation with plain peers, one connection
//! per node, repair after a restart.

use std::collections::BTreeSet;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use gossip_core::frame::encode;
use gossip_core::plumtree::wire::PREAMBLE_LEN;
use gossip_core::plumtree::PlumtreeConfig;
use gossip_core::Config;
use gossip_tests::{config as net_config, eventually, RawPeer, Starter, WAIT};

use super::{expect_message, shutdown, start};

/// Default settings with plumtree on (node ids drawn at start).
pub(super) fn config() -> Config {
    Config {
        plumtree: Some(PlumtreeConfig::default()),
        ..Config::default()
    }
}

/// A plumtree node dials a flood node, which a plumtree node dials: the flood node
/// drops the first on its preamble (an oversized frame) and is dialled again plain;
/// it dials the second plain. Messages cross the line both ways.
pub(super) fn line_with_a_flood_node_in_the_middle(starters: &[Starter]) {
    let mut flood = start(starters, 0, net_config([]));
    let mut left = start(starters, 1, net_config([flood.addr()]).with_core(config()));
    let mut right = start(starters, 2, net_config([]).with_core(config()));
    flood.dial(right.addr());
    for (node, degree) in [(&left, 1), (&flood, 2), (&right, 1)] {
        assert!(node.wait_for_peers(degree, WAIT), "line not connected");
    }
    eventually("the flood node to have both", || {
        flood.stats().peers_current == 2
    });
    left.publish(b"left to right");
    expect_message(&mut flood, b"left to right");
    expect_message(&mut right, b"left to right");
    right.publish(b"right to left");
    expect_message(&mut flood, b"right to left");
    expect_message(&mut left, b"right to left");
    assert_eq!(left.stats().protocol_errors, 0);
    shutdown(vec![left, flood, right]);
}

/// Two plumtree nodes that dial each other end with one connection (the one dialled by
/// the lower node id), and messages flow over it.
pub(super) fn nodes_that_dial_each_other_keep_one_connection(starters: &[Starter]) {
    let mut a = start(starters, 0, net_config([]).with_core(config()));
    let mut b = start(starters, 1, net_config([a.addr()]).with_core(config()));
    a.dial(b.addr());
    assert!(a.wait_for_peers(1, WAIT) && b.wait_for_peers(1, WAIT));
    eventually("one connection between them", || {
        let (sa, sb) = (a.stats(), b.stats());
        let dropped = sa.same_node_disconnects + sb.same_node_disconnects;
        sa.peers_current == 1 && sb.peers_current == 1 && dropped >= 1
    });
    a.publish(b"over the one link");
    expect_message(&mut b, b"over the one link");
    b.publish(b"and back");
    expect_message(&mut a, b"and back");
    // Still one: the dialler whose connection was dropped waits its longest delay.
    assert_eq!(a.stats().peers_current, 1);
    shutdown(vec![a, b]);
}

/// A line A - B - C of plumtree nodes: B is stopped, A publishes, B starts again (empty,
/// at the same address): when A's dialler reconnects, A announces its cache, B grafts
/// what it missed and passes it on to C.
pub(super) fn repairs_what_a_restarted_node_missed(starters: &[Starter]) {
    let mut middle = start(starters, 1, net_config([]).with_core(config()));
    let middle_addr = middle.addr();
    let a = start(starters, 0, net_config([middle_addr]).with_core(config()));
    let mut c = start(starters, 2, net_config([middle_addr]).with_core(config()));
    assert!(middle.wait_for_peers(2, WAIT));
    a.publish(b"before");
    expect_message(&mut middle, b"before");
    expect_message(&mut c, b"before");
    middle.shutdown();
    eventually("A and C to see B gone", || {
        a.stats().peers_current == 0 && c.stats().peers_current == 0
    });
    for n in 0..5 {
        a.publish(format!("while B was down {n}").as_bytes());
    }
    let mut restarted = net_config([]).with_core(config());
    restarted.listen = middle_addr;
    let mut middle = start(starters, 1, restarted);
    assert!(middle.wait_for_peers(2, WAIT), "A and C redial B");
    let missed: BTreeSet<Vec<u8>> = (0..5)
        .map(|n| format!("while B was down {n}").into_bytes())
        .collect();
    // The restarted B remembers nothing: it gets "before" again too (C does not).
    let mut got = BTreeSet::new();
    while !missed.is_subset(&got) {
        got.insert(middle.recv(WAIT).expect("B gets what it missed"));
    }
    let at_c: BTreeSet<Vec<u8>> = (0..5).map(|_| c.recv(WAIT).expect("C too")).collect();
    assert_eq!(at_c, missed);
    assert!(middle.stats().repairs >= 5, "{:?}", middle.stats());
    shutdown(vec![a, middle, c]);
}

/// A plumtree node waits up to `preamble_timeout` to learn whether a connection speaks
/// plumtree; a tutorial node that only listens says nothing, and one it dials answers
/// nothing. Either way the tutorial node gets what was published meanwhile, from the
/// cache, once it is known to be plain.
pub(super) fn plain_peers_miss_nothing_while_their_protocol_is_settled(starters: &[Starter]) {
    // Accepted: `silent` only listens. `talker` connects after it and writes at once,
    // so once the core knows `talker`, `silent`'s connection is open and waiting. The
    // test waits the timeout out; no peer here speaks plumtree, so a short one takes
    // no plumtree peer for plain (and if `silent` were settled before the publish, it
    // would get both messages all the same).
    let mut quick = net_config([]).with_core(config());
    quick.preamble_timeout = Duration::from_millis(300);
    let ours = start(starters, 0, quick);
    let mut silent = RawPeer::connect(ours.addr());
    let mut talker = RawPeer::connect(ours.addr());
    talker.send(&encode(b"from the talker"));
    assert!(ours.wait_for_peers(1, WAIT));
    ours.publish(b"while the listener is unknown");
    assert_eq!(talker.read_frame(), b"while the listener is unknown");
    assert_eq!(silent.read_frame(), b"from the talker");
    assert_eq!(silent.read_frame(), b"while the listener is unknown");
    ours.shutdown();

    // Dialled: the first connection gets the preamble and stays silent, as a tutorial
    // node waiting for a 4 GB frame does; the plain redial gets what came meanwhile.
    // The suite's long preamble timeout keeps the publish well before the redial.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let peer = listener.local_addr().expect("addr");
    let ours = start(starters, 1, net_config([peer]).with_core(config()));
    let mut unanswered = accept_within_wait(&listener);
    unanswered.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut preamble = [0u8; PREAMBLE_LEN];
    unanswered.read_exact(&mut preamble).expect("the preamble");
    ours.publish(b"while the preamble is unanswered");
    let mut redial = RawPeer::from(accept_within_wait(&listener));
    assert_eq!(redial.read_frame(), b"while the preamble is unanswered");
    assert_eq!(ours.stats().messages_caught_up, 1);
    drop(unanswered);
    ours.shutdown();
}

/// The next connection `listener` accepts; fails the test after `WAIT`.
fn accept_within_wait(listener: &TcpListener) -> TcpStream {
    let listener = listener.try_clone().expect("clone the listener");
    let (accepted, accepted_rx) = mpsc::channel();
    thread::spawn(move || accepted.send(listener.accept()));
    let (stream, _) = accepted_rx
        .recv_timeout(WAIT)
        .expect("a connection within WAIT")
        .expect("accept");
    stream
}
