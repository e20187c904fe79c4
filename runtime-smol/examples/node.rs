//! A gossip node on smol, with the tutorial node's command line:
//!
//! ```text
//! cargo run -p gossip-smol --example node -- LISTEN_ADDR [PEER_ADDR...]
//! ```
//!
//! Each stdin line is published; each delivered message is printed on stdout. It
//! interoperates with `gossip-node` (tokio) and with the tutorial node.

use std::net::SocketAddr;
use std::process::ExitCode;

use gossip_smol::{GossipNode, NetConfig, PeerAddress};
use smol::io::{AsyncBufReadExt, BufReader};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let listen: Option<SocketAddr> = args.first().and_then(|a| a.parse().ok());
    let peers: Result<Vec<PeerAddress>, _> = args.iter().skip(1).map(|a| a.parse()).collect();
    let (Some(listen), Ok(peers)) = (listen, peers) else {
        eprintln!("usage: node LISTEN_ADDR [PEER_ADDR...] (a peer may be HOST:PORT)");
        return ExitCode::FAILURE;
    };
    let config = NetConfig::new(listen).with_peers(peers);
    let result = smol::block_on(async {
        let mut node = GossipNode::start(config).await?;
        let publisher = node.publisher();
        smol::spawn(async move {
            // Lines as bytes: `lines()` would end at the first one that is not UTF-8.
            let mut lines = BufReader::new(smol::Unblock::new(std::io::stdin())).split(b'\n');
            while let Some(Ok(mut line)) = smol::stream::StreamExt::next(&mut lines).await {
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if let Err(error) = publisher.publish(line).await {
                    tracing::error!(%error, "cannot publish line");
                }
            }
        })
        .detach();
        while let Some(delivery) = node.next_delivery().await {
            println!("{}", String::from_utf8_lossy(&delivery.payload));
        }
        Ok::<(), gossip_smol::StartError>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("node: {error}");
            ExitCode::FAILURE
        }
    }
}
