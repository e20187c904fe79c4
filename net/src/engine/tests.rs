//! The engine against connections that record what it asks of them.

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
fn plumtree_engine(direction: Direction) -> (Engine<Recorder>, Rc<RefCell<Log>>, Instant, Instant) {
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
    let closed = |logs: &[Rc<RefCell<Log>>]| logs.iter().filter(|l| l.borrow().closed > 0).count();
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
