//! Flow control under overload, in the simulator: links of limited bandwidth, queues a
//! few frames deep, several publishers publishing everything at once. With the default
//! policy (reading pauses instead of shedding) nothing may be lost.

use std::time::Duration;

use gossip_core::plumtree::PlumtreeConfig;
use gossip_core::sim::{Churn, SimConfig, Simulation, Topology};
use gossip_core::{Config, QUEUED_FRAME_OVERHEAD};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

mod common;
use common::cases;

const PAYLOAD: usize = 100;
/// What one queued frame is charged.
const FRAME_CHARGE: usize = PAYLOAD + 4 + QUEUED_FRAME_OVERHEAD;
/// Each peer's queue holds four frames.
const PEER_BUDGET: usize = 4 * FRAME_CHARGE;
/// The total holds sixteen peers' budgets, as by default (4 MiB and 64 MiB).
const TOTAL_BUDGET: usize = 16 * PEER_BUDGET;

/// A plumtree cache that holds about 25 messages of `PAYLOAD` bytes.
const SMALL_CACHE: usize = 8 << 10;

/// A plumtree node's queue budget: the least that holds its largest frame (a full
/// IHave), and then some.
const PLUMTREE_PEER_BUDGET: usize = 24 << 10;

/// Lines, trees, rings, cliques and random graphs, small enough to run many.
fn topology() -> impl Strategy<Value = Topology> {
    prop_oneof![
        (2usize..=12).prop_map(Topology::line),
        (2usize..=12).prop_map(Topology::star),
        (3usize..=12).prop_map(Topology::ring),
        (3usize..=7).prop_map(Topology::clique),
        (4usize..=16, 2usize..=4, any::<u64>())
            .prop_map(|(n, d, seed)| Topology::random_connected(n, d, seed)),
    ]
}

/// 100 KB/s links, 1–5 ms latency, reads of up to `max_read` bytes, queues of four
/// frames of which two go on the link at a time.
fn overloaded(seed: u64, max_read: usize) -> SimConfig {
    SimConfig {
        seed,
        node: Config {
            max_frame_len: PAYLOAD,
            max_outbound_peers: 64,
            max_inbound_peers: 64,
            peer_queue_bytes: PEER_BUDGET,
            total_queue_bytes: TOTAL_BUDGET,
            // Two frames on a link, the rest kept back in the node (where copies a
            // peer sends itself are dropped): about a round trip's worth at 100 KB/s.
            send_ahead_bytes: 2 * FRAME_CHARGE,
            ..Config::default()
        },
        latency: (Duration::from_millis(1), Duration::from_millis(5)),
        jitter: Duration::from_millis(1),
        max_read,
        bandwidth: Some(100_000),
        ..SimConfig::default()
    }
}

/// The same with plumtree, and queues of `PLUMTREE_PEER_BUDGET`: a queue must hold the
/// largest plumtree frame (a full IHave, 18,501 bytes).
fn overloaded_plumtree(seed: u64, max_read: usize) -> SimConfig {
    let mut config = overloaded(seed, max_read);
    config.node.plumtree = Some(PlumtreeConfig::default());
    config.node.peer_queue_bytes = PLUMTREE_PEER_BUDGET;
    config.node.total_queue_bytes = 16 * PLUMTREE_PEER_BUDGET;
    config
}

/// Publishes `messages` numbered payloads of `PAYLOAD` bytes from each of `publishers`
/// (the `p`th one's filled with `p`), all at once.
fn publish_from(sim: &mut Simulation, publishers: &[prop::sample::Index], messages: usize) {
    let nodes = sim.len();
    for (p, publisher) in publishers.iter().enumerate() {
        let origin = publisher.index(nodes);
        for m in 0..messages {
            let mut payload = vec![p as u8; PAYLOAD];
            payload[..8].copy_from_slice(&(m as u64).to_le_bytes());
            sim.publish(origin, payload).unwrap();
        }
    }
}

/// Runs `sim` until it falls quiet, checking after every 5 ms of virtual time that no
/// node queues more than its budgets: its total, its delivery queue, and each peer's
/// own queue until the node first escapes a stall or takes a message from a peer held
/// too long (either lets peer queues grow until the total is full).
fn run_within_budgets(sim: &mut Simulation) -> Result<(), TestCaseError> {
    let mut quiet = false;
    while !quiet {
        quiet = sim.run_for(Duration::from_millis(5));
        prop_assert!(
            sim.elapsed() < Duration::from_secs(600),
            "still busy after 600 s"
        );
        for i in 0..sim.len() {
            let node = sim.node(i).unwrap();
            let (config, stats) = (node.config(), node.stats());
            // A lazy round of an escape may pass the total by a peer budget.
            let allowance = match stats.lazy_escapes {
                0 => 0,
                _ => config.peer_queue_bytes,
            };
            prop_assert!(
                stats.queued_bytes <= config.total_queue_bytes + allowance,
                "node {} queued {}",
                i,
                stats.queued_bytes
            );
            prop_assert!(stats.delivery_queued_bytes <= config.delivery_queue_bytes);
            if stats.stall_escapes == 0 && stats.held_peer_escapes == 0 {
                for (peer, peer_stats) in node.peers() {
                    prop_assert!(
                        peer_stats.queued_bytes <= config.peer_queue_bytes,
                        "node {} queued {} for {:?}",
                        i,
                        peer_stats.queued_bytes,
                        peer
                    );
                }
            }
        }
    }
    Ok(())
}

