//! Command-line arguments: the node's own flags here, one module per group of
//! settings it passes to the library.

mod connections;
mod limits;
mod plumtree;
mod values;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::logger::Logger;
use crate::output::Output;
use connections::Connections;
use gossip_tokio::{NetConfig, PeerAddress};
use limits::Limits;
use plumtree::PlumtreeFlags;
use values::{listen_address, positive_duration};

/// Shown after the options, by `-h` and `--help` alike.
const EXAMPLE: &str = "\
Three terminals make a line that relays end to end:
  gossip-node 127.0.0.1:7000
  gossip-node 127.0.0.1:7001 127.0.0.1:7000
  gossip-node 127.0.0.1:7002 127.0.0.1:7001";

/// A gossip node: what any node publishes reaches every node, once (by flooding, or with
/// --protocol plumtree along a broadcast tree).
///
/// Each line on stdin is published as a message; each message delivered from the network
/// is written to stdout, one line each (--output sets the format). Logs go to stderr.
#[derive(Debug, Parser)]
#[command(
    name = "gossip-node",
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
    pub connections: Connections,

    #[command(flatten)]
    pub plumtree: PlumtreeFlags,

    #[command(flatten)]
    pub logging: Logging,
}

/// Reads the command line (`args` starts with the program's name), refusing a plumtree
/// setting without `--protocol plumtree` rather than ignoring it.
pub fn parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = Cli::command().try_get_matches_from(args)?;
    let cli = Cli::from_arg_matches(&matches)?;
    if cli.protocol != ProtocolFlag::Plumtree {
        if let Some(flag) = PlumtreeFlags::first_given(&matches) {
            return Err(Cli::command().error(
                clap::error::ErrorKind::ArgumentConflict,
                format!("{flag} is a plumtree setting: add --protocol plumtree"),
            ));
        }
    }
    Ok(cli)
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
#[command(next_help_heading = "Logging")]
pub struct Logging {
    /// More log output on stderr (the node: -v per-message debug, -vv trace; the demo:
    /// -v connections); RUST_LOG overrides
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Only errors on stderr (the node's default is lifecycle events: listening, peers,
    /// redials, losses, counters at exit; the demo's, warnings)
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// `--protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProtocolFlag {
    /// Flood every message to every peer
    Flood,
    /// Epidemic broadcast trees, with plain peers still flooded
    Plumtree,
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
        let config = NetConfig::new(listen)
            .with_peers(self.peers.iter().cloned())
            .with_core(self.limits.core_config());
        let config = self.connections.apply(config);
        match self.protocol {
            ProtocolFlag::Flood => config,
            ProtocolFlag::Plumtree => self.plumtree.apply(config),
        }
    }
}

/// The node configuration the flags `args` give, listening on 127.0.0.1:7000.
#[cfg(test)]
fn net_config_for(args: &[&str]) -> NetConfig {
    let command_line = ["gossip-node"]
        .iter()
        .chain(args)
        .chain(["127.0.0.1:7000"].iter());
    let cli = parse_args(command_line).expect("parses");
    cli.net_config(cli.listen.expect("given"))
}

impl Logging {
    /// Installs the stderr logger at the level the flags ask for, each `-v` a level
    /// above `default`.
    pub fn init(&self, default: LogLevel) -> Logger {
        Logger::install(self.level(default))
    }

    fn level(&self, default: LogLevel) -> &'static str {
        const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];
        if self.quiet {
            return LEVELS[0];
        }
        let at = default as usize + usize::from(self.verbose);
        LEVELS[at.min(LEVELS.len() - 1)]
    }
}

/// Where `-v` counts from.
#[derive(Debug, Clone, Copy)]
pub enum LogLevel {
    /// Warnings and losses only: the demo, whose own output is the point, and whose
    /// nodes' connection lines would not say which node they are about.
    Warn = 1,
    /// Lifecycle: listening, peers coming and going and why, redials, losses, the
    /// counters at exit. Nothing per message. The node's default.
    Info = 2,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_v_is_a_level_above_the_default_and_quiet_is_errors() {
        let level = |args: &[&str], default| {
            let command_line = ["gossip-node"].iter().chain(args);
            let cli = parse_args(command_line).expect("parses");
            match &cli.command {
                Some(Command::Demo { logging, .. }) => logging.level(default),
                None => cli.logging.level(default),
            }
        };
        let node = |args: &[&str]| {
            let args: Vec<&str> = args.iter().copied().chain(["127.0.0.1:7000"]).collect();
            level(&args, LogLevel::Info)
        };
        assert_eq!(node(&[]), "info");
        assert_eq!(node(&["-v"]), "debug");
        assert_eq!(node(&["-vvv"]), "trace");
        assert_eq!(node(&["-q"]), "error");
        assert_eq!(level(&["demo"], LogLevel::Warn), "warn");
        assert_eq!(level(&["demo", "-v"], LogLevel::Warn), "info");
        assert_eq!(level(&["demo", "-q"], LogLevel::Warn), "error");
    }

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
    fn usage_and_version_name_the_binary_as_people_run_it() {
        // Not the package's name (gossip-tokio), which clap takes by default.
        let usage = Cli::command().render_usage().to_string();
        assert!(usage.starts_with("Usage: gossip-node "), "{usage}");
        let version = Cli::command().render_version();
        assert!(version.starts_with("gossip-node "), "{version}");
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
        let cli = parse_args(["gossip-node", "127.0.0.1:7000"]).expect("parses");
        let listen = cli.listen.expect("given");
        assert_eq!(cli.net_config(listen), NetConfig::new(listen));
    }

    #[test]
    fn protocol_plumtree_turns_plumtree_on_with_its_defaults() {
        let args = ["gossip-node", "--protocol", "plumtree", "127.0.0.1:7000"];
        let cli = parse_args(args).expect("parses");
        let listen = cli.listen.expect("given");
        let config = cli.net_config(listen);
        let mut expected = NetConfig::new(listen);
        expected.core.plumtree = Some(gossip_core::plumtree::PlumtreeConfig::default());
        assert_eq!(config, expected);
    }
}
