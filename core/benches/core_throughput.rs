//! Core throughput: messages per second through a node with 8 peers, next to BLAKE3 alone
//! over the same payloads.
//!
//! The node is driven as the socket adapters drive it: each "read" is one buffer holding
//! a batch of frames (`handle_received_bytes`), and flushes are reported once per batch,
//! as a writer reports each vectored write. Two workloads:
//!
//! - **all new** (the worst case, and the figure of record): every frame is a new
//!   message, delivered and queued for the 7 other peers;
//! - **flood**: what a node in a flood sees, each message arriving from all 8 peers: once
//!   new (delivered, forwarded to 7) and 7 times as a duplicate. BLAKE3 alone then hashes
//!   all 8 copies too.
//! - **plumtree**: a plumtree node on the tree: every frame a new Gossip message from
//!   its parent, delivered, cached (its default cache full and forgetting), sent whole to
//!   one child and announced to the 6 lazy peers (IHave frames of 1,024 ids); and, as
//!   in a network where every node gets each message through the tree, each lazy peer
//!   announces the read's messages back (one IHave frame each), which releases what
//!   the node promised it. (Lazy peers that never announce anything make the node push
//!   every message whole to them as its cache lets it go, as to a flood peer.)
//!
//! The node and BLAKE3 run interleaved, round after round, and the figure is the median
//! of the per-round ratios, so machine noise mostly cancels.
//!
//! ```text
//! cargo bench -p gossip-core --bench core_throughput
//! SEEN_BUDGET=1000000 cargo bench -p gossip-core --bench core_throughput  # smaller seen set
//! WORKLOADS=plumtree SIZES=256 cargo bench -p gossip-core --bench core_throughput  # some
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use gossip_core::plumtree::{wire, PlumtreeConfig};
use gossip_core::{Action, Config, Direction, MessageId, Node, PeerId};

const PEERS: u64 = 8;
const ROUNDS: usize = 15;
const ROUND_TIME: Duration = Duration::from_millis(200);
/// Frames per read: what fits a 64 KiB read at 256 B.
const BATCH: usize = 256;

/// A batch of frames, and with plumtree the IHave frame a lazy peer sends for them.
struct Read {
    frames: Bytes,
    announced: Option<Bytes>,
}

/// Batches of frames whose payloads start with a counter, so every message is new.
struct Reads {
    size: usize,
    counter: u64,
    /// Plumtree Gossip frames (round 3) instead of plain ones.
    gossip: bool,
}

impl Reads {
    fn new(size: usize, workload: Workload) -> Self {
        let gossip = workload == Workload::Plumtree;
        Reads {
            size,
            counter: 0,
            gossip,
        }
    }

    /// Bytes of a frame before its payload.
    fn head_len(&self) -> usize {
        match self.gossip {
            true => 4 + wire::GOSSIP_OVERHEAD,
            false => 4,
        }
    }

    fn next(&mut self) -> Read {
        let mut read = BytesMut::with_capacity(BATCH * (self.head_len() + self.size));
        let mut entries = Vec::new();
        for _ in 0..BATCH {
            self.counter += 1;
            match self.gossip {
                true => read.put_slice(&wire::gossip_head(self.size, 3).expect("small")),
                false => read.put_u32(self.size as u32),
            }
            let payload_start = read.len();
            read.put_u64_le(self.counter);
            read.put_bytes(0xab, self.size - 8);
            if self.gossip {
                let id = MessageId::of(&read[payload_start..]);
                // A lazy peer got it at round 4 too, from its own parent.
                entries.push((wire::short_id(&id), 4));
            }
        }
        Read {
            frames: read.freeze(),
            announced: self.gossip.then(|| wire::ihave(&entries)),
        }
    }
}

/// What the node is fed.
#[derive(Clone, Copy, PartialEq)]
enum Workload {
    /// Every frame is a new message, from peer 0.
    AllNew,
    /// Every read arrives from each of the 8 peers in turn: new once, then duplicates.
    Flood,
    /// Every frame is a new Gossip message from plumtree peer 0; peer 1 is eager, the
    /// others lazy.
    Plumtree,
}

impl Workload {
    fn copies(self) -> usize {
        match self {
            Workload::AllNew | Workload::Plumtree => 1,
            Workload::Flood => PEERS as usize,
        }
    }
}