/// Fails unless every message reached every node exactly once, nobody was cut, nothing
/// was shed, and no node is still congested.
fn nothing_lost_shed_or_cut(sim: &Simulation) -> Result<(), TestCaseError> {
    let report = sim.report();
    prop_assert_eq!(report.disconnects, 0);
    prop_assert!(report.all_delivered_exactly_once());
    for i in 0..sim.len() {
        let stats = sim.node(i).unwrap().stats();
        prop_assert_eq!(stats.frames_shed, 0);
        prop_assert!(!stats.congested);
        // Everything came, so nothing counts as missed, however many ids were given up.
        prop_assert_eq!(stats.messages_missed, 0);
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(64))]

    /// Every message reaches every node exactly once, nothing is shed or cut, the
    /// network falls quiet, and no queue ever passes its budget (see
    /// `run_within_budgets`).
    #[test]
    fn flow_control_loses_nothing_at_full_speed(
        topology in topology(),
        seed in any::<u64>(),
        max_read in 1usize..600,
        publishers in prop::collection::vec(any::<prop::sample::Index>(), 1..4),
        messages in 10usize..60,
    ) {
        let mut sim = Simulation::new(topology, overloaded(seed, max_read));
        publish_from(&mut sim, &publishers, messages);
        run_within_budgets(&mut sim)?;
        nothing_lost_shed_or_cut(&sim)?;
    }

    /// The same with plumtree between the nodes (some nodes plain, so both kinds of
    /// link and the framing between them are under pressure): the tree forms, lazy
    /// peers are announced to and graft while links are slow and queues full, and still
    /// every message reaches every node exactly once, nothing is shed or cut, and no
    /// queue passes its budget.
    #[test]
    fn plumtree_flow_control_loses_nothing_at_full_speed(
        topology in topology(),
        seed in any::<u64>(),
        max_read in 1usize..600,
        plain in prop::collection::vec(any::<prop::sample::Index>(), 0..3),
        publishers in prop::collection::vec(any::<prop::sample::Index>(), 1..4),
        messages in 100usize..400,
    ) {
        let nodes = topology.nodes();
        let mut config = overloaded_plumtree(seed, max_read);
        config.plain_nodes = plain.iter().map(|i| i.index(nodes)).collect();
        let mut sim = Simulation::new(topology, config);
        // More messages than the flood case: the queues are larger.
        publish_from(&mut sim, &publishers, messages);
        run_within_budgets(&mut sim)?;
        nothing_lost_shed_or_cut(&sim)?;
    }

    /// The same with caches that hold about 25 messages, far fewer than are in flight:
    /// lazy peers graft messages long after they were announced, from caches that have
    /// turned over many times since. A node keeps what it announced until the peer has
    /// it, and sends it whole when it must let it go (`Promises`), so nothing is lost.
    #[test]
    fn plumtree_with_small_caches_loses_nothing_at_full_speed(
        topology in topology(),
        seed in any::<u64>(),
        max_read in 1usize..600,
        publishers in prop::collection::vec(any::<prop::sample::Index>(), 1..4),
        messages in 100usize..400,
    ) {
        let mut config = overloaded_plumtree(seed, max_read);
        config.node.plumtree.as_mut().expect("plumtree").cache_bytes = SMALL_CACHE;
        let mut sim = Simulation::new(topology, config);
        publish_from(&mut sim, &publishers, messages);
        run_within_budgets(&mut sim)?;
        nothing_lost_shed_or_cut(&sim)?;
    }

    /// With plumtree, links cut while full queues drain, and back 300 ms later: what
    /// the cut connections held is repaired from the caches, through queues that are
    /// full, so every message still reaches every node exactly once.
    #[test]
    fn plumtree_repairs_through_full_queues(
        topology in topology(),
        seed in any::<u64>(),
        max_read in prop_oneof![Just(usize::MAX), 1usize..600],
        publishers in prop::collection::vec(any::<prop::sample::Index>(), 1..4),
        messages in 50usize..200,
        cut in 0.0f64..0.5,
    ) {
        let nodes = topology.nodes();
        let mut sim = Simulation::new(topology, overloaded_plumtree(seed, max_read));
        // The tree forms first.
        sim.publish(0, &b"first"[..]).unwrap();
        sim.run_for(Duration::from_millis(100));
        publish_from(&mut sim, &publishers, messages);
        sim.run_for(Duration::from_millis(50));
        sim.cut_links(cut, Duration::from_millis(300));
        prop_assert!(sim.run_until_quiet());
        let report = sim.report();
        for message in &report.messages {
            prop_assert_eq!(message.reached, nodes, "{:?}", message);
            prop_assert_eq!(message.delivered_again, 0, "{:?}", message);
        }
    }
}

