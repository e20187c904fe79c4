//! The simulator itself: replayable from its seed, and robust under faults.

use std::time::Duration;

use gossip_core::sim::{Churn, SimConfig, Simulation, Topology};
use gossip_core::{Config, Overload, QUEUED_FRAME_OVERHEAD};

fn run(config: SimConfig, topology: Topology, messages: usize) -> gossip_core::sim::Report {
    let nodes = topology.nodes();
    let mut sim = Simulation::new(topology, config);
    for m in 0..messages {
        sim.publish(m * 13 % nodes, format!("m{m}").into_bytes())
            .unwrap();
        sim.run_for(Duration::from_millis(7));
    }
    sim.run_for(Duration::from_secs(30));
    sim.report()
}

fn faulty(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        max_read: 7,
        link_failure: 0.01,
        reconnect_after: Duration::from_millis(20),
        churn: Some(Churn {
            mean_interval: Duration::from_millis(50),
            downtime: Duration::from_millis(30),
        }),
        ..SimConfig::default()
    }
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let topology = || Topology::random_connected(60, 4, 9);
    let first = run(faulty(3), topology(), 20);
    let again = run(faulty(3), topology(), 20);
    assert_eq!(first, again);
    let other = run(faulty(4), topology(), 20);
    assert_ne!(first, other, "the seed should matter");
}

#[test]
fn faults_lose_coverage_but_never_break_the_simulation() {
    let report = run(faulty(11), Topology::random_connected(60, 4, 2), 40);
    assert_eq!(report.messages.len(), 40);
    assert!(report.frames_sent > 0 && report.deliveries > 0);
    // Restarted nodes forget what they saw, so some may get a message twice; but the
    // network as a whole still carries most messages to most nodes.
    let reached: usize = report.messages.iter().map(|m| m.reached).sum();
    assert!(reached > 40 * 60 / 2, "coverage collapsed: {reached}");
}

#[test]
fn byte_by_byte_reads_still_deliver_everything() {
    let config = SimConfig {
        seed: 5,
        max_read: 1,
        ..SimConfig::default()
    };
    let mut sim = Simulation::new(Topology::ring(12), config);
    sim.publish(0, vec![9u8; 300]).unwrap();
    assert!(sim.run_until_quiet());
    assert!(sim.report().all_delivered_exactly_once());
}

#[test]
fn a_peer_limit_below_the_degree_refuses_links_and_is_reported() {
    // The hub dials every leaf: its outbound slots are the limit.
    let config = SimConfig {
        node: Config {
            max_outbound_peers: 3,
            ..Config::default()
        },
        ..SimConfig::default()
    };
    let mut sim = Simulation::new(Topology::star(6), config);
    sim.publish(1, &b"hub is full"[..]).unwrap();
    assert!(sim.run_until_quiet());
    let report = sim.report();
    assert_eq!(report.disconnects, 2);
    assert_eq!(report.min_coverage(), 4); // the hub and three leaves
}

#[test]
fn report_measures_hops_and_time_on_a_line() {
    let config = SimConfig {
        latency: (Duration::from_millis(10), Duration::from_millis(10)),
        jitter: Duration::ZERO,
        ..SimConfig::default()
    };
    let mut sim = Simulation::new(Topology::line(5), config);
    sim.publish(0, &b"down the line"[..]).unwrap();
    assert!(sim.run_until_quiet());
    let report = sim.report();
    let message = &report.messages[0];
    assert_eq!(message.last_delivery_hops, 4);
    assert_eq!(message.last_delivery_after, Duration::from_millis(40));
    assert_eq!(message.frames_sent, 4);
    assert_eq!(report.redundancy(), 1.0);
}

/// Two nodes over a link of 1 s latency, queues of two 100-byte frames.
fn slow_link() -> SimConfig {
    SimConfig {
        node: Config {
            max_frame_len: 100,
            peer_queue_bytes: 2 * (104 + QUEUED_FRAME_OVERHEAD),
            ..Config::default()
        },
        latency: (Duration::from_secs(1), Duration::from_secs(1)),
        jitter: Duration::ZERO,
        ..SimConfig::default()
    }
}

#[test]
fn a_slow_link_is_shed_and_dropped_by_the_node_timer() {
    let mut config = slow_link();
    config.node.slow_peer_timeout = Duration::from_millis(100);
    config.node.overload = Overload::Shed;
    let mut sim = Simulation::new(Topology::line(2), config);
    for m in 0..5u8 {
        sim.publish(0, vec![m; 100]).unwrap();
    }
    let stats = sim.node(0).unwrap().stats();
    assert_eq!((stats.frames_out, stats.frames_shed), (2, 3));
    assert!(sim.run_until_quiet());
    let report = sim.report();
    // Overloaded for 100 ms with nothing flushed: the node's timer drops the link before
    // the first frame (1 s away) arrives.
    assert_eq!(report.disconnects, 1);
    assert_eq!(sim.node(0).unwrap().stats().slow_peer_disconnects, 1);
    assert_eq!(report.deliveries, 0);
}

#[test]
fn a_slow_link_holds_the_publisher_back_and_loses_nothing() {
    // The same slow link with the default policy: the queue holds two frames, the
    // other three wait in the publisher's outbox until the first two arrive (1 s).
    let config = slow_link();
    let mut sim = Simulation::new(Topology::line(2), config);
    for m in 0..5u8 {
        sim.publish(0, vec![m; 100]).unwrap();
    }
    let stats = sim.node(0).unwrap().stats();
    assert_eq!((stats.frames_out, stats.frames_shed), (2, 0));
    assert!(stats.congested);
    assert!(sim.run_until_quiet());
    let report = sim.report();
    assert!(report.all_delivered_exactly_once());
    assert_eq!(report.disconnects, 0);
    // Two frames a second: the last one is published after 2 s, and arrives at 3 s.
    assert_eq!(
        report.messages[4].last_delivery_after,
        Duration::from_secs(3)
    );
}