/// Seconds per message of `op` over `batches` fresh reads; making the reads is not timed.
fn time_per_message(batches: u64, reads: &mut Reads, mut op: impl FnMut(Read)) -> f64 {
    let mut elapsed = Duration::ZERO;
    for _ in 0..batches {
        let read = reads.next();
        let started = Instant::now();
        op(read);
        elapsed += started.elapsed();
    }
    elapsed.as_secs_f64() / (batches * BATCH as u64) as f64
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Median rates (messages/s) of BLAKE3 alone and of the node, and the median ratio.
fn measure(config: &Config, size: usize, workload: Workload) -> (f64, f64, f64) {
    let now = Instant::now();
    let plumtree = workload == Workload::Plumtree;
    let mut config = config.clone();
    config.plumtree = plumtree.then(PlumtreeConfig::default);
    let mut node = Node::new(config.clone()).expect("config is valid");
    for peer in 0..PEERS {
        match plumtree {
            true => node.plumtree_peer_connected(now, PeerId(peer), Direction::Inbound, peer + 1),
            false => node.peer_connected(now, PeerId(peer), Direction::Inbound),
        }
    }
    if plumtree {
        // Peers 2 to 7 prune this node: it announces to them, and sends whole to 1.
        for peer in 2..PEERS {
            node.handle_received_bytes(now, PeerId(peer), wire::prune());
        }
        node.drain_actions().for_each(drop);
    }
    let copies = workload.copies();
    let mut reads = Reads::new(size, workload);
    let mut unflushed = [0usize; PEERS as usize];
    // The application takes every delivery; reported once per batch, like the flushes.
    let (mut taken, mut taken_bytes) = (0, 0);
    let mut node_op = |read: Read| {
        let lazy = read
            .announced
            .iter()
            .flat_map(|ihave| (2..PEERS).map(move |peer| (PeerId(peer), ihave.clone())));
        let copies = (0..copies).map(|from| (PeerId(from as u64), read.frames.clone()));
        for (from, bytes) in copies.chain(lazy) {
            node.handle_received_bytes(now, from, bytes);
            while let Some(action) = node.poll_action() {
                match action {
                    Action::Send { peer, frames } => {
                        unflushed[peer.0 as usize] += frames.wire_len()
                    }
                    Action::Deliver(delivery) => {
                        taken += 1;
                        taken_bytes += delivery.payload.len();
                        black_box(delivery);
                    }
                    other => {
                        black_box(other);
                    }
                }
            }
        }
        for (peer, bytes) in unflushed.iter_mut().enumerate() {
            node.handle_flushed(now, PeerId(peer as u64), std::mem::take(bytes));
        }
        node.handle_delivered(
            now,
            std::mem::take(&mut taken),
            std::mem::take(&mut taken_bytes),
        );
    };
    let mut hashed = Reads::new(size, workload);
    let head_len = hashed.head_len();
    let hash_op = |read: Read| {
        for _ in 0..copies {
            for frame in read.frames.chunks_exact(head_len + size) {
                black_box(blake3::hash(&frame[head_len..]));
            }
        }
    };
    // Fill the seen set first, so evictions are part of the measurement.
    let fill = (config.seen_capacity() / BATCH + 1) as u64;
    time_per_message(fill, &mut reads, &mut node_op);
    let per_message = time_per_message(20, &mut reads, &mut node_op);
    let batches = (ROUND_TIME.as_secs_f64() / per_message) as u64 / BATCH as u64;
    let batches = batches.max(1);
    let (mut hash_rates, mut node_rates, mut ratios) = (vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        let hash = time_per_message(batches, &mut hashed, hash_op);
        let node = time_per_message(batches, &mut reads, &mut node_op);
        hash_rates.push(1.0 / hash);
        node_rates.push(1.0 / node);
        ratios.push(hash / node);
    }
    (
        median(&mut hash_rates),
        median(&mut node_rates),
        median(&mut ratios),
    )
}

fn main() {
    if std::env::args().any(|a| a == "--test") {
        return; // `cargo test --benches` runs us with --test: nothing to check here.
    }
    let defaults = Config::default();
    let seen_budget_bytes = std::env::var("SEEN_BUDGET")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(defaults.seen_budget_bytes);
    let config = Config {
        seen_budget_bytes,
        ..defaults
    };
    println!(
        "seen set: {} ids; {BATCH} frames per read; {PEERS} peers",
        config.seen_capacity()
    );
    println!(
        "workload  payload   blake3 alone (msg/s)   node (msg/s)   ratio (median of {ROUNDS})"
    );
    let workloads = [
        (Workload::AllNew, "all new"),
        (Workload::Flood, "flood"),
        (Workload::Plumtree, "plumtree"),
    ];
    // WORKLOADS=plumtree SIZES=256 (say) runs only those.
    let only = |var: &str, item: &str| {
        std::env::var(var).map_or(true, |list| list.split(',').any(|want| want == item))
    };
    for (workload, name) in workloads {
        for size in [64, 256, 4096] {
            if !only("WORKLOADS", name) || !only("SIZES", &size.to_string()) {
                continue;
            }
            let (hash_rate, node_rate, ratio) = measure(&config, size, workload);
            println!(
                "{name:<8}  {size:>5} B   {hash_rate:>20.0}   {node_rate:>12.0}   {ratio:>5.2}"
            );
        }
    }
}