proptest! {
    #![proptest_config(cases(64))]

    /// With plumtree, nodes crash and restart empty while every queue is full and
    /// grafts wait for room: once the churn stops, every message that a node which
    /// never crashed has reaches every node, the restarted ones by repair from their
    /// neighbours' caches (through the same full queues). (Under overload a message
    /// can also die with every node that had it, all crashed.)
    #[test]
    fn plumtree_repairs_through_churn_under_overload(
        topology in topology(),
        seed in any::<u64>(),
        max_read in 1usize..600,
        publishers in prop::collection::vec(any::<prop::sample::Index>(), 1..4),
        messages in 50usize..200,
    ) {
        let nodes = topology.nodes();
        let mut config = overloaded_plumtree(seed, max_read);
        config.churn = Some(Churn {
            mean_interval: Duration::from_millis(300),
            downtime: Duration::from_millis(100),
        });
        let mut sim = Simulation::new(topology, config);
        publish_from(&mut sim, &publishers, messages);
        sim.run_for(Duration::from_secs(1));
        sim.stop_churn();
        prop_assert!(sim.run_until_quiet());
        let has = |i: usize, id| sim.node(i).is_some_and(|node| node.has_seen_id(id) == Some(true));
        for message in &sim.report().messages {
            if (0..nodes).any(|i| sim.crashes(i) == 0 && has(i, &message.id)) {
                for i in 0..nodes {
                    prop_assert!(has(i, &message.id), "node {} lacks {:?}", i, message);
                }
            }
        }
    }
}

/// Clients attached to nodes `at` (raw peers) write `messages` numbered frames each, as
/// fast as their node reads them (a TCP writer whose window closes while the node
/// pauses it). Returns how many frames they wrote in all.
fn inject_at_full_speed(sim: &mut Simulation, at: &[usize], messages: usize) -> usize {
    let clients: Vec<usize> = at.iter().map(|&node| sim.attach_raw_peer(node)).collect();
    let mut written = vec![0; clients.len()];
    // Bounded: a client its node never reads again stops the loop after 60 s.
    for _ in 0..300_000 {
        if written.iter().all(|&n| n == messages) {
            break;
        }
        for (c, &client) in clients.iter().enumerate() {
            if written[c] < messages && sim.raw_peer_is_read(client) {
                let mut frame = (PAYLOAD as u32).to_be_bytes().to_vec();
                frame.extend_from_slice(&[c as u8 + 1; 8]);
                frame.extend_from_slice(&(written[c] as u64).to_le_bytes());
                frame.resize(4 + PAYLOAD, 0);
                sim.send_raw(client, &frame);
                written[c] += 1;
            }
        }
        sim.run_for(Duration::from_micros(200));
    }
    written.iter().sum()
}

proptest! {
    #![proptest_config(cases(64))]

    /// Clients that write at full speed into several nodes of a network with cycles
    /// (plain peers, as the tutorial node is): every frame reaches every node once,
    /// with nobody cut. Nodes around a cycle wait on each other and escape the stall
    /// by rounds (see `flow.rs`); a round takes only from the peers a node waits on if
    /// it holds a message from one, so clients, whose queues move, are read only while
    /// the node is not full. In 3,000 generated cases: 10 failed with escape rounds of
    /// half a budget per peer, 7 with rounds shared among the peers (session 9; 3 of
    /// them without a cut: a triangle of clients crawled at one message per escape
    /// round, past this test's 60 s), none of 10,000 with rounds only from peers
    /// waited on (session 10). Local publishers never reach it: a congested node
    /// refuses them, escape or not.
    #[test]
    fn clients_writing_at_full_speed_into_a_cycle_lose_nothing(case in clients_case()) {
        let run = run_clients_with(case, overloaded);
        prop_assert!(run.quiet);
        prop_assert_eq!(run.written, run.wanted, "a client was never read again");
        prop_assert_eq!(run.disconnects, 0);
        prop_assert_eq!(run.nodes_short, 0, "nodes that missed messages");
    }
}

/// A case of clients writing at full speed into a network: the topology, the
/// simulator's seed and largest read, the nodes they write into, and how many frames
/// each writes.
type ClientsCase = (Topology, u64, usize, Vec<prop::sample::Index>, usize);

fn clients_case() -> impl Strategy<Value = ClientsCase> {
    (
        topology(),
        any::<u64>(),
        1usize..600,
        prop::collection::vec(any::<prop::sample::Index>(), 1..4),
        100usize..400,
    )
}

/// What a run of a [`ClientsCase`] came to.
#[derive(Debug)]
struct ClientsRun {
    quiet: bool,
    written: usize,
    wanted: usize,
    disconnects: u64,
    /// Nodes that did not deliver every frame written.
    nodes_short: usize,
    /// Plumtree: grafts and prunes sent, summed over the nodes.
    grafts_and_prunes: (u64, u64),
    /// Plumtree: lazy rounds of stall escapes, summed over the nodes.
    lazy_escapes: u64,
}

