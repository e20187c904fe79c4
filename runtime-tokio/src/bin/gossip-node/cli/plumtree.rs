//! Plumtree's settings on the command line (`gossip_core::plumtree::PlumtreeConfig`),
//! taken only with `--protocol plumtree`.

use std::time::Duration;

use clap::{ArgMatches, Args};
use gossip_core::plumtree::{PlumtreeConfig, SHORTCUT_ROUNDS};
use gossip_tokio::NetConfig;

use super::connections::defaults as net_defaults;
use super::values::{number, or_off, positive_count, positive_humantime, OrOff};

/// The tree's timers and the cache that repairs it. Each default is read from
/// `PlumtreeConfig::default()`, so the help shows the library's own defaults.
#[derive(Debug, Args)]
#[command(next_help_heading = "Plumtree (with --protocol plumtree)")]
pub struct PlumtreeFlags {
    /// How long an announced message may take to come through the tree before it is
    /// asked for (grafted) from the peer that announced it; the floor: under load the
    /// wait stretches with how late the tree's copies come
    #[arg(long, value_name = "DURATION", value_parser = positive_humantime,
        default_value_t = PlumtreeConfig::default().graft_timeout.into())]
    pub graft_timeout: humantime::Duration,

    /// The most --graft-timeout stretches to under load
    #[arg(long, value_name = "DURATION", value_parser = positive_humantime,
        default_value_t = PlumtreeConfig::default().graft_timeout_max.into())]
    pub graft_timeout_max: humantime::Duration,

    /// After a graft, how long before the next peer that announced the message is asked
    #[arg(long, value_name = "DURATION", value_parser = positive_humantime,
        default_value_t = PlumtreeConfig::default().graft_retry.into())]
    pub graft_retry: humantime::Duration,

    /// How long announcements are gathered into one frame per lazy peer
    #[arg(long, value_name = "DURATION", value_parser = positive_humantime,
        default_value_t = PlumtreeConfig::default().ihave_interval.into())]
    pub ihave_interval: humantime::Duration,

    /// Bytes of messages kept to answer grafts and repair links that come back (each
    /// counts its size plus 208); the oldest go first
    #[arg(long, value_name = "BYTES", default_value_t = PlumtreeConfig::default().cache_bytes)]
    pub cache_budget: usize,

    /// How long a message is kept for repair at most
    #[arg(long, value_name = "DURATION", value_parser = positive_humantime,
        default_value_t = PlumtreeConfig::default().cache_retention.into())]
    pub cache_retention: humantime::Duration,

    /// Announced messages not yet received that are tracked at once
    #[arg(long, value_name = "N", value_parser = positive_count,
        default_value_t = PlumtreeConfig::default().max_missing)]
    pub max_missing: usize,

    /// Tree optimisation: a lazy peer that announces a message at least this many hops
    /// sooner than the tree brought it replaces the tree's link; `off` keeps the tree
    /// the first message built
    #[arg(long, value_name = "HOPS", value_parser = or_off(number::<u16>),
        default_value_t = optimization_flag(PlumtreeConfig::default().optimization_threshold))]
    pub optimization_threshold: OrOff<u16>,

    // Its help is `shortcut_help()`: it names `SHORTCUT_ROUNDS`.
    #[arg(long, value_name = "DURATION", value_parser = or_off(positive_humantime),
        help = shortcut_help(),
        default_value_t = shortcut_flag(PlumtreeConfig::default().shortcut_window))]
    pub shortcut_window: OrOff<humantime::Duration>,

    /// How long a dialled peer has to answer the plumtree preamble before it is dialled
    /// again as a plain (flood) peer, and how long an accepted one may stay silent
    /// before it is taken for one
    #[arg(long, value_name = "DURATION",
        default_value_t = net_defaults().preamble_timeout.into())]
    pub preamble_timeout: humantime::Duration,
}

/// `PlumtreeConfig::optimization_threshold` is off at `u16::MAX`.
fn optimization_flag(threshold: u16) -> OrOff<u16> {
    OrOff((threshold != u16::MAX).then_some(threshold))
}

/// `PlumtreeConfig::shortcut_window` is off at zero.
fn shortcut_help() -> String {
    format!(
        "Shortcuts while the tree forms: a copy of a message that comes this soon after \
         the first, at least {SHORTCUT_ROUNDS} hops closer to its origin, makes its sender \
         the node's link towards the tree instead; `off` keeps the links of the first \
         copies"
    )
}

fn shortcut_flag(window: Duration) -> OrOff<humantime::Duration> {
    OrOff((!window.is_zero()).then_some(window.into()))
}

