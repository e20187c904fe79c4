//! End-to-end throughput through a line of three nodes over loopback TCP, for each
//! runtime adapter, next to the same line made of plain byte relays (read from one
//! socket, write to the next, no parsing) in the same run.
//!
//! An injector writes frames into the first node as fast as TCP takes them; a counter
//! reads them from the last. Variants run interleaved, round after round, and the figure
//! is the median ratio to the relay.
//!
//! ```text
//! cargo bench -p gossip-tests --bench line_throughput [-- MESSAGES_PER_MB]
//! ```

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use gossip_core::transport::NetConfig;
use gossip_core::Config;
use gossip_tests::adapters::{Smol, Tokio};
use gossip_tests::{Starter, WAIT};

const ROUNDS: usize = 5;
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

/// The baseline: injector -> relay -> relay -> relay -> counter.
fn measure_relays(size: usize, count: usize) -> f64 {
    let counter = TcpListener::bind("127.0.0.1:0").expect("bind");
    let entry = relay(relay(relay(counter.local_addr().expect("addr"))));
    // Each relay connects to the next once the one before it is connected to.
    let injector = TcpStream::connect(entry).expect("connect injector");
    let (sink, _) = counter.accept().expect("the relays reach the counter");
    run(injector, sink, size, count)
}

/// injector -> node -> node -> node -> counter, the nodes on one runtime.
fn measure_nodes(start: Starter, size: usize, count: usize) -> f64 {
    let core = Config {
        peer_queue_bytes: 256 << 20,
        total_queue_bytes: 512 << 20,
        ..Config::default()
    };
    let config = |peers: Vec<SocketAddr>| {
        NetConfig::new("127.0.0.1:0".parse().expect("valid"))
            .with_peers(peers)
            .with_core(core.clone())
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
    run(injector, sink, size, count)
}

/// Pushes `count` distinct frames of `size` bytes in through `injector` and times how
/// long until `sink` has given them all out. Returns messages per second.
fn run(mut injector: TcpStream, mut sink: TcpStream, size: usize, count: usize) -> f64 {
    sink.set_read_timeout(Some(WAIT)).expect("timeout");
    sink.set_nodelay(true).expect("nodelay");
    let frame_len = 4 + size;
    let started = Instant::now();
    let writer = thread::spawn(move || {
        let mut batch = Vec::with_capacity(64 * frame_len);
        let mut sent = 0u64;
        while (sent as usize) < count {
            batch.clear();
            for _ in 0..64.min(count - sent as usize) {
                sent += 1;
                batch.extend_from_slice(&(size as u32).to_be_bytes());
                let start = batch.len();
                batch.resize(start + size, 0x5a);
                batch[start..start + 8].copy_from_slice(&sent.to_le_bytes());
            }
            injector.write_all(&batch).expect("inject");
        }
        injector
    });
    let total = count * frame_len;
    let mut buffer = vec![0u8; 256 * 1024];
    let mut received = 0;
    while received < total {
        match sink.read(&mut buffer) {
            Ok(0) => panic!("line closed after {received} of {total} bytes"),
            Ok(n) => received += n,
            Err(e) => panic!("line stalled after {received} of {total} bytes: {e}"),
        }
    }
    let elapsed = started.elapsed();
    drop(writer.join());
    count as f64 / elapsed.as_secs_f64()
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
    let adapters: [(&str, Starter); 2] = [("tokio", Tokio::start), ("smol", Smol::start)];
    println!(
        "3-node line over loopback, {} MiB per run, median of {ROUNDS} rounds",
        VOLUME >> 20
    );
    println!("payload  line         msg/s      MB/s   ratio to relay");
    for size in [256usize, 4096] {
        let count = VOLUME / size;
        let mut relay_rates = Vec::new();
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); adapters.len()];
        let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); adapters.len()];
        for _ in 0..ROUNDS {
            let relay_rate = measure_relays(size, count);
            relay_rates.push(relay_rate);
            for (i, (_, start)) in adapters.iter().enumerate() {
                let rate = measure_nodes(*start, size, count);
                rates[i].push(rate);
                ratios[i].push(rate / relay_rate);
            }
            // Let the previous round's sockets and threads wind down.
            thread::sleep(Duration::from_millis(100));
        }
        let mb = |rate: f64| rate * size as f64 / 1e6;
        let relay = median(&mut relay_rates);
        println!("{size:>5} B  relay   {relay:>12.0}  {:>8.1}", mb(relay));
        for (i, (name, _)) in adapters.iter().enumerate() {
            let rate = median(&mut rates[i]);
            println!(
                "{size:>5} B  {name:<6} {rate:>12.0}  {:>8.1}   {:.2}",
                mb(rate),
                median(&mut ratios[i])
            );
        }
    }
}