impl ClientsRun {
    fn lost_nothing(&self) -> bool {
        self.quiet && self.written == self.wanted && self.disconnects == 0 && self.nodes_short == 0
    }
}

fn run_clients_with(
    (topology, seed, max_read, at, messages): ClientsCase,
    configure: fn(u64, usize) -> SimConfig,
) -> ClientsRun {
    let nodes = topology.nodes();
    let sim = Simulation::new(topology, configure(seed, max_read));
    let at: Vec<usize> = at.iter().map(|i| i.index(nodes)).collect();
    run_clients_in(sim, &at, messages)
}

/// Clients at nodes `at` of `sim` write `messages` frames each at full speed; then the
/// network runs until it falls quiet.
fn run_clients_in(mut sim: Simulation, at: &[usize], messages: usize) -> ClientsRun {
    let written = inject_at_full_speed(&mut sim, at, messages);
    let quiet = sim.run_until_quiet();
    let delivered = |i| sim.node(i).unwrap().stats().messages_delivered;
    ClientsRun {
        quiet,
        written,
        wanted: at.len() * messages,
        disconnects: sim.report().disconnects,
        nodes_short: (0..sim.len())
            .filter(|&i| delivered(i) != written as u64)
            .count(),
        grafts_and_prunes: (0..sim.len())
            .map(|i| sim.node(i).unwrap().stats())
            .fold((0, 0), |(g, p), s| (g + s.grafts_sent, p + s.prunes_sent)),
        lazy_escapes: (0..sim.len())
            .map(|i| sim.node(i).unwrap().stats().lazy_escapes)
            .sum(),
    }
}

/// Plumtree nodes in a clique of eight, a client writing at full speed into each:
/// nobody is cut. In these two seeds nodes cut two links each (as in 4 of the first
/// 20) while a peer whose queue from them moved was never taken from: it was a node
/// waiting on them, and cut them as slow (see `flow::hold_limit`). About 12 s.
#[test]
fn a_plumtree_clique_with_a_client_at_every_node_cuts_no_one() {
    for seed in [0, 10] {
        let run = plumtree_clique_with_clients(8, seed);
        assert!(run.lost_nothing(), "seed {seed}: {run:?}");
    }
}

/// A clique of `nodes` plumtree nodes (`overloaded_plumtree`, reads of a size set by
/// `seed`) with a client writing 600 frames at full speed into every node.
fn plumtree_clique_with_clients(nodes: usize, seed: u64) -> ClientsRun {
    let config = overloaded_plumtree(seed, 1 + (seed as usize * 7919) % 600);
    let sim = Simulation::new(Topology::clique(nodes), config);
    run_clients_in(sim, &(0..nodes).collect::<Vec<_>>(), 600)
}

/// The same in a clique of twelve, where the totals fill: every node's total held its
/// budget, all its sockets were paused, and escape rounds, with no room, took nothing
/// until the slow-peer rule cut links. Without lazy rounds (`flow::lazy_round`) these
/// seeds cut 6 and 8 links (and, before a peer held too long got what was read after
/// its held message taken, seed 33 left every node short of a client's messages); with
/// lazy rounds that sent their messages whole to eager peers, announcing them to none,
/// the clique still cut links. About 2 s a seed.
#[test]
fn a_plumtree_clique_of_twelve_whose_totals_fill_cuts_no_one() {
    for seed in [23, 31] {
        let run = plumtree_clique_with_clients(12, seed);
        assert!(run.lost_nothing(), "seed {seed}: {run:?}");
        assert!(
            run.lazy_escapes > 0,
            "seed {seed}: the totals filled: {run:?}"
        );
    }
}

/// Not a test: a measurement. Runs `CASES` (default 3,000) cases of the property above
/// from proptest's deterministic seed, so that two builds meet the same cases, and
/// prints each failing case, then how many failed and how many links were cut in all
/// (session 9: 10 / 94 before the two escape fixes, 7 / 10 after; session 10, rounds
/// only from peers waited on: 0 / 0, and 0 of 10,000 cases). Run with
/// `CASES=3000 cargo test --release -p gossip-core --test flow_control
/// count_cycle_failures -- --ignored --nocapture` (about 45 s); with `PLUMTREE` set, the
/// nodes speak plumtree (session 14: 0 of 3,000 failed, none cut).
#[test]
#[ignore = "a measurement, not a test"]
fn count_cycle_failures() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let cases: usize = std::env::var("CASES").map_or(3000, |v| v.parse().expect("a count"));
    let strategy = clients_case();
    let mut runner = TestRunner::deterministic();
    let (mut failed, mut cut) = (0, 0);
    for number in 0..cases {
        let case = strategy.new_tree(&mut runner).expect("a case").current();
        let described = format!("{case:?}");
        let configure = match std::env::var_os("PLUMTREE") {
            Some(_) => overloaded_plumtree,
            None => overloaded,
        };
        let run = run_clients_with(case, configure);
        cut += run.disconnects;
        if !run.lost_nothing() {
            failed += 1;
            let (written, wanted, disconnects) = (run.written, run.wanted, run.disconnects);
            println!(
                "case {number}: {written} of {wanted} written, {disconnects} cut: {described}"
            );
        }
    }
    println!("{failed} of {cases} cases failed; {cut} links cut in all");
}

