//! Flow control under overload, in the simulator: links of limited bandwidth, queues a
//! few frames deep, several publishers publishing everything at once. With the default
//! policy (reading pauses instead of shedding) nothing may be lost.

use std::time::Duration;

use gossip_core::sim::{SimConfig, Simulation, Topology};
use gossip_core::{Config, QUEUED_FRAME_OVERHEAD};
use proptest::prelude::*;

const PAYLOAD: usize = 100;
/// What one queued frame is charged.
const FRAME_CHARGE: usize = PAYLOAD + 4 + QUEUED_FRAME_OVERHEAD;
/// Each peer's queue holds four frames.
const PEER_BUDGET: usize = 4 * FRAME_CHARGE;
/// The total holds sixteen peers' budgets, as by default (4 MiB and 64 MiB).
const TOTAL_BUDGET: usize = 16 * PEER_BUDGET;

fn cases() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    ProptestConfig::with_cases(cases)
}

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

/// 100 KB/s links, 1–5 ms latency, reads of up to `max_read` bytes.
fn overloaded(seed: u64, max_read: usize) -> SimConfig {
    SimConfig {
        seed,
        node: Config {
            max_frame_len: PAYLOAD,
            max_peers: 64,
            peer_queue_bytes: PEER_BUDGET,
            total_queue_bytes: TOTAL_BUDGET,
            ..Config::default()
        },
        latency: (Duration::from_millis(1), Duration::from_millis(5)),
        jitter: Duration::from_millis(1),
        max_read,
        bandwidth: Some(100_000),
        ..SimConfig::default()
    }
}

/// What one read of `max_read` bytes can add to a queue: the frames it completes.
fn one_read(max_read: usize) -> usize {
    (max_read / (PAYLOAD + 4) + 2) * FRAME_CHARGE
}

proptest! {
    #![proptest_config(cases())]

    /// Every message reaches every node exactly once, nothing is shed or cut, the
    /// network falls quiet, and no node ever queues more than its total budget (what
    /// an escape from a stall may fill) plus one read from each peer (the read that
    /// filled a queue).
    #[test]
    fn flow_control_loses_nothing_at_full_speed(
        topology in topology(),
        seed in any::<u64>(),
        max_read in 1usize..600,
        publishers in prop::collection::vec(any::<prop::sample::Index>(), 1..4),
        messages in 10usize..60,
    ) {
        let nodes = topology.nodes();
        let mut degree = vec![0usize; nodes];
        for &(a, b) in topology.edges() {
            degree[a] += 1;
            degree[b] += 1;
        }
        let mut sim = Simulation::new(topology, overloaded(seed, max_read));
        for (p, publisher) in publishers.iter().enumerate() {
            let origin = publisher.index(nodes);
            for m in 0..messages {
                let mut payload = vec![p as u8; PAYLOAD];
                payload[..8].copy_from_slice(&(m as u64).to_le_bytes());
                sim.publish(origin, payload).unwrap();
            }
        }
        let mut quiet = false;
        while !quiet {
            quiet = sim.run_for(Duration::from_millis(5));
            prop_assert!(sim.elapsed() < Duration::from_secs(600), "still busy after 600 s");
            for (i, &degree) in degree.iter().enumerate() {
                let queued = sim.node(i).unwrap().stats().queued_bytes;
                prop_assert!(
                    queued <= TOTAL_BUDGET + degree * one_read(max_read),
                    "node {} queued {} with {} peers", i, queued, degree
                );
            }
        }
        let report = sim.report();
        prop_assert_eq!(report.disconnects, 0);
        prop_assert!(report.all_delivered_exactly_once());
        for i in 0..nodes {
            let stats = sim.node(i).unwrap().stats();
            prop_assert_eq!(stats.frames_shed, 0);
            prop_assert!(!stats.congested);
        }
    }
}
