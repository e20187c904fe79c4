//! Publishes messages into a large simulated network and prints what it measured.
//!
//! ```text
//! cargo run --release -p gossip-core --example simulate -- \
//!     [--protocol flood|plumtree] [--size BYTES] [--seed N] [--bandwidth BYTES_PER_S] \
//!     [--cut-links PERCENT] [--graft-timeout-ms MS] [--optimization-threshold ROUNDS] \
//!     [--shortcut-window-ms MS] [--restart-nodes PERCENT] \
//!     [--send-ahead BYTES] [--json] NODES DEGREE MESSAGES
//! ```
//! Every message is published at once, from nodes spread over the network. With
//! `--protocol plumtree` the first message floods and builds the tree; the others follow
//! it: the figures for the first message and for the rest are given apart. With
//! `--cut-links`, that share of the links is cut after the first message and restored
//! 200 ms later, while the rest are in flight. With `--restart-nodes`, that share of the
//! nodes crash after the first message and restart empty 200 ms later (the rest are
//! published at nodes that are up); a restarted node remembers nothing, so it may get a
//! message it had again, and `exactly_once` is then false by design. `--json` prints
//! one line for scripts.
//!
//! Wall time is also given against a baseline taken in the same run, as these machines
//! are noisy (the same build has taken 5.8 s and 11 s on different days): `blake3_s`,
//! what BLAKE3 alone takes here to hash every delivered payload once (timed on a
//! sample, scaled), which is work every plumtree node does; `wall_over_blake3` is the
//! ratio.

use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use gossip_core::plumtree::PlumtreeConfig;
use gossip_core::sim::{SimConfig, Simulation, Topology};
use gossip_core::{Config, MessageId};