/// Cases of the property above that failed before. The first two cut links before
/// escape rounds were shared among the peers and went on while the total was marked
/// full but had room (session 9; 14 and 192 of the generated 3,000): three clients
/// each, a random graph of 14 nodes with cycles. In the first the clients' share of
/// each round piled up in the queue towards the stalled next node of a cycle until
/// every total around it was full; in the second the totals around a cycle stayed
/// marked full and nobody escaped. The last two failed while escape rounds took from
/// every peer, clients included (session 10; 791 and 1432 of the 3,000): a triangle
/// with a client at each node crawled at a round per `stall_escape` and did not get
/// its messages written within the bound, and a graph of 14 nodes had 6 links cut.
#[test]
fn clients_writing_at_full_speed_into_cycles_that_used_to_cut_links() {
    /// One generated case: the graph, the nodes a client writes into, the simulator's
    /// seed and largest read, and how many messages each client writes.
    struct Case {
        nodes: usize,
        edges: &'static [(usize, usize)],
        clients: [usize; 3],
        seed: u64,
        max_read: usize,
        messages: usize,
    }
    #[rustfmt::skip]
    let cases = [
        Case {
            nodes: 14,
            edges: &[
                (0, 1), (1, 2), (0, 3), (0, 4), (0, 5), (5, 6), (2, 7), (1, 8), (8, 9),
                (5, 10), (2, 11), (6, 12), (8, 13), (0, 6), (1, 10), (1, 6), (9, 10),
                (2, 5), (3, 4), (6, 7), (3, 8),
            ],
            clients: [6, 13, 9], seed: 16290108965445070833, max_read: 432, messages: 371,
        },
        Case {
            nodes: 14,
            edges: &[
                (0, 1), (1, 2), (2, 3), (1, 4), (3, 5), (3, 6), (0, 7), (4, 8), (0, 9),
                (7, 10), (5, 11), (3, 12), (7, 13), (3, 10), (5, 9), (2, 5), (1, 5),
                (1, 10), (9, 11), (3, 7), (7, 11),
            ],
            clients: [12, 5, 13], seed: 15603345660831044312, max_read: 125, messages: 273,
        },
        Case {
            nodes: 3,
            edges: &[(0, 1), (1, 2), (0, 2)],
            clients: [0, 1, 2], seed: 9682242919526488242, max_read: 41, messages: 270,
        },
        Case {
            nodes: 14,
            edges: &[
                (0, 1), (0, 2), (1, 3), (2, 4), (0, 5), (3, 6), (2, 7), (0, 8), (0, 9),
                (4, 10), (8, 11), (9, 12), (4, 13), (2, 10), (4, 11), (5, 8), (6, 11),
                (10, 12), (3, 4), (1, 10), (3, 10), (0, 6), (1, 6), (3, 9), (4, 9),
                (2, 11), (7, 9), (2, 3),
            ],
            clients: [11, 1, 13], seed: 14031495821891491284, max_read: 185, messages: 342,
        },
    ];
    for case in cases {
        let mut topology = Topology::empty(case.nodes);
        for &(a, b) in case.edges {
            topology.add_edge(a, b);
        }
        let mut sim = Simulation::new(topology, overloaded(case.seed, case.max_read));
        let written = inject_at_full_speed(&mut sim, &case.clients, case.messages);
        assert!(sim.run_until_quiet());
        assert_eq!(written, 3 * case.messages, "seed {}", case.seed);
        assert_eq!(sim.report().disconnects, 0, "seed {}", case.seed);
        for i in 0..case.nodes {
            assert_eq!(
                sim.node(i).unwrap().stats().messages_delivered,
                written as u64
            );
        }
    }
}

/// **#11/#14's plumtree gap, closed.** Every node of a clique publishes at full speed
/// and the caches hold about 25 messages: eager copies come later than the graft
/// timeout, announced messages are grafted long after the announcers' caches turned
/// over. Before promises (session 11) every seed lost messages (seeds 1-5: 87-525 of
/// the 3,600 deliveries each); now a message announced and not yet shown to be had is sent whole when
/// its cache lets it go, and everything arrives.
#[test]
fn plumtree_with_small_caches_loses_nothing_under_overload() {
    let (nodes, messages) = (4, 300);
    for seed in 1..=5 {
        let mut sim = small_cache_clique(seed, nodes, messages);
        assert!(sim.run_until_quiet());
        assert!(sim.report().all_delivered_exactly_once(), "seed {seed}");
        let kept: u64 = (0..nodes)
            .map(|i| sim.node(i).unwrap().stats().promises_kept)
            .sum();
        assert!(kept > 0, "seed {seed}: no cache let a promised message go");
    }
}

