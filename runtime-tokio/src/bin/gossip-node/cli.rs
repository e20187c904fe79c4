//! Command-line arguments.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use gossip_core::plumtree::PlumtreeConfig;
use gossip_core::{Config, Overload, RateLimit};

use crate::logger::Logger;
use crate::output::Output;
use gossip_tokio::{NetConfig, PeerAddress};

/// Shown after the options, by `-h` and `--help` alike.
const EXAMPLE: &str = "\
Three terminals make a line that relays end to end:
  gossip-node 127.0.0.1:7000
  gossip-node 127.0.0.1:7001 127.0.0.1:7000
  gossip-node 127.0.0.1:7002 127.0.0.1:7001";

/// A gossip node: floods every message it receives to all its peers, once.
///
/// Each line on stdin is published as a message; each message delivered from the network
/// is written to stdout, one line each (--output sets the format). Logs go to stderr.
#[derive(Debug, Parser)]
#[command(
    version,
    verbatim_doc_comment,
    after_help = EXAMPLE,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address to listen on, e.g. 127.0.0.1:7000 (or HOST:PORT, resolved once at start)
    #[arg(required = true, value_parser = listen_address)]
    pub listen: Option<SocketAddr>,

    /// Peers to dial (and redial with backoff until they answer): IP:PORT, or HOST:PORT
    /// (a name, resolved again at each dial)
    pub peers: Vec<PeerAddress>,

    /// Publish "hello from LISTEN #N" every INTERVAL (e.g. 2s, 500ms)
    #[arg(long, value_name = "INTERVAL", value_parser = positive_duration)]
    pub heartbeat: Option<Duration>,

    /// Log the counters (those printed at exit) every INTERVAL too, e.g. 1m
    #[arg(long, value_name = "INTERVAL", value_parser = positive_duration)]
    pub stats_every: Option<Duration>,

    /// The protocol: flood (every message over every link; what the tutorial node speaks)
    /// or plumtree (a broadcast tree, with repair; spoken with peers that speak it, flood
    /// with the others)
    #[arg(long, value_enum, default_value_t = ProtocolFlag::Flood)]
    pub protocol: ProtocolFlag,

    /// How delivered messages are written to stdout, one record each (see `--help`)
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,

    /// Same as --output hex
    #[arg(long, conflicts_with = "output")]
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
    /// More log output on stderr (-v per-message debug, -vv trace); RUST_LOG overrides
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Only errors on stderr (the default is lifecycle events: listening, peers, redials, losses, counters at exit)
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// The core's limits. Each default is read from `gossip_core::Config::default()`, so
/// the help shows the library's own defaults.
#[derive(Debug, Args)]
pub struct Limits {
    /// Largest payload accepted, in bytes
    #[arg(long, value_name = "BYTES", default_value_t = Config::default().max_frame_len)]
    pub max_frame: usize,

    /// Most peers this node dialled connected at once; inbound connections never take
    /// these slots
    #[arg(long, value_name = "N", default_value_t = Config::default().max_outbound_peers)]
    pub max_outbound: usize,

    /// Most peers that dialled in connected at once; when full, a newcomer evicts the
    /// least useful inbound peer (one that brought nothing new recently)
    #[arg(long, value_name = "N", default_value_t = Config::default().max_inbound_peers)]
    pub max_inbound: usize,

    /// How long a peer that brought a new message first is protected from eviction
    #[arg(long, value_name = "DURATION", default_value_t = Config::default().eviction_protection.into())]
    pub eviction_protection: humantime::Duration,

    /// Disconnect a peer that leaves a frame incomplete this long
    #[arg(long, value_name = "DURATION", default_value_t = Config::default().frame_timeout.into())]
    pub frame_timeout: humantime::Duration,

    /// Bytes all peers' incomplete frames may hold together; past it the oldest goes
    #[arg(long, value_name = "BYTES", default_value_t = Config::default().partial_frame_budget_bytes)]
    pub partial_frame_budget: usize,

    /// Read each peer at most this many bytes per second (default: no limit)
    #[arg(long, value_name = "BYTES")]
    pub peer_byte_rate: Option<u64>,

    /// Take at most this many new messages per second from each peer (default: no limit)
    #[arg(long, value_name = "N")]
    pub peer_message_rate: Option<u64>,

    /// Memory for remembered message ids, in bytes
    #[arg(long, value_name = "BYTES", default_value_t = Config::default().seen_budget_bytes)]
    pub seen_budget: usize,

    /// How long message ids are remembered
    #[arg(long, value_name = "DURATION", default_value_t = Config::default().seen_retention.into())]
    pub seen_retention: humantime::Duration,

    /// Bytes that may wait for one peer before the peer is full (see --overload); each
    /// message counts its size plus 68
    #[arg(long, value_name = "BYTES", default_value_t = Config::default().peer_queue_bytes)]
    pub peer_queue: usize,

    /// Bytes that may wait for all peers together (a message waiting for several peers
    /// counts its size once, plus 64 per peer)
    #[arg(long, value_name = "BYTES", default_value_t = Config::default().total_queue_bytes)]
    pub total_queue: usize,

