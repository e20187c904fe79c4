//! End-to-end throughput through a line of three nodes over loopback TCP, for each
//! runtime adapter, next to the same line made of plain byte relays (read from one
//! socket, write to the next, no parsing) in the same run.
//!
//! An injector writes frames into the first node as fast as TCP takes them; a counter
//! reads them from the last. Each node line is built once and warmed with one untimed
//! run (so its seen sets are full and evicting, as in a long-lived node); then variants
//! run interleaved, round after round, each round with new messages, and the figure is
//! the median ratio to the relay.
//!
//! A `tokio plumtree` line runs the same nodes speaking plumtree with each other (the
//! injector and the counter stay plain peers). A last kind of line is three
//! `gossip-node` processes, run as people run them (default flags, stdout to /dev/null),
//! when the release binary has been built:
//!
//! ```text
//! cargo build --release -p gossip-tokio
//! cargo bench -p gossip-tests --bench line_throughput
//! LINES=plumtree cargo bench -p gossip-tests --bench line_throughput   # only those lines
//! LINES="tokio,tokio plumtree" cargo bench ...                        # exactly these
//! LINES=binary BINARY_FLAGS="--output none" cargo bench ...            # other flags
//! LINES=binary GOSSIP_NODE=/other/build/gossip-node cargo bench ...   # another build
//! SIZES=4096 cargo bench ...                                         # one payload size
//! ```

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::thread;
use std::time::Instant;

use gossip_core::plumtree::PlumtreeConfig;
use gossip_net::NetConfig;
use gossip_smol::Smol;
use gossip_tests::adapters::start as start_on;
use gossip_tests::{Starter, TestNode, WAIT};
use gossip_tokio::Tokio;

const ROUNDS: usize = 11;
/// Bytes of payload pushed through the line per measurement.
const VOLUME: usize = 64 << 20;

/// A relay: accepts one connection and copies its bytes to `next`.
fn relay(next: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    thread::spawn(move || {
        let (mut upstream, _) = listener.accept().expect("accept");
        let mut downstream = TcpStream::connect(next).expect("connect");
        let _ = upstream.set_nodelay(true);
        let _ = downstream.set_nodelay(true);
        let _ = io::copy(&mut upstream, &mut downstream);
    });
    addr
}

/// A line under test, with the injector connected to its first hop and the counter to
/// its last.
struct Line {
    injector: TcpStream,
    sink: TcpStream,
    /// The nodes, kept running for the line's lifetime (none for relays).
    _nodes: Vec<Box<dyn TestNode>>,
    /// The same, as processes.
    _processes: Vec<Process>,
}

/// A `gossip-node` process, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `target/release/gossip-node`, or the binary `GOSSIP_NODE` names (to compare builds).
fn gossip_node_binary() -> Option<PathBuf> {
    if let Some(binary) = std::env::var_os("GOSSIP_NODE") {
        return Some(binary.into());
    }
    let exe = std::env::current_exe().ok()?;
    let binary = exe.parent()?.parent()?.join("gossip-node");
    binary.exists().then_some(binary)
}