#[derive(Debug, Parser)]
struct Args {
    /// Nodes in the network
    nodes: usize,
    /// Average degree of the random connected graph
    degree: usize,
    /// Messages to publish
    messages: usize,
    /// The protocol every node speaks
    #[arg(long, value_enum, default_value_t = Protocol::Flood)]
    protocol: Protocol,
    /// Payload bytes per message
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Seed of every random choice
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Bytes per second per link direction (default: unlimited)
    #[arg(long)]
    bandwidth: Option<u64>,
    /// Percent of links cut after the first message and restored 200 ms later
    #[arg(long, default_value_t = 0.0)]
    cut_links: f64,
    /// Percent of nodes that crash after the first message and restart empty 200 ms
    /// later
    #[arg(long, default_value_t = 0.0)]
    restart_nodes: f64,
    /// Virtual milliseconds between two publications after the first (default: all at
    /// once)
    #[arg(long, default_value_t = 0)]
    interval_ms: u64,
    /// Plumtree's graft timeout, in milliseconds (default: the library's)
    #[arg(long)]
    graft_timeout_ms: Option<u64>,
    /// Plumtree's tree optimisation threshold, in rounds (default: the library's, off)
    #[arg(long)]
    optimization_threshold: Option<u16>,
    /// Plumtree's shortcut window, in milliseconds; 0 turns shortcuts off (default: the
    /// library's)
    #[arg(long)]
    shortcut_window_ms: Option<u64>,
    /// Bytes of a peer's queue a node hands to the link before it keeps the rest back
    /// (default: the library's; see `Config::send_ahead_bytes`)
    #[arg(long)]
    send_ahead: Option<usize>,
    /// One JSON line instead of text
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Protocol {
    Flood,
    Plumtree,
}

fn main() {
    let args = Args::parse();
    let started = Instant::now();
    let topology = Topology::random_connected(args.nodes, args.degree, args.seed);
    let defaults = PlumtreeConfig::default();
    let plumtree = (args.protocol == Protocol::Plumtree).then(|| PlumtreeConfig {
        graft_timeout: args
            .graft_timeout_ms
            .map_or(defaults.graft_timeout, Duration::from_millis),
        optimization_threshold: args
            .optimization_threshold
            .unwrap_or(defaults.optimization_threshold),
        shortcut_window: args
            .shortcut_window_ms
            .map_or(defaults.shortcut_window, Duration::from_millis),
        ..defaults
    });
    let config = SimConfig {
        seed: args.seed,
        node: Config {
            max_outbound_peers: args.nodes,
            max_inbound_peers: args.nodes,
            plumtree,
            send_ahead_bytes: args
                .send_ahead
                .unwrap_or(Config::default().send_ahead_bytes),
            ..Config::default()
        },
        bandwidth: args.bandwidth,
        ..SimConfig::default()
    };
    let mut sim = Simulation::new(topology, config);
    let payload = |n: usize| {
        let mut payload = format!("message {n} ").into_bytes();
        payload.resize(args.size.max(payload.len()), b'.');
        payload
    };
    if args.messages > 0 {
        sim.publish(0, payload(0)).expect("payload fits");
        // The first message alone builds the tree.
        sim.run_until_quiet();
    }
    let first = sim.report();
    let cut = sim.cut_links(args.cut_links / 100.0, Duration::from_millis(200));
    let restarted = sim.restart_nodes(args.restart_nodes / 100.0, Duration::from_millis(200));
    for n in 1..args.messages {
        // The first node up from a spread-out start (a crashed node publishes nothing).
        let origin = sim.first_up_from(n * 7919).expect("a node is up");
        sim.publish(origin, payload(n)).expect("payload fits");
        if args.interval_ms > 0 {
            sim.run_for(Duration::from_millis(args.interval_ms));
        }
    }
    let quiet = sim.run_until_quiet();
    let wall = started.elapsed();
    let report = sim.report();
    // Data frames received per delivery, minus one: over the first message's run, and
    // over the rest of the run (repairs and re-deliveries to restarted nodes included).
    let rmr_first = first.rmr();
    let rmr_rest = (report.frames_received - first.frames_received) as f64
        / (report.deliveries - first.deliveries).max(1) as f64
        - 1.0;
    let last_delivery_ms = report.max_delivery_time().as_secs_f64() * 1e3;
    let delivered_again: usize = report.messages.iter().map(|m| m.delivered_again).sum();
    let blake3 = blake3_baseline(&payload(0), report.deliveries).as_secs_f64();
    let wall_over_blake3 = wall.as_secs_f64() / blake3.max(f64::MIN_POSITIVE);
    if args.json {
        println!(
            "{{\"protocol\":\"{}\",\"nodes\":{},\"degree\":{},\"messages\":{},\"size\":{},\"seed\":{},\
             \"cut_links\":{},\"restarted_nodes\":{},\"coverage_min\":{},\"exactly_once\":{},\"delivered_again\":{},\"rmr\":{:.4},\"rmr_first\":{:.4},\
             \"rmr_rest\":{:.4},\"wire_bytes_per_payload_byte\":{:.4},\"last_hop_max\":{},\
             \"last_delivery_ms\":{:.1},\"repairs\":{},\"control_frames\":{},\"fell_quiet\":{},\"wall_s\":{:.2},\
             \"blake3_s\":{:.2},\"wall_over_blake3\":{:.1}}}",
            format!("{:?}", args.protocol).to_lowercase(),
            args.nodes,
            args.degree,
            args.messages,
            args.size,
            args.seed,
            cut,
            restarted,
            report.min_coverage(),
            report.all_delivered_exactly_once(),
            delivered_again,
            report.rmr(),
            rmr_first,
            rmr_rest,
            report.wire_bytes_per_payload_byte(),
            report.max_hops(),
            last_delivery_ms,
            report.repairs,
            report.control_frames,
            quiet,
            wall.as_secs_f64(),
            blake3,
            wall_over_blake3,
        );
        return;
    }
    let links = args
        .bandwidth
        .map_or("unlimited".to_string(), |b| format!("{b} B/s"));
    println!(
        "{} nodes, average degree {}, {} messages of {} B, {:?}, seed {}, links {links}, {cut} links cut, {restarted} nodes restarted",
        args.nodes, args.degree, args.messages, args.size, args.protocol, args.seed
    );
    println!(
        "wall time            {:.2} s: {wall_over_blake3:.1} times what BLAKE3 alone takes here to hash every delivery once ({blake3:.2} s)",
        wall.as_secs_f64()
    );
    println!(
        "frames               {} sent ({} control), {} data frames received",
        report.frames_sent, report.control_frames, report.frames_received
    );
    println!(
        "coverage             min {} of {} nodes; every message exactly once: {} ({} delivered again)",
        report.min_coverage(),
        args.nodes,
        report.all_delivered_exactly_once(),
        delivered_again
    );
    println!(
        "redundancy (rmr)     {:.3} overall; first message {:.3}, the rest {:.3}",
        report.rmr(),
        rmr_first,
        rmr_rest
    );
    println!(
        "wire bytes           {:.3} per payload byte delivered",
        report.wire_bytes_per_payload_byte()
    );
    println!(
        "last delivery        {} hops at most, after {last_delivery_ms:.1} ms of virtual time",
        report.max_hops(),
    );
    println!("repairs              {}", report.repairs);
    println!("fell quiet           {quiet}");
    let all: Vec<_> = (0..args.nodes)
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

/// How long BLAKE3 alone takes on this machine, now, to hash `deliveries` payloads like
/// `payload` (timed on a sample and scaled): the baseline the wall time is given against.
fn blake3_baseline(payload: &[u8], deliveries: u64) -> Duration {
    const SAMPLE: u32 = 20_000;
    let started = Instant::now();
    for _ in 0..SAMPLE {
        std::hint::black_box(MessageId::of(std::hint::black_box(payload)));
    }
    started
        .elapsed()
        .mul_f64(deliveries as f64 / f64::from(SAMPLE))
}
