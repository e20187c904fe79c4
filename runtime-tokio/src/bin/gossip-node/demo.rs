//! `gossip-node demo`: several nodes in one process, on loopback, in a ring.

use std::io;
use std::time::Duration;

use gossip_tokio::GossipNode;
use gossip_tokio::NetConfig;

const MESSAGES: [&str; 3] = [
    "hello, gossip",
    "every node gets this once",
    "and this one too",
];

/// Starts `count` nodes in a ring, publishes a few messages from different nodes, waits
/// until each node has every message, and returns the per-node counters and the verdict
/// to print once the log lines are written (they go through a thread of their own, so
/// printed now they could come out after lines logged before them).
pub async fn run(count: usize) -> io::Result<String> {
    let mut nodes: Vec<GossipNode> = Vec::with_capacity(count);
    for i in 0..count {
        let mut config = NetConfig::new("127.0.0.1:0".parse().expect("valid address"));
        if let Some(previous) = nodes.last() {
            config.peers.push(previous.local_addr().into());
        }
        if i + 1 == count && count > 2 {
            // The last node also dials the first, closing the ring.
            config.peers.push(nodes[0].local_addr().into());
        }
        nodes.push(GossipNode::start(config).await.map_err(io::Error::other)?);
    }
    println!("started {count} nodes in a ring on loopback:");
    for (i, node) in nodes.iter().enumerate() {
        println!("  node {i} listens on {}", node.local_addr());
    }
    let degree = if count > 2 { 2 } else { 1 };
    let connected = async {
        for node in &nodes {
            node.wait_for_peers(degree).await?;
        }
        Ok::<_, gossip_tokio::NodeError>(())
    };
    match tokio::time::timeout(Duration::from_secs(10), connected).await {
        Ok(result) => result.map_err(io::Error::other)?,
        Err(_) => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "nodes did not connect",
            ))
        }
    }

    for (n, text) in MESSAGES.iter().enumerate() {
        let origin = n * (count - 1) / (MESSAGES.len() - 1);
        println!("node {origin} publishes {text:?}");
        nodes[origin]
            .publish(text.as_bytes().to_vec())
            .await
            .map_err(io::Error::other)?;
    }

    let expected: Vec<usize> = (0..count)
        .map(|i| {
            (0..MESSAGES.len())
                .filter(|n| n * (count - 1) / (MESSAGES.len() - 1) != i)
                .count()
        })
        .collect();
    let wait = async {
        for (i, node) in nodes.iter_mut().enumerate() {
            for _ in 0..expected[i] {
                let delivery = node.next_delivery().await.expect("node running");
                println!(
                    "node {i} got {:?}",
                    String::from_utf8_lossy(&delivery.payload)
                );
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .is_err()
    {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "not every node got every message within 10 s",
        ));
    }

    let mut counters = Vec::with_capacity(count);
    for (i, node) in nodes.iter().enumerate() {
        let stats = node.stats().await.map_err(io::Error::other)?;
        if stats.messages_delivered != expected[i] as u64 {
            return Err(io::Error::other(format!(
                "node {i} delivered {} messages, expected {}",
                stats.messages_delivered, expected[i]
            )));
        }
        counters.push(stats);
    }
    // All at once, and before the summary: each node sees the others go and logs that
    // it will redial them, which would otherwise be the last lines printed.
    let mut stopping = tokio::task::JoinSet::new();
    for node in nodes {
        stopping.spawn(node.shutdown(Duration::from_secs(1)));
    }
    while stopping.join_next().await.is_some() {}

    let mut summary = String::from("\nnode  delivered  duplicates  frames in  frames out  peers\n");
    for (i, stats) in counters.iter().enumerate() {
        summary += &format!(
            "{i:>4}  {:>9}  {:>10}  {:>9}  {:>10}  {:>5}\n",
            stats.messages_delivered,
            stats.duplicates,
            stats.frames_in,
            stats.frames_out,
            stats.peers_current
        );
    }
    summary +=
        "\nevery node got every message exactly once (duplicates were dropped, not delivered).\n";
    Ok(summary)
}
