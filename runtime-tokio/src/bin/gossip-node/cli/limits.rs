//! The core's limits on the command line (`gossip_core::Config`).

use clap::Args;
use gossip_core::{Config, Overload, RateLimit};

/// The core's limits. Each default is read from `gossip_core::Config::default()`, so
/// the help shows the library's own defaults.
#[derive(Debug, Args)]
#[command(next_help_heading = "Limits")]
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

impl Limits {
    /// The core configuration these flags give (plumtree off: see `Cli::net_config`).
    pub fn core_config(&self) -> Config {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

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