/// Starts `gossip-node 127.0.0.1:0 PEERS...` with default flags and stdout to /dev/null.
/// Returns it, its address, and its log lines.
fn start_process(binary: &Path, peers: &[SocketAddr]) -> (Process, SocketAddr, Receiver<String>) {
    let mut child = Command::new(binary)
        .arg("127.0.0.1:0")
        .args(peers.iter().map(|p| p.to_string()))
        // Default flags unless told otherwise, to see what a flag costs.
        .args(
            std::env::var("BINARY_FLAGS")
                .unwrap_or_default()
                .split_whitespace(),
        )
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gossip-node starts");
    let stderr = child.stderr.take().expect("piped");
    let (tx, logs) = channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let listening = wait_for(&logs, "listening");
    let addr = listening
        .split("addr=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .expect("the listening line names the address");
    (Process(child), addr, logs)
}

/// The next log line containing `needle`.
fn wait_for(logs: &Receiver<String>, needle: &str) -> String {
    loop {
        let line = logs.recv_timeout(WAIT).expect("a log line in time");
        if line.contains(needle) {
            return line;
        }
    }
}

/// injector -> gossip-node -> gossip-node -> gossip-node -> counter, as processes.
fn process_line(binary: &Path) -> Line {
    let (first, first_addr, first_logs) = start_process(binary, &[]);
    let (second, second_addr, second_logs) = start_process(binary, &[first_addr]);
    let (third, third_addr, third_logs) = start_process(binary, &[second_addr]);
    let sink = TcpStream::connect(third_addr).expect("connect counter");
    let injector = TcpStream::connect(first_addr).expect("connect injector");
    for logs in [&first_logs, &second_logs, &third_logs] {
        for _ in 0..2 {
            wait_for(logs, ": connected");
        }
    }
    Line {
        injector,
        sink,
        _nodes: Vec::new(),
        _processes: vec![first, second, third],
    }
}

/// The baseline: injector -> relay -> relay -> relay -> counter.
fn relay_line() -> Line {
    let counter = TcpListener::bind("127.0.0.1:0").expect("bind");
    let entry = relay(relay(relay(counter.local_addr().expect("addr"))));
    // Each relay connects to the next once the one before it is connected to.
    let injector = TcpStream::connect(entry).expect("connect injector");
    let (sink, _) = counter.accept().expect("the relays reach the counter");
    Line {
        injector,
        sink,
        _nodes: Vec::new(),
        _processes: Vec::new(),
    }
}

/// injector -> node -> node -> node -> counter, the nodes on one runtime, with default
/// settings: the injector is faster than the nodes, so their queues fill and flow control
/// slows it down, as it would for a user.
/// With `plumtree`, the links between the nodes speak it (the injector and the counter
/// are plain peers).
fn node_line(start: Starter, plumtree: bool) -> Line {
    let config = |peers: Vec<SocketAddr>| {
        let peers = peers.into_iter().map(Into::into);
        let mut config = NetConfig::new("127.0.0.1:0".parse().expect("valid")).with_peers(peers);
        config.core.plumtree = plumtree.then(PlumtreeConfig::default);
        config
    };
    let mut first = start(config(vec![]));
    let mut second = start(config(vec![first.addr()]));
    let mut third = start(config(vec![second.addr()]));
    for node in [&mut first, &mut second, &mut third] {
        // Nobody reads deliveries here; without this the nodes would wait for a reader.
        node.discard_deliveries();
    }
    let sink = TcpStream::connect(third.addr()).expect("connect counter");
    let injector = TcpStream::connect(first.addr()).expect("connect injector");
    // A frame is forwarded only to peers the node has registered.
    for (node, degree) in [(&first, 2), (&second, 2), (&third, 2)] {
        assert!(node.wait_for_peers(degree, WAIT), "line not connected");
    }
    Line {
        injector,
        sink,
        _nodes: vec![first, second, third],
        _processes: Vec::new(),
    }
}

/// Pushes `count` frames of `size` bytes in at the line's injector, numbered from
/// `first` so that every round's messages are new, and times how long until the sink has
/// given them all out. Returns messages per second and how many never came out (the
/// sink gives up after two seconds without a byte).
fn run(line: &mut Line, size: usize, count: usize, first: u64) -> (f64, usize) {
    line.sink
        .set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .expect("timeout");
    line.sink.set_nodelay(true).expect("nodelay");
    let mut injector = line.injector.try_clone().expect("clone injector");
    let frame_len = 4 + size;
    let started = Instant::now();
    let writer = thread::spawn(move || {
        let mut batch = Vec::with_capacity(64 * frame_len);
        let mut sent = 0usize;
        while sent < count {
            batch.clear();
            for _ in 0..64.min(count - sent) {
                sent += 1;
                batch.extend_from_slice(&(size as u32).to_be_bytes());
                let start = batch.len();
                batch.resize(start + size, 0x5a);
                let number = first + sent as u64;
                batch[start..start + 8].copy_from_slice(&number.to_le_bytes());
            }
            injector.write_all(&batch).expect("inject");
        }
    });
    let total = count * frame_len;
    let mut buffer = vec![0u8; 256 * 1024];
    let mut received = 0;
    while received < total {
        match line.sink.read(&mut buffer) {
            Ok(n) if n > 0 => received += n,
            _ => break, // closed, or stalled: what is missing is lost
        }
    }
    let elapsed = started.elapsed();
    writer.join().expect("injector");
    let lost = (total - received).div_ceil(frame_len);
    (count as f64 / elapsed.as_secs_f64(), lost)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--test") {
        return; // `cargo test --benches` runs us with --test: nothing to check here.
    }
    // smol's global executor runs one thread unless told otherwise; give it as many as
    // the machine has cores, as each tokio node gets its own worker thread.
    if std::env::var_os("SMOL_THREADS").is_none() {
        let cores = thread::available_parallelism().map_or(1, |n| n.get());
        std::env::set_var("SMOL_THREADS", cores.to_string());
    }
    type Build = Box<dyn Fn() -> Line>;
    let mut kinds: Vec<(&str, Build)> = vec![
        (
            "tokio",
            Box::new(|| node_line(start_on::<Tokio> as Starter, false)),
        ),
        (
            "smol",
            Box::new(|| node_line(start_on::<Smol> as Starter, false)),
        ),
        (
            "tokio plumtree",
            Box::new(|| node_line(start_on::<Tokio> as Starter, true)),
        ),
    ];
    match gossip_node_binary() {
        Some(binary) => kinds.push(("binary", Box::new(move || process_line(&binary)))),
        None => println!(
            "(no target/release/gossip-node: `cargo build --release -p gossip-tokio` adds \
             a line of gossip-node processes)"
        ),
    }
    // LINES=plumtree (say) runs only the lines whose name contains it, for a quick look;
    // a line's whole name runs only that line, and a comma separates several
    // (LINES="tokio,tokio plumtree").
    if let Ok(only) = std::env::var("LINES") {
        let wanted: Vec<&str> = only.split(',').collect();
        let names: Vec<&str> = kinds.iter().map(|(name, _)| *name).collect();
        kinds.retain(|(name, _)| {
            wanted.iter().any(|&want| {
                if names.contains(&want) {
                    *name == want
                } else {
                    name.contains(want)
                }
            })
        });
    }
    println!(
        "3-node line over loopback, {} MiB per run, median of {ROUNDS} rounds",
        VOLUME >> 20
    );
    println!("default settings; lost counts every message of every round that never arrived");
    println!("payload  line                 msg/s      MB/s   ratio to relay   lost");
    // SIZES=256 (say) runs only that payload size.
    let sizes: Vec<usize> = match std::env::var("SIZES") {
        Ok(list) => list
            .split(',')
            .map(|size| size.trim().parse().expect("SIZES is a list of byte counts"))
            .collect(),
        Err(_) => vec![256, 4096],
    };
    for size in sizes {
        let count = VOLUME / size;
        // Each line is built once and warmed with one untimed run, so the rounds measure
        // nodes in their steady state (seen sets full and evicting), not their first fill.
        let mut lines: Vec<Line> = kinds.iter().map(|(_, build)| build()).collect();
        let mut lost = vec![0; kinds.len()];
        for (i, line) in lines.iter_mut().enumerate() {
            lost[i] += run(line, size, count, 0).1;
        }
        let mut relay_rates = Vec::new();
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
        let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
        for round in 1..=ROUNDS {
            let first = (round * count) as u64;
            let (relay_rate, _) = run(&mut relay_line(), size, count, first);
            relay_rates.push(relay_rate);
            for (i, line) in lines.iter_mut().enumerate() {
                let (rate, missing) = run(line, size, count, first);
                lost[i] += missing;
                rates[i].push(rate);
                ratios[i].push(rate / relay_rate);
            }
        }
        let mb = |rate: f64| rate * size as f64 / 1e6;
        let relay = median(&mut relay_rates);
        println!(
            "{size:>5} B  relay           {relay:>12.0}  {:>8.1}",
            mb(relay)
        );
        for (i, (name, _)) in kinds.iter().enumerate() {
            let rate = median(&mut rates[i]);
            println!(
                "{size:>5} B  {name:<14} {rate:>12.0}  {:>8.1}   {:.2}       {}",
                mb(rate),
                median(&mut ratios[i]),
                lost[i]
            );
        }
    }
}