/// A clique of `nodes` plumtree nodes under overload (simulator seed `seed`) whose
/// caches hold about 25 messages, each publishing `messages` at full speed.
fn small_cache_clique(seed: u64, nodes: usize, messages: usize) -> Simulation {
    let mut config = overloaded_plumtree(seed, 100);
    let plumtree = config.node.plumtree.as_mut().expect("plumtree");
    plumtree.cache_bytes = SMALL_CACHE;
    let mut sim = Simulation::new(Topology::clique(nodes), config);
    for origin in 0..nodes {
        publish_burst(&mut sim, origin, messages);
    }
    sim
}

/// Publishes `messages` numbered payloads of `PAYLOAD` bytes at `origin`, all at once.
fn publish_burst(sim: &mut Simulation, origin: usize, messages: usize) {
    for m in 0..messages {
        let mut payload = vec![origin as u8; PAYLOAD];
        payload[..8].copy_from_slice(&(m as u64).to_le_bytes());
        sim.publish(origin, payload).unwrap();
    }
}

proptest! {
    #![proptest_config(cases(64))]

    /// In a line (flood or plumtree), one node stops (as by SIGSTOP) while the first
    /// publishes at full speed: only the links to the stopped node are cut, and every
    /// node on the publisher's side of it gets every message. Its neighbour towards the publisher waits on it,
    /// then cuts it; the nodes further back wait on their neighbours in turn, but those
    /// keep taking bytes until the cut frees them, so none of them is cut.
    #[test]
    fn a_stopped_node_is_cut_alone(
        nodes in 3usize..10,
        stopped in any::<prop::sample::Index>(),
        seed in any::<u64>(),
        max_read in 1usize..600,
        messages in 50usize..200,
        plumtree in any::<bool>(),
    ) {
        let stopped = 1 + stopped.index(nodes - 1);
        let topology = Topology::line(nodes);
        // Plumtree's queues are larger: four times the messages fill them.
        let (config, messages) = match plumtree {
            true => (overloaded_plumtree(seed, max_read), 4 * messages),
            false => (overloaded(seed, max_read), messages),
        };
        let mut sim = Simulation::new(topology, config);
        sim.freeze(stopped);
        publish_burst(&mut sim, 0, messages);
        run_within_budgets(&mut sim)?;
        // Links are numbered along the line: the stopped node's are stopped - 1 and
        // stopped; only the one towards the publisher carries anything to it.
        prop_assert_eq!(sim.report().disconnects, 1);
        for i in 1..stopped {
            let stats = sim.node(i).unwrap().stats();
            prop_assert_eq!(stats.messages_delivered, messages as u64, "node {}", i);
            prop_assert_eq!(stats.slow_peer_disconnects, u64::from(i + 1 == stopped));
        }
        let publisher = sim.node(0).unwrap().stats();
        prop_assert_eq!(publisher.messages_published, messages as u64);
        prop_assert_eq!(publisher.slow_peer_disconnects, u64::from(stopped == 1));
    }
}

/// A link a node cut stays down, unless `SimConfig::redial_disconnects` brings it back
/// after `reconnect_after` as the runtimes' redial would: then a stopped node is cut,
/// comes back, is sent the next burst and is cut again.
#[test]
fn a_cut_link_comes_back_only_with_redial_disconnects() {
    const MESSAGES: usize = 100;
    for redial in [false, true] {
        let mut config = overloaded(3, 512);
        config.redial_disconnects = redial;
        let mut sim = Simulation::new(Topology::line(3), config);
        sim.freeze(2);
        publish_burst(&mut sim, 0, MESSAGES);
        sim.run_for(Duration::from_secs(15));
        assert_eq!(sim.report().disconnects, 1, "redial {redial}: cut once");
        // Past `reconnect_after`: the link is back if it is to come back.
        sim.run_for(Duration::from_secs(1));
        for m in MESSAGES..2 * MESSAGES {
            sim.publish(0, vec![m as u8; PAYLOAD]).unwrap();
        }
        sim.run_for(Duration::from_secs(15));
        let cuts = sim.report().disconnects;
        assert_eq!(cuts, 1 + u64::from(redial), "redial {redial}");
        let middle = sim.node(1).unwrap().stats();
        assert_eq!(middle.messages_delivered, 2 * MESSAGES as u64);
        assert_eq!(middle.slow_peer_disconnects, cuts);
    }
}

