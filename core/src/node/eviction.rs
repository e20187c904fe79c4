//! Which inbound peer makes room for a newcomer when every inbound slot is taken.
//!
//! The rule, applied by [`Node::peer_connected`](crate::Node::peer_connected) to an
//! inbound newcomer when [`Config::max_inbound_peers`](crate::Config::max_inbound_peers)
//! inbound peers are connected:
//!
//! 1. Outbound peers (the ones this node dialled) are never candidates: they have their
//!    own slots.
//! 2. An inbound peer that brought a new message first within
//!    [`Config::eviction_protection`](crate::Config::eviction_protection) is protected.
//! 3. Among the rest, the one with the lowest [score](crate::PeerStats::score) goes; on a
//!    tie, the one connected longest (then the lowest id). An idle connection that has
//!    been useless longest is the best guess for a squatter, and an attacker who keeps
//!    opening connections evicts its own oldest ones first: a newcomer keeps its slot
//!    through at least `max_inbound_peers - 1` later arrivals even if it has brought
//!    nothing yet.
//! 4. If every inbound peer is protected, the newcomer is refused
//!    ([`DisconnectReason::TooManyPeers`](crate::DisconnectReason::TooManyPeers)).
//!
//! Nothing here reads a clock or draws a random number: the same history gives the same
//! choice.

use std::time::{Duration, Instant};

use crate::{Direction, PeerId, PeerStats};

/// The peer to evict among `peers` for an inbound newcomer at `now`, if any may go.
pub fn choose_victim(
    peers: impl IntoIterator<Item = (PeerId, PeerStats)>,
    now: Instant,
    protection: Duration,
) -> Option<PeerId> {
    peers
        .into_iter()
        .filter(|(_, stats)| stats.direction == Direction::Inbound)
        .filter(|(_, stats)| !stats.is_protected(now, protection))
        .min_by_key(|(peer, stats)| (stats.score(), stats.connected_at, *peer))
        .map(|(peer, _)| peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROTECTION: Duration = Duration::from_secs(60);

    fn peer(direction: Direction, connected_at: Instant) -> PeerStats {
        PeerStats {
            direction,
            connected_at,
            bytes_in: 0,
            frames_in: 0,
            first_deliveries: 0,
            duplicates: 0,
            last_first_delivery: None,
            queued_bytes: 0,
            partial_frame_bytes: 0,
            reading: true,
        }
    }

    #[test]
    fn outbound_peers_are_never_chosen() {
        let t0 = Instant::now();
        let peers = [(PeerId(1), peer(Direction::Outbound, t0))];
        assert_eq!(choose_victim(peers, t0, PROTECTION), None);
    }

    #[test]
    fn the_oldest_of_the_least_useful_goes() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        let mut useful = peer(Direction::Inbound, t0);
        useful.first_deliveries = 3;
        useful.last_first_delivery = Some(t0);
        let peers = [
            (PeerId(1), useful),
            (PeerId(2), peer(Direction::Inbound, t1)),
            (PeerId(3), peer(Direction::Inbound, t0)),
            (PeerId(4), peer(Direction::Inbound, t0)),
        ];
        // Peer 1 is useful; 3 and 4 tie on age, the lower id goes.
        let now = t0 + PROTECTION * 2;
        assert_eq!(choose_victim(peers, now, PROTECTION), Some(PeerId(3)));
    }

    #[test]
    fn protection_ends_exactly_at_its_window() {
        let t0 = Instant::now();
        let mut recent = peer(Direction::Inbound, t0);
        recent.first_deliveries = 1;
        recent.last_first_delivery = Some(t0);
        let peers = [(PeerId(1), recent)];
        let just_before = t0 + PROTECTION - Duration::from_nanos(1);
        assert_eq!(choose_victim(peers, just_before, PROTECTION), None);
        let at = t0 + PROTECTION;
        assert_eq!(choose_victim(peers, at, PROTECTION), Some(PeerId(1)));
    }
}
