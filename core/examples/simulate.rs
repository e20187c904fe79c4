//! Floods messages through a large simulated network and prints what it measured.
//!
//! ```text
//! cargo run --release -p gossip-core --example simulate -- [NODES] [DEGREE] [MESSAGES] [SEED]
//! ```
//! Defaults: 10,000 nodes of average degree 8, 100 messages of 256 bytes, seed 1.

use std::time::Instant;

use gossip_core::sim::{SimConfig, Simulation, Topology};
use gossip_core::Config;

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("arguments are numbers"))
        .collect();
    let arg = |i: usize, default: u64| args.get(i).copied().unwrap_or(default);
    let (nodes, degree, messages, seed) = (
        arg(0, 10_000) as usize,
        arg(1, 8) as usize,
        arg(2, 100) as usize,
        arg(3, 1),
    );

    let started = Instant::now();
    let topology = Topology::random_connected(nodes, degree, seed);
    let config = SimConfig {
        seed,
        node: Config {
            max_peers: nodes,
            ..Config::default()
        },
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

    println!("{nodes} nodes, average degree {degree}, {messages} messages of 256 B, seed {seed}");
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
}
