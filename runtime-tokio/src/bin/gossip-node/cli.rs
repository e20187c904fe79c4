//! Command-line arguments.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use gossip_core::Config;
use gossip_tokio::NetConfig;

/// A gossip node: floods every message it receives to all its peers, once.
///
/// Each line on stdin is published as a message; each message delivered from the network
/// is printed on stdout, one per line. Logs go to stderr.
///
/// Three terminals make a line that relays end to end:
///   gossip-node 127.0.0.1:7000
///   gossip-node 127.0.0.1:7001 127.0.0.1:7000
///   gossip-node 127.0.0.1:7002 127.0.0.1:7001
#[derive(Debug, Parser)]
#[command(
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address to listen on, e.g. 127.0.0.1:7000
    #[arg(required = true)]
    pub listen: Option<SocketAddr>,

    /// Peers to dial (and redial with backoff until they answer)
    pub peers: Vec<SocketAddr>,

    /// Publish "hello from LISTEN #N" every INTERVAL (e.g. 2s, 500ms)
    #[arg(long, value_name = "INTERVAL", value_parser = humantime::parse_duration)]
    pub heartbeat: Option<Duration>,

    /// Print delivered payloads as hex instead of lossy UTF-8
    #[arg(long)]
    pub hex: bool,

    #[command(flatten)]
    pub limits: Limits,

    #[command(flatten)]
    pub logging: Logging,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run several nodes in this process on loopback and show a few messages reach all
    Demo {
        /// How many nodes (connected in a ring)
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(2..=200))]
        nodes: u16,
        #[command(flatten)]
        logging: Logging,
    },
}

#[derive(Debug, Args)]
pub struct Logging {
    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Only errors on stderr
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// The core's limits; defaults are those of `gossip_core::Config`.
#[derive(Debug, Args)]
pub struct Limits {
    /// Largest payload accepted, in bytes [default: 1048576]
    #[arg(long, value_name = "BYTES")]
    pub max_frame: Option<usize>,

    /// Most peers connected at once [default: 128]
    #[arg(long, value_name = "N")]
    pub max_peers: Option<usize>,

    /// Memory for remembered message ids, in bytes [default: 33554432]
    #[arg(long, value_name = "BYTES")]
    pub seen_budget: Option<usize>,

    /// How long message ids are remembered [default: 5m]
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub seen_retention: Option<Duration>,

    /// Bytes that may wait for one peer before its messages are shed; each message
    /// counts its size plus 68 [default: 4194304]
    #[arg(long, value_name = "BYTES")]
    pub peer_queue: Option<usize>,

    /// Bytes that may wait for all peers together [default: 67108864]
    #[arg(long, value_name = "BYTES")]
    pub total_queue: Option<usize>,

    /// Disconnect a peer that stays overloaded this long [default: 10s]
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub slow_peer_timeout: Option<Duration>,
}

impl Limits {
    fn core_config(&self) -> Config {
        let defaults = Config::default();
        Config {
            max_frame_len: self.max_frame.unwrap_or(defaults.max_frame_len),
            max_peers: self.max_peers.unwrap_or(defaults.max_peers),
            seen_budget_bytes: self.seen_budget.unwrap_or(defaults.seen_budget_bytes),
            seen_retention: self.seen_retention.unwrap_or(defaults.seen_retention),
            peer_queue_bytes: self.peer_queue.unwrap_or(defaults.peer_queue_bytes),
            total_queue_bytes: self.total_queue.unwrap_or(defaults.total_queue_bytes),
            slow_peer_timeout: self.slow_peer_timeout.unwrap_or(defaults.slow_peer_timeout),
        }
    }
}

impl Cli {
    /// The node configuration, for the run mode (not the demo).
    pub fn net_config(&self, listen: SocketAddr) -> NetConfig {
        NetConfig::new(listen)
            .with_peers(self.peers.iter().copied())
            .with_core(self.limits.core_config())
    }
}

impl Logging {
    /// Installs the stderr logger.
    pub fn init(&self) {
        use tracing_subscriber::EnvFilter;
        let level = match (self.quiet, self.verbose) {
            (true, _) => "error",
            (false, 0) => "warn",
            (false, 1) => "info",
            (false, 2) => "debug",
            (false, _) => "trace",
        };
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}