/// Twenty peers that never read fill the total before any one of them fills its own
/// queue (a small total: the copies of a message share its bytes, but each adds its
/// bookkeeping): all twenty are cut, judged by progress whichever budget they fill,
/// and the one peer that reads gets every message.
#[test]
fn twenty_stuck_peers_are_cut_and_a_reading_one_gets_everything() {
    const MESSAGES: usize = 400;
    let mut config = overloaded(7, 512);
    // 21 peers share a total of 64 frames: about 3 each when it fills, far from the
    // 16 a peer's own queue holds.
    config.node.peer_queue_bytes = 16 * FRAME_CHARGE;
    config.node.total_queue_bytes = 64 * FRAME_CHARGE;
    let mut sim = Simulation::new(Topology::star(22), config);
    for leaf in 1..=20 {
        sim.freeze(leaf);
    }
    publish_burst(&mut sim, 0, MESSAGES);
    assert!(sim.run_until_quiet());
    let hub = sim.node(0).unwrap().stats();
    assert_eq!(hub.slow_peer_disconnects, 20, "{hub:?}");
    assert_eq!(hub.messages_published, MESSAGES as u64);
    assert_eq!(hub.frames_shed, 0);
    let reader = sim.node(21).unwrap().stats();
    assert_eq!(reader.messages_delivered, MESSAGES as u64);
    assert_eq!(sim.report().disconnects, 20);
}

proptest! {
    #![proptest_config(cases(64))]

    /// Flood or plumtree, links of 10 KB/s, queues of 400 frames (2 s of draining from
    /// full to half) and
    /// a 1 s slow-peer timeout: queues stay full for longer than the timeout, but every
    /// peer keeps taking bytes, so none is cut and nothing is lost. (A peer is judged by
    /// progress, not by being behind.)
    #[test]
    fn a_peer_that_reads_slowly_is_never_cut(
        nodes in 2usize..5,
        seed in any::<u64>(),
        max_read in 1usize..600,
        plumtree in any::<bool>(),
    ) {
        const MESSAGES: usize = 800; // 83 KB: 8 s on the first link alone
        let mut config = match plumtree {
            true => overloaded_plumtree(seed, max_read),
            false => overloaded(seed, max_read),
        };
        config.bandwidth = Some(10_000);
        config.node.peer_queue_bytes = 400 * FRAME_CHARGE;
        config.node.total_queue_bytes = 16 * 400 * FRAME_CHARGE;
        config.node.slow_peer_timeout = Duration::from_secs(1);
        let mut sim = Simulation::new(Topology::line(nodes), config);
        publish_burst(&mut sim, 0, MESSAGES);
        prop_assert!(sim.run_until_quiet());
        let report = sim.report();
        prop_assert!(sim.elapsed() > Duration::from_secs(8));
        prop_assert_eq!(report.disconnects, 0);
        prop_assert!(report.all_delivered_exactly_once());
    }
}