impl PlumtreeFlags {
    /// `config` speaking plumtree with these settings.
    pub fn apply(&self, mut config: NetConfig) -> NetConfig {
        config.core.plumtree = Some(self.config());
        config.preamble_timeout = self.preamble_timeout.into();
        config
    }

    /// The plumtree configuration these flags give (node id 0: the driver picks one).
    fn config(&self) -> PlumtreeConfig {
        PlumtreeConfig {
            graft_timeout: self.graft_timeout.into(),
            graft_timeout_max: self.graft_timeout_max.into(),
            graft_retry: self.graft_retry.into(),
            ihave_interval: self.ihave_interval.into(),
            cache_bytes: self.cache_budget,
            cache_retention: self.cache_retention.into(),
            max_missing: self.max_missing,
            optimization_threshold: self.optimization_threshold.0.unwrap_or(u16::MAX),
            shortcut_window: self.shortcut_window.0.map_or(Duration::ZERO, Into::into),
            ..PlumtreeConfig::default()
        }
    }

    /// The first of these flags given on the command line, as it is spelt there
    /// (`--cache-budget`), so a flood node can refuse it rather than ignore it.
    pub fn first_given(matches: &ArgMatches) -> Option<String> {
        let command = PlumtreeFlags::augment_args(clap::Command::new("plumtree"));
        let first = command.get_arguments().find_map(|arg| {
            let given = matches.value_source(arg.get_id().as_str())
                == Some(clap::parser::ValueSource::CommandLine);
            given.then(|| format!("--{}", arg.get_long().unwrap_or(arg.get_id().as_str())))
        });
        first
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cli::{net_config_for, parse_args};

    fn plumtree(args: &[&str]) -> Option<PlumtreeConfig> {
        net_config_for(args).core.plumtree
    }

    #[test]
    fn each_plumtree_flag_reaches_the_plumtree_config() {
        let config = plumtree(&[
            "--protocol=plumtree",
            "--graft-timeout=90ms",
            "--graft-timeout-max=2s",
            "--graft-retry=20ms",
            "--ihave-interval=1ms",
            "--cache-budget=1000000",
            "--cache-retention=10s",
            "--max-missing=100",
            "--optimization-threshold=7",
            "--shortcut-window=25ms",
        ]);
        let expected = PlumtreeConfig {
            graft_timeout: Duration::from_millis(90),
            graft_timeout_max: Duration::from_secs(2),
            graft_retry: Duration::from_millis(20),
            ihave_interval: Duration::from_millis(1),
            cache_bytes: 1_000_000,
            cache_retention: Duration::from_secs(10),
            max_missing: 100,
            optimization_threshold: 7,
            shortcut_window: Duration::from_millis(25),
            node_id: 0,
        };
        assert_eq!(config, Some(expected));
        let off = plumtree(&["--protocol=plumtree", "--optimization-threshold=off"]);
        assert_eq!(off, Some(PlumtreeConfig::default()));
        let no_shortcuts = plumtree(&["--protocol=plumtree", "--shortcut-window=off"]);
        let expected = PlumtreeConfig {
            shortcut_window: Duration::ZERO,
            ..PlumtreeConfig::default()
        };
        assert_eq!(no_shortcuts, Some(expected));
        let preamble = net_config_for(&["--protocol=plumtree", "--preamble-timeout=300ms"]);
        assert_eq!(preamble.preamble_timeout, Duration::from_millis(300));
        // A zero timeout is NetConfig's to refuse, at start.
        let zero = net_config_for(&["--protocol=plumtree", "--preamble-timeout=0s"]);
        let refused = Err(gossip_tokio::NetConfigError::Zero("preamble_timeout"));
        assert_eq!(zero.validate(), refused);
    }

    #[test]
    fn a_plumtree_flag_without_plumtree_is_refused_not_ignored() {
        let refused = parse_args(["gossip-node", "--cache-budget=1000", "127.0.0.1:7000"]);
        let error = refused.expect_err("a flood node has no cache").to_string();
        assert!(
            error.contains("--cache-budget") && error.contains("--protocol plumtree"),
            "{error}"
        );
        let refused = parse_args(["gossip-node", "--preamble-timeout=2s", "127.0.0.1:7000"]);
        assert!(refused.is_err(), "a flood node sends no preamble");
        let demo = parse_args(["gossip-node", "demo", "--nodes=3"]);
        assert!(demo.is_ok(), "no plumtree flag given: {demo:?}");
    }
}