    /// Disconnect a peer that takes none of its queued bytes this long while the node
    /// waits on it
    #[arg(long, value_name = "DURATION", default_value_t = Config::default().slow_peer_timeout.into())]
    pub slow_peer_timeout: humantime::Duration,

    /// When a queue is full: pause (read peers more slowly, lose nothing) or shed (drop
    /// messages for the full peer, keep reading at full speed)
    #[arg(long, value_enum, default_value_t = OverloadFlag::from(Config::default().overload))]
    pub overload: OverloadFlag,

    /// Bytes of delivered messages the output may fall behind by before the node slows
    /// its peers down; each message counts its size plus 64
    #[arg(long, value_name = "BYTES", default_value_t = Config::default().delivery_queue_bytes)]
    pub delivery_queue: usize,

    /// With --overload pause: how long the node stays full with nothing moving before
    /// it takes new messages anyway, up to the total queue
    #[arg(long, value_name = "DURATION", default_value_t = Config::default().stall_escape.into())]
    pub stall_escape: humantime::Duration,

    /// Bytes of a peer's queue handed to its socket writer at most; the rest waits in
    /// the node, where a copy of a message the peer sends us itself is dropped unsent
    #[arg(long, value_name = "BYTES", default_value_t = Config::default().send_ahead_bytes)]
    pub send_ahead: usize,
}

/// `--protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProtocolFlag {
    /// Flood every message to every peer
    Flood,
    /// Epidemic broadcast trees, with plain peers still flooded
    Plumtree,
}

/// `gossip_core::Overload` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OverloadFlag {
    /// Pause reading; nothing is lost
    Pause,
    /// Shed messages for full peers
    Shed,
}

impl From<Overload> for OverloadFlag {
    fn from(overload: Overload) -> Self {
        match overload {
            Overload::PauseReading => OverloadFlag::Pause,
            Overload::Shed => OverloadFlag::Shed,
        }
    }
}

impl From<OverloadFlag> for Overload {
    fn from(flag: OverloadFlag) -> Self {
        match flag {
            OverloadFlag::Pause => Overload::PauseReading,
            OverloadFlag::Shed => Overload::Shed,
        }
    }
}

/// A duration of more than zero, as humantime writes it (`2s`, `500ms`).
/// IP:PORT, or HOST:PORT resolved now (to its first IPv4 address, if it has one: a
/// name like `localhost` often resolves to `::1` too, which IPv4 peers cannot reach).
fn listen_address(text: &str) -> Result<SocketAddr, String> {
    let name = match text.parse::<PeerAddress>().map_err(|e| e.to_string())? {
        PeerAddress::Socket(addr) => return Ok(addr),
        PeerAddress::Name { host, port } => (host, port),
    };
    let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&name)
        .map_err(|e| format!("cannot resolve {text}: {e}"))?
        .collect();
    let first_v4 = addrs.iter().find(|addr| addr.is_ipv4());
    first_v4
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{text} resolves to no address"))
}

fn positive_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if duration.is_zero() => Err("must be more than zero".to_string()),
        Ok(duration) => Ok(duration),
        Err(error) => Err(error.to_string()),
    }
}

impl Limits {
    fn core_config(&self) -> Config {
        Config {
            max_frame_len: self.max_frame,
            max_outbound_peers: self.max_outbound,
            max_inbound_peers: self.max_inbound,
            eviction_protection: self.eviction_protection.into(),
            frame_timeout: self.frame_timeout.into(),
            partial_frame_budget_bytes: self.partial_frame_budget,
            peer_rate_limit: match (self.peer_byte_rate, self.peer_message_rate) {
                (None, None) => None,
                (bytes, messages) => Some(RateLimit {
                    bytes_per_second: bytes.unwrap_or(u64::MAX),
                    messages_per_second: messages.unwrap_or(u64::MAX),
                }),
            },
            // Set from `--protocol` (`Cli::net_config`).
            plumtree: None,
            seen_budget_bytes: self.seen_budget,
            seen_retention: self.seen_retention.into(),
            peer_queue_bytes: self.peer_queue,
            total_queue_bytes: self.total_queue,
            slow_peer_timeout: self.slow_peer_timeout.into(),
            overload: self.overload.into(),
            stall_escape: self.stall_escape.into(),
            delivery_queue_bytes: self.delivery_queue,
            send_ahead_bytes: self.send_ahead,
        }
    }
}

impl Cli {
    /// The stdout format, `--hex` included.
    pub fn output(&self) -> Output {
        if self.hex {
            Output::Hex
        } else {
            self.output
        }
    }

    /// The node configuration, for the run mode (not the demo).
    pub fn net_config(&self, listen: SocketAddr) -> NetConfig {
        let mut core = self.limits.core_config();
        // Node id 0: the driver picks one at random.
        core.plumtree = (self.protocol == ProtocolFlag::Plumtree).then(PlumtreeConfig::default);
        NetConfig::new(listen)
            .with_peers(self.peers.iter().cloned())
            .with_core(core)
    }
}