/// Not a test: a measurement of what `clients_writing_at_full_speed_into_a_cycle_lose_nothing`
/// leaves out (its networks have up to three clients): a clique of `K` nodes (default
/// 6) with a client writing `MESSAGES` frames (default 600) at full speed into every
/// node, for `SEEDS` seeds (default 100); peer queues of `FRAMES` frames (default 4,
/// as above), the total `TOTAL` of them (default 16, as by default), `stall_escape`
/// of `STALL_MS` (default 200), flood or, with `PLUMTREE` set, plumtree. Prints each
/// run in which a client could not write everything within 60 s of virtual time, a
/// link was cut or a node missed a message, then how many. Measured (session 14):
/// flood crawls at about a message per peer per stall escape in cliques of 4 (72 of
/// 100 runs) and 6 (100 of 100; with queues of 128 frames too, not with 256), because
/// every node waits on every other; escapes every 20 ms let all of them through. When
/// the total charged every queued copy of a message in full, cliques of 8 cut links
/// (1,629 in 100 runs; with 256-frame queues 164 in 20; with 1,000-frame queues and
/// 8,000 frames a client, 38 in 4) and lost what was queued on them (28 runs; 1 of
/// the 4): the totals filled, escapes stopped, and the slow-peer rule ended the wait.
/// Since it counts a message's bytes once (`shared_runs`), cliques of 8 cut nothing;
/// cliques of 12 still cut (913 links in 20 runs, 9 short; 1,198 before): each copy
/// still counts its 64 bytes of bookkeeping, much of a 100-byte frame. Plumtree, which
/// sends each message once per node, cuts 2 links in 100 runs at 6 (none before), 34
/// at 8 (38) and 106 in 20 at 12 (431), and repairs what they carried. Run
/// with `K=8 cargo test --release -p gossip-core --test flow_control
/// count_clique_failures -- --ignored --nocapture` (about 5 s). Session 17, 40 seeds,
/// plumtree: at 12, 39 runs cut 543 links and 6 lost messages (one node had cut all
/// its peers) before a held peer got a message taken every quarter slow-peer timeout;
/// 15 runs and 150 links after, none short; at 10 (20 seeds) 10 runs and 30 links
/// before, none after; at 8, 4 of 20 before, none of 40 after. Flood at 12: 950 links
/// in 20 runs against 947. With `REDIAL` set, a link a node cut comes back
/// (`SimConfig::redial_disconnects`), as over TCP. Session 18, at 12: plumtree (40
/// seeds) 261 links in the same 15 runs, none short; flood (20 seeds) 2,066 links, 16
/// runs short (7 without). `SEND_AHEAD` sets `send_ahead_bytes` (two frames here, see
/// `overloaded`): with two frames, flood at 12 cut 931 links in 20 runs (7 short)
/// against 950 with nothing kept back; plumtree unchanged. Session 19, flood at 12,
/// seed 0, looked at second by second: from about 1 s to 10 s nothing moved at all.
/// Every node's total held about 13 messages (each charged 104 bytes once and 64 per
/// copy to eleven peers, 808 bytes, against a total of 10,752), all eleven of its
/// queues were past their budgets (escapes had put them there), all twelve sockets
/// were paused, and the escape round every 200 ms took nothing, having no room; the
/// slow-peer rule cut links at 10 s and the clique then crawled at about ten
/// messages a second. `TOTAL` sets the total in peer budgets (16): at 12 (10 seeds),
/// 32 cut 3 links where 16 cut 469; at 16, 16 cut 902, 32 cut 860, 64 none (every
/// run still failing). At 12 with 64, seed 0 cut nothing but its clients wrote only
/// 1,051 of 7,200 frames in the 60 s: the escapes turn the clique, they do not get it
/// flowing. The last line also sums the grafts and prunes the nodes sent; `GRAFT_MS`
/// sets plumtree's `graft_timeout`. Session 20, plumtree at 12, 40 seeds: 15 runs, 150
/// links, 1,282,180 grafts and 341,116 prunes (a graft for more than a third of the
/// 3,456,000 deliveries); with `GRAFT_MS=2000`, 4 runs and 30 links. A node that
/// grafted nothing while it was not reading an eager peer (a message held from it, or
/// over its rate) failed none of the 40 (224,262 grafts), but over TCP
/// (`clique_binary.py 12 5000`, plumtree, alternated) it cut 61, 49 and 83 links where
/// the build before cut 7, 3 and 4 (a likely reason, not measured: over TCP grafts
/// route messages round congested tree links, which the simulator's small, slow links
/// do not show). Not kept. Session 27, plumtree at 12, 40 seeds: 20 runs, 241 links,
/// one run short at b2799d2 (the shortcuts and announcing back to eager announcers
/// had added to session 20's); 16 runs and 129 links once a peer held too long got
/// what was read after its held message taken; 3 runs and 10 links with lazy rounds
/// (`flow::lazy_round`). Flood at 12, 20 seeds: 931 links and 7 runs short, then 813
/// and none short.
#[test]
#[ignore = "a measurement, not a test"]
fn count_clique_failures() {
    let var = |name: &str, default: usize| {
        std::env::var(name).map_or(default, |v| v.parse().expect("a count"))
    };
    let (k, messages, seeds) = (var("K", 6), var("MESSAGES", 600), var("SEEDS", 100));
    let plumtree = std::env::var_os("PLUMTREE").is_some();
    let redial = std::env::var_os("REDIAL").is_some();
    let (mut failed, mut cut, mut short, mut grafts, mut prunes) = (0, 0, 0, 0, 0);
    for seed in 0..seeds as u64 {
        let max_read = 1 + (seed as usize * 7919) % 600;
        let mut config = match plumtree {
            true => overloaded_plumtree(seed, max_read),
            false => overloaded(seed, max_read),
        };
        let peer_budget = config
            .node
            .peer_queue_bytes
            .max(var("FRAMES", 4) * FRAME_CHARGE);
        config.node.peer_queue_bytes = peer_budget;
        config.node.total_queue_bytes = var("TOTAL", 16) * peer_budget;
        config.redial_disconnects = redial;
        if let Ok(bytes) = std::env::var("SEND_AHEAD") {
            config.node.send_ahead_bytes = bytes.parse().expect("a count");
        }
        if let Ok(ms) = std::env::var("STALL_MS") {
            config.node.stall_escape = Duration::from_millis(ms.parse().expect("a count"));
        }
        if let (Ok(ms), Some(plumtree)) = (std::env::var("GRAFT_MS"), &mut config.node.plumtree) {
            plumtree.graft_timeout = Duration::from_millis(ms.parse().expect("a count"));
            plumtree.graft_timeout_max = plumtree.graft_timeout_max.max(plumtree.graft_timeout);
        }
        let sim = Simulation::new(Topology::clique(k), config);
        let clients: Vec<usize> = (0..k).collect();
        let run = run_clients_in(sim, &clients, messages);
        cut += run.disconnects;
        grafts += run.grafts_and_prunes.0;
        prunes += run.grafts_and_prunes.1;
        short += usize::from(run.nodes_short > 0);
        if !run.lost_nothing() {
            failed += 1;
            let ClientsRun {
                written,
                wanted,
                disconnects,
                nodes_short,
                quiet,
                ..
            } = run;
            println!(
                "seed {seed} (reads of up to {max_read} bytes): {written} of {wanted} \
                 written, {disconnects} cut, {nodes_short} nodes short, quiet {quiet}"
            );
        }
    }
    println!(
        "{failed} of {seeds} runs failed, {short} with nodes short; {cut} links cut in all; \
         {grafts} grafts and {prunes} prunes sent"
    );
}
