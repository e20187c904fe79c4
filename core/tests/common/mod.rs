//! What several test files share: proptest settings and strategies for simulated
//! networks.
#![allow(dead_code)]

use std::time::Duration;

use gossip_core::sim::{Report, SimConfig, Topology};
use gossip_core::Config;
use proptest::prelude::*;

/// `default` cases, or `PROPTEST_CASES` from the environment.
pub fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig::with_cases(cases)
}

/// Lines, rings, stars, cliques and random connected graphs.
pub fn topology() -> impl Strategy<Value = Topology> {
    prop_oneof![
        (1usize..=200).prop_map(Topology::line),
        (1usize..=200).prop_map(Topology::ring),
        (1usize..=200).prop_map(Topology::star),
        (1usize..=30).prop_map(Topology::clique),
        (1usize..=200, 1usize..=8, any::<u64>())
            .prop_map(|(n, d, seed)| Topology::random_connected(n, d, seed)),
    ]
}

/// Seeds, latencies, jitter and read sizes.
pub fn network() -> impl Strategy<Value = SimConfig> {
    (
        any::<u64>(),
        0u64..20,
        0u64..20,
        prop_oneof![Just(usize::MAX), 1usize..64],
    )
        .prop_map(|(seed, latency_ms, jitter_ms, max_read)| SimConfig {
            seed,
            node: Config {
                max_outbound_peers: 256,
                max_inbound_peers: 256,
                ..Config::default()
            },
            latency: (Duration::ZERO, Duration::from_millis(latency_ms)),
            jitter: Duration::from_millis(jitter_ms),
            max_read,
            ..SimConfig::default()
        })
}

/// Fails unless every message of `report` reached all `nodes`, each exactly once.
pub fn everyone_got_everything_once(report: &Report, nodes: usize) -> Result<(), TestCaseError> {
    for message in &report.messages {
        prop_assert_eq!(message.reached, nodes, "{:?}", message);
        prop_assert_eq!(message.delivered_again, 0, "{:?}", message);
    }
    Ok(())
}
