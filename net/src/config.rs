//! How a node runs over TCP: addresses, redials, socket and queue sizes.

use std::net::SocketAddr;
use std::time::Duration;

use gossip_core::Config;

use crate::{NetConfigError, PeerAddress};

/// How a node runs over TCP: where it listens, whom it dials, and its limits. The same
/// for every runtime, so switching runtime does not change configuration.
///
/// ```
/// use gossip_net::{NetConfig, PeerAddress};
/// let peer: PeerAddress = "127.0.0.1:7000".parse()?;
/// let named: PeerAddress = "node-1:7000".parse()?;
/// let config = NetConfig::new("127.0.0.1:0".parse().unwrap())
///     .with_peers([peer.clone(), named.clone(), peer.clone()]);
/// assert_eq!(config.dial_targets(), [peer, named]);
/// # Ok::<(), gossip_net::PeerAddressError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// Address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Peers to dial (addresses, or host names resolved at each dial), and redial
    /// whenever the connection drops or the dial fails.
    pub peers: Vec<PeerAddress>,
    /// The core's limits and policies.
    pub core: Config,
    /// First redial delay. Default 100 ms.
    pub redial_initial: Duration,
    /// Largest redial delay. Default 5 s.
    pub redial_max: Duration,
    /// Bytes read from a socket at most per read call. Default 64 KiB.
    pub read_chunk: usize,
    /// With plumtree ([`Config::plumtree`]): how long a dialled peer has to answer the
    /// preamble before it is taken for a plain peer (and dialled again plain), and how
    /// long an accepted connection may stay silent before it is taken for a plain peer.
    /// Default 1 s: several round trips of a wide-area link. A plain peer that waits
    /// this long is then sent what the node took meanwhile (from the plumtree cache; see
    /// [`Node::peer_connected_since`](gossip_core::Node::peer_connected_since)), so it
    /// only gets it later.
    pub preamble_timeout: Duration,
    /// TCP keepalive on every connection: probes after this long without traffic, then
    /// every third of it, and the connection is closed after three go unanswered. So a
    /// peer that vanished without closing (its host down, a NAT that dropped the
    /// connection) is noticed about twice this long after the connection fell quiet,
    /// and dialled again; a flood connection has no frame of its own to find that out
    /// (and the probes keep NAT mappings alive). Default 30 s; `None` leaves the
    /// system's setting (off, on most).
    pub keepalive: Option<Duration>,
    /// The most bytes the kernel holds unsent for a connection before the node's writer
    /// waits (`TCP_NOTSENT_LOWAT`, on Linux; elsewhere the system's send buffer alone
    /// bounds it). Bytes in flight (sent, not yet acknowledged) do not count, so it caps
    /// no link's throughput, however far away the peer. It sets how soon the node sees a
    /// slow peer take bytes: Linux wakes a blocked writer once the unsent bytes fall
    /// below half of this (256 KiB), where without it, it waits until much of the send
    /// buffer (autotuned up to 4 MiB) has drained; a peer that reads a little at a time
    /// then looks stalled for long stretches, and the node's waits on it (stall
    /// escapes, [`Config::slow_peer_timeout`]) start where nothing is stuck. Default
    /// 512 KiB: in a clique of twelve nodes with a client writing at full speed into
    /// each, it cut 14 links in a median run where no limit cut 36.5, and costs the TCP
    /// line benchmark about 5 % against no limit (1 MiB was no cheaper, 128 KiB cost up
    /// to a tenth); `None` leaves the system's setting (no limit but the send buffer).
    pub kernel_unsent_bytes: Option<u32>,
    /// Connections the kernel completes and holds for the listener before the node
    /// accepts them (the system's `somaxconn` caps it); beyond, a new connection's SYN is
    /// dropped and retried a second later, or more. Default 1024: the standard
    /// library's 128 made 8 of 1,500 connects in a row wait a second while the node was
    /// busy with the ones before.
    pub listen_backlog: u32,
    /// Socket events (reads, write reports) waiting for the node; readers stop reading,
    /// and so let TCP push back on their peers, while it is full. Default 256, so reads
    /// waiting here hold at most `event_queue` × `read_chunk` bytes (16 MiB).
    pub event_queue: usize,
}

