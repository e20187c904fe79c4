//! Floods messages through a large simulated network and prints what it measured.
//!
//! ```text
//! cargo run --release -p gossip-core --example simulate -- [NODES] [DEGREE] [MESSAGES] [SEED] [BANDWIDTH]
//! ```
//! Defaults: 10,000 nodes of average degree 8, 100 messages of 256 bytes, seed 1, links
//! of unlimited bandwidth. Every message is published at once; with a `BANDWIDTH` (bytes
//! per second per link direction) that overloads the network, and the flow-control
//! counters show what the nodes did about it.

use std::time::Instant;

use gossip_core::sim::{SimConfig, Simulation, Topology};
use gossip_core::Config;

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("arguments are numbers"))
        .collect();
    let arg = |i: usize, default: u64| args.get(i).copied().unwrap_or(default);
    let (nodes, degree, messages, seed, bandwidth) = (
        arg(0, 10_000) as usize,
        arg(1, 8) as usize,
        arg(2, 100) as usize,
        arg(3, 1),
        Some(arg(4, 0)).filter(|&b| b > 0),
    );

    let started = Instant::now();
    let topology = Topology::random_connected(nodes, degree, seed);
    let config = SimConfig {
        seed,
        node: Config {
            max_outbound_peers: nodes,
            max_inbound_peers: nodes,
            ..Config::default()
        },
        bandwidth,
        ..SimConfig::default()
    };
    let mut sim = Simulation::new(topology, config);
    for n in 0..messages {
        let mut payload = format!("message {n} ").into_bytes();
        payload.resize(256, b'.');
        sim.publish(n * 7919 % nodes, payload)
            .expect("payload fits");
    }
    let quiet = sim.run_until_quiet();
    let wall = started.elapsed();
    let report = sim.report();

    let links = bandwidth.map_or("unlimited".to_string(), |b| format!("{b} B/s"));
    println!("{nodes} nodes, average degree {degree}, {messages} messages of 256 B, seed {seed}, links {links}");
    println!("wall time            {:.2} s", wall.as_secs_f64());
    println!(
        "frames               {} sent, {} received ({:.0} frames/s of wall time)",
        report.frames_sent,
        report.frames_received,
        report.frames_received as f64 / wall.as_secs_f64()
    );
    println!(
        "coverage             min {} of {} nodes; every message exactly once: {}",
        report.min_coverage(),
        nodes,
        report.all_delivered_exactly_once()
    );
    println!(
        "redundancy           {:.2} copies received per delivery",
        report.redundancy()
    );
    println!(
        "last delivery        {} hops at most, after {:.1} ms of virtual time",
        report.max_hops(),
        report.max_delivery_time().as_secs_f64() * 1e3
    );
    println!("fell quiet           {quiet}");
    let all: Vec<_> = (0..nodes)
        .filter_map(|i| sim.node(i))
        .map(|n| n.stats())
        .collect();
    let sum = |f: fn(&gossip_core::Stats) -> u64| all.iter().map(f).sum::<u64>();
    println!(
        "flow control         {} congestion episodes, {} stall escapes, {} publishes held back, {} shed, {} peers cut, {} disconnects",
        sum(|s| s.congestion_episodes),
        sum(|s| s.stall_escapes),
        sum(|s| s.publishes_refused),
        sum(|s| s.frames_shed),
        sum(|s| s.slow_peer_disconnects),
        report.disconnects
    );
}
