//! Core throughput: messages per second through a node with 8 peers (receive a new
//! message from one, deliver it, queue it for the other 7, account the flushes), next to
//! BLAKE3 alone over the same payloads. The two run interleaved, round after round, and
//! the figure is the median of the per-round ratios, so machine noise mostly cancels.
//!
//! ```text
//! cargo bench -p gossip-core --bench core_throughput
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use gossip_core::frame::encode;
use gossip_core::{Action, Config, Node, PeerId};

const PEERS: u64 = 8;
const ROUNDS: usize = 15;
const FLUSH_EVERY: u64 = 16;
const ROUND_TIME: Duration = Duration::from_millis(200);

/// A payload whose first 8 bytes are a counter, so every message is new.
struct Messages {
    wire: Vec<u8>,
    counter: u64,
}

impl Messages {
    fn new(size: usize) -> Self {
        Messages {
            wire: encode(&vec![0xab; size]),
            counter: 0,
        }
    }

    fn next(&mut self) -> &[u8] {
        self.counter += 1;
        self.wire[4..12].copy_from_slice(&self.counter.to_le_bytes());
        &self.wire
    }
}

fn time_per_op(iterations: u64, mut op: impl FnMut()) -> f64 {
    let started = Instant::now();
    for _ in 0..iterations {
        op();
    }
    started.elapsed().as_secs_f64() / iterations as f64
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--test") {
        return; // `cargo test --benches` runs us with --test: nothing to check here.
    }
    println!("payload   blake3 alone (msg/s)   node, 8 peers (msg/s)   ratio (median of {ROUNDS})");
    for size in [64, 256, 4096] {
        let now = Instant::now();
        let config = Config {
            seen_budget_bytes: std::env::var("SEEN_BUDGET")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(Config::default().seen_budget_bytes),
            ..Config::default()
        };
        let mut node = Node::new(config).expect("config is valid");
        for peer in 0..PEERS {
            node.peer_connected(now, PeerId(peer));
        }
        let mut messages = Messages::new(size);
        let mut actions = Vec::with_capacity(16);
        // Runtimes report flushes per write syscall, which covers many frames: report
        // every FLUSH_EVERY messages, as a socket writer would.
        let mut unflushed = [0usize; PEERS as usize];
        let mut received = 0u64;
        let mut node_op = || {
            node.handle_received(now, PeerId(0), messages.next());
            actions.extend(node.drain_actions());
            for action in actions.drain(..) {
                if let Action::Send { peer, frame } = action {
                    unflushed[peer.0 as usize] += frame.wire_len();
                } else {
                    black_box(action);
                }
            }
            received += 1;
            if received % FLUSH_EVERY == 0 {
                for (peer, bytes) in unflushed.iter_mut().enumerate() {
                    node.handle_flushed(now, PeerId(peer as u64), std::mem::take(bytes));
                }
            }
        };
        let mut hashes = Messages::new(size);
        let mut hash_op = || {
            black_box(blake3::hash(&hashes.next()[4..]));
        };
        // Calibrate so that each measurement takes about ROUND_TIME.
        let iterations = (ROUND_TIME.as_secs_f64() / time_per_op(10_000, &mut node_op)) as u64;
        let (mut hash_rates, mut node_rates, mut ratios) = (vec![], vec![], vec![]);
        for _ in 0..ROUNDS {
            let hash = time_per_op(iterations, &mut hash_op);
            let node = time_per_op(iterations, &mut node_op);
            hash_rates.push(1.0 / hash);
            node_rates.push(1.0 / node);
            ratios.push(hash / node);
        }
        println!(
            "{size:>5} B   {:>20.0}   {:>21.0}   {:>5.2}",
            median(&mut hash_rates),
            median(&mut node_rates),
            median(&mut ratios)
        );
    }
}