impl NetConfig {
    /// Defaults, listening on `listen` and dialling no one.
    pub fn new(listen: SocketAddr) -> Self {
        NetConfig {
            listen,
            peers: Vec::new(),
            core: Config::default(),
            redial_initial: Duration::from_millis(100),
            redial_max: Duration::from_secs(5),
            read_chunk: 64 * 1024,
            event_queue: 256,
            preamble_timeout: Duration::from_secs(1),
            keepalive: Some(Duration::from_secs(30)),
            kernel_unsent_bytes: Some(512 * 1024),
            listen_backlog: 1024,
        }
    }

    /// The same, dialling `peers`.
    pub fn with_peers(mut self, peers: impl IntoIterator<Item = PeerAddress>) -> Self {
        self.peers.extend(peers);
        self
    }

    /// The peers to dial, each once however often it is listed, so that an address
    /// never has two dialled connections.
    pub fn dial_targets(&self) -> Vec<PeerAddress> {
        let mut targets = self.peers.clone();
        targets.sort_unstable();
        targets.dedup();
        targets
    }

    /// The same, with `core` limits.
    pub fn with_core(mut self, core: Config) -> Self {
        self.core = core;
        self
    }

    /// Checks that every connection setting can work (the core's limits are checked by
    /// [`Config::validate`]); [`GossipNode::start`](crate::GossipNode::start) calls it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use gossip_net::{NetConfig, NetConfigError};
    ///
    /// let mut config = NetConfig::new("127.0.0.1:0".parse().unwrap());
    /// assert_eq!(config.validate(), Ok(()));
    /// config.redial_initial = Duration::ZERO;
    /// assert_eq!(config.validate(), Err(NetConfigError::Zero("redial_initial")));
    /// ```
    pub fn validate(&self) -> Result<(), NetConfigError> {
        let zero = [
            ("redial_initial", self.redial_initial.is_zero()),
            ("redial_max", self.redial_max.is_zero()),
            ("read_chunk", self.read_chunk == 0),
            ("event_queue", self.event_queue == 0),
            ("preamble_timeout", self.preamble_timeout.is_zero()),
            (
                "keepalive",
                self.keepalive.is_some_and(|idle| idle.is_zero()),
            ),
            ("kernel_unsent_bytes", self.kernel_unsent_bytes == Some(0)),
        ];
        match zero.into_iter().find(|&(_, is_zero)| is_zero) {
            Some((name, _)) => Err(NetConfigError::Zero(name)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_that_must_be_positive_is_refused_at_zero_and_taken_at_one() {
        type Set = fn(&mut NetConfig, bool);
        // Zero, or the smallest duration above it.
        fn duration(zero: bool) -> Duration {
            Duration::from_nanos(u64::from(!zero))
        }
        let settings: [(&str, Set); 7] = [
            ("redial_initial", |c, zero| {
                c.redial_initial = duration(zero)
            }),
            ("redial_max", |c, zero| c.redial_max = duration(zero)),
            ("read_chunk", |c, zero| c.read_chunk = usize::from(!zero)),
            ("event_queue", |c, zero| c.event_queue = usize::from(!zero)),
            ("preamble_timeout", |c, zero| {
                c.preamble_timeout = duration(zero)
            }),
            ("keepalive", |c, zero| c.keepalive = Some(duration(zero))),
            ("kernel_unsent_bytes", |c, zero| {
                c.kernel_unsent_bytes = Some(u32::from(!zero))
            }),
        ];
        let defaults = NetConfig::new("127.0.0.1:0".parse().expect("an address"));
        assert_eq!(defaults.validate(), Ok(()));
        for (name, set) in settings {
            let mut config = defaults.clone();
            set(&mut config, true);
            assert_eq!(config.validate(), Err(NetConfigError::Zero(name)));
            set(&mut config, false);
            assert_eq!(config.validate(), Ok(()), "{name} at its smallest");
        }
        let off = NetConfig {
            keepalive: None,
            kernel_unsent_bytes: None,
            ..defaults
        };
        assert_eq!(off.validate(), Ok(()), "None leaves the system's setting");
    }
}