impl Logging {
    /// Installs the stderr logger at the level the flags ask for.
    pub fn init(&self) -> Logger {
        let level = match (self.quiet, self.verbose) {
            (true, _) => "error",
            // Lifecycle by default: listening, peers coming and going and why, redials,
            // losses, the counters at exit. Nothing per message.
            (false, 0) => "info",
            (false, 1) => "debug",
            (false, _) => "trace",
        };
        Logger::install(level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_shows_the_three_terminal_example_one_command_a_line() {
        use clap::CommandFactory;
        let short = Cli::command().render_help().to_string();
        let long = Cli::command().render_long_help().to_string();
        let commands = [
            "gossip-node 127.0.0.1:7000",
            "gossip-node 127.0.0.1:7001 127.0.0.1:7000",
            "gossip-node 127.0.0.1:7002 127.0.0.1:7001",
        ];
        for help in [short, long] {
            for command in commands {
                assert!(
                    help.lines().any(|line| line.trim() == command),
                    "no line of the help is exactly `{command}`:\n{help}"
                );
            }
        }
    }

    #[test]
    fn a_zero_heartbeat_is_refused() {
        let zero = Cli::try_parse_from(["gossip-node", "--heartbeat=0s", "127.0.0.1:7000"]);
        assert!(zero
            .unwrap_err()
            .to_string()
            .contains("must be more than zero"));
        let ok = Cli::try_parse_from(["gossip-node", "--heartbeat=50ms", "127.0.0.1:7000"]);
        assert_eq!(
            ok.expect("parses").heartbeat,
            Some(Duration::from_millis(50))
        );
    }

    #[test]
    fn the_listen_address_may_be_a_host_name() {
        let cli = Cli::try_parse_from(["gossip-node", "localhost:7000"]).expect("parses");
        assert_eq!(cli.listen, Some("127.0.0.1:7000".parse().unwrap()));
        assert!(Cli::try_parse_from(["gossip-node", "localhost"]).is_err());
    }

    #[test]
    fn peers_may_be_named_by_host() {
        let args = [
            "gossip-node",
            "0.0.0.0:7000",
            "node-1:7000",
            "127.0.0.1:7001",
        ];
        let cli = Cli::try_parse_from(args).expect("parses");
        let listen = cli.listen.expect("given");
        let peers: Vec<String> = cli
            .net_config(listen)
            .peers
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(peers, ["node-1:7000", "127.0.0.1:7001"]);
        assert!(Cli::try_parse_from(["gossip-node", "0.0.0.0:7000", "node-1"]).is_err());
    }

    #[test]
    fn default_flags_give_the_library_defaults() {
        let cli = Cli::try_parse_from(["gossip-node", "127.0.0.1:7000"]).expect("parses");
        let config = cli.net_config(cli.listen.expect("given"));
        assert_eq!(config.core, Config::default());
    }

    #[test]
    fn protocol_plumtree_turns_plumtree_on_with_its_defaults() {
        let args = ["gossip-node", "--protocol", "plumtree", "127.0.0.1:7000"];
        let cli = Cli::try_parse_from(args).expect("parses");
        let config = cli.net_config(cli.listen.expect("given"));
        assert_eq!(config.core.plumtree, Some(PlumtreeConfig::default()));
    }

    #[test]
    fn each_limit_flag_reaches_the_core() {
        let cli = Cli::try_parse_from([
            "gossip-node",
            "--max-frame=10",
            "--max-outbound=3",
            "--max-inbound=4",
            "--eviction-protection=5s",
            "--frame-timeout=6s",
            "--partial-frame-budget=8000",
            "--peer-message-rate=9",
            "--seen-budget=4096",
            "--seen-retention=2s",
            "--peer-queue=5000",
            "--total-queue=6000",
            "--slow-peer-timeout=750ms",
            "--overload=shed",
            "--stall-escape=3s",
            "--delivery-queue=7000",
            "--send-ahead=8000",
            "127.0.0.1:7000",
        ])
        .expect("parses");
        let expected = Config {
            max_frame_len: 10,
            max_outbound_peers: 3,
            max_inbound_peers: 4,
            eviction_protection: Duration::from_secs(5),
            frame_timeout: Duration::from_secs(6),
            partial_frame_budget_bytes: 8000,
            peer_rate_limit: Some(RateLimit {
                bytes_per_second: u64::MAX,
                messages_per_second: 9,
            }),
            plumtree: None,
            seen_budget_bytes: 4096,
            seen_retention: Duration::from_secs(2),
            peer_queue_bytes: 5000,
            total_queue_bytes: 6000,
            slow_peer_timeout: Duration::from_millis(750),
            overload: Overload::Shed,
            stall_escape: Duration::from_secs(3),
            delivery_queue_bytes: 7000,
            send_ahead_bytes: 8000,
        };
        assert_eq!(cli.limits.core_config(), expected);
    }
}
