//! The connections' settings on the command line (`gossip_net::NetConfig`).

use std::net::{Ipv4Addr, SocketAddr};

use clap::Args;
use gossip_tokio::NetConfig;

use super::values::{number, or_off, OrOff};

/// The library's defaults, whatever the address.
pub(super) fn defaults() -> NetConfig {
    NetConfig::new(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
}

/// Sockets, redials and the reads' memory (the plumtree preamble's timeout is with
/// the plumtree flags). Values that cannot work (zeros) are refused at start by
/// `NetConfig::validate`, as the core's limits are by `Config::validate`. Each default is read from
/// `gossip_net::NetConfig::new`, so the help shows the library's own defaults.
#[derive(Debug, Args)]
#[command(next_help_heading = "Connections")]
pub struct Connections {
    /// TCP keepalive: probe a connection quiet this long, then every third of it, and
    /// close it after three unanswered probes (a peer gone without closing is then
    /// redialled); `off` leaves the system's setting
    #[arg(long, value_name = "DURATION", value_parser = or_off(number::<humantime::Duration>),
        default_value_t = OrOff(defaults().keepalive.map(Into::into)))]
    pub keepalive: OrOff<humantime::Duration>,

    /// The most bytes the kernel holds unsent for a connection before the node's writer
    /// waits (TCP_NOTSENT_LOWAT, Linux); it sets how soon a slow peer is seen taking
    /// bytes; `off` leaves the system's setting
    #[arg(long, value_name = "BYTES", value_parser = or_off(number::<u32>),
        default_value_t = OrOff(defaults().kernel_unsent_bytes))]
    pub kernel_unsent: OrOff<u32>,

    /// Connections the kernel holds for the listener before the node accepts them
    #[arg(long, value_name = "N", default_value_t = defaults().listen_backlog)]
    pub listen_backlog: u32,

    /// Bytes read from a socket at most per read
    #[arg(long, value_name = "BYTES", default_value_t = defaults().read_chunk)]
    pub read_chunk: usize,

    /// Socket events (reads, write reports) waiting for the node before the readers wait;
    /// reads held there take up to this many times --read-chunk bytes
    #[arg(long, value_name = "N", default_value_t = defaults().event_queue)]
    pub event_queue: usize,

    /// First delay before a peer that did not answer, or went away, is dialled again
    #[arg(long, value_name = "DURATION", default_value_t = defaults().redial_initial.into())]
    pub redial_initial: humantime::Duration,

    /// Longest redial delay (the delay doubles from --redial-initial up to it)
    #[arg(long, value_name = "DURATION", default_value_t = defaults().redial_max.into())]
    pub redial_max: humantime::Duration,
}

impl Connections {
    /// `config` with these settings.
    pub fn apply(&self, config: NetConfig) -> NetConfig {
        NetConfig {
            keepalive: self.keepalive.0.map(Into::into),
            kernel_unsent_bytes: self.kernel_unsent.0,
            listen_backlog: self.listen_backlog,
            read_chunk: self.read_chunk,
            event_queue: self.event_queue,
            redial_initial: self.redial_initial.into(),
            redial_max: self.redial_max.into(),
            ..config
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use gossip_tokio::NetConfigError;

    use crate::cli::net_config_for as net_config;

    #[test]
    fn each_connection_flag_reaches_the_net_config() {
        let config = net_config(&[
            "--keepalive=7s",
            "--kernel-unsent=65536",
            "--listen-backlog=16",
            "--read-chunk=4096",
            "--event-queue=8",
            "--redial-initial=10ms",
            "--redial-max=2s",
        ]);
        let expected = gossip_tokio::NetConfig {
            keepalive: Some(Duration::from_secs(7)),
            kernel_unsent_bytes: Some(65536),
            listen_backlog: 16,
            read_chunk: 4096,
            event_queue: 8,
            redial_initial: Duration::from_millis(10),
            redial_max: Duration::from_secs(2),
            ..net_config(&[])
        };
        assert_eq!(config, expected);
    }

    #[test]
    fn keepalive_and_the_kernel_limit_can_be_switched_off() {
        let config = net_config(&["--keepalive=off", "--kernel-unsent=off"]);
        assert_eq!(config.keepalive, None);
        assert_eq!(config.kernel_unsent_bytes, None);
    }

    #[test]
    fn settings_that_would_spin_or_read_nothing_are_refused_at_start() {
        for (flag, field) in [
            ("--redial-initial=0s", "redial_initial"),
            ("--redial-max=0s", "redial_max"),
            ("--keepalive=0s", "keepalive"),
            ("--kernel-unsent=0", "kernel_unsent_bytes"),
            ("--read-chunk=0", "read_chunk"),
            ("--event-queue=0", "event_queue"),
        ] {
            let refused = net_config(&[flag]).validate();
            assert_eq!(refused, Err(NetConfigError::Zero(field)), "{flag}");
        }
    }
}
