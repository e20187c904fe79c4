//! A plain peer that the node could be told of only a while after its connection
//! opened (the adapter was settling which protocol it speaks) is sent, from the plumtree
//! cache, what the node took meanwhile: the wait costs it no message.

use std::time::Instant;

use super::promises::owed_charge_of;
use crate::node::peer::Wire;
use crate::node::Node;
use crate::{Direction, PeerId};

impl Node {
    /// As [`peer_connected`](Self::peer_connected), for a plain peer whose connection
    /// opened at `opened`: a node that speaks plumtree first waits for a preamble on
    /// the connections it accepts (a plain peer sends none, and one that only listens
    /// sends nothing at all until `preamble_timeout`), and a preamble it sends unanswered
    /// is followed by a plain redial. Messages taken meanwhile went to the peers the node
    /// knew; this peer is sent the ones still in the plumtree cache that it cached at
    /// `opened` or later, oldest first, as plain frames, within its queue's budget like
    /// any message (what does not fit waits, and goes as the queue drains, before
    /// anything new is taken for it). Counted in
    /// [`Stats::messages_caught_up`](crate::Stats::messages_caught_up). A node without
    /// plumtree has no cache (and no protocol to settle): this is `peer_connected`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use gossip_core::plumtree::PlumtreeConfig;
    /// use gossip_core::{Action, Config, Direction, Node, PeerId};
    ///
    /// let opened = Instant::now();
    /// let config = Config { plumtree: Some(PlumtreeConfig::default()), ..Config::default() };
    /// let mut node = Node::new(config)?;
    /// // Published while the newcomer's protocol was being settled: nobody to send it to.
    /// node.publish(opened, &b"meanwhile"[..]).expect("no peer to wait for");
    /// node.drain_actions().for_each(drop);
    /// let settled = opened + Duration::from_secs(1);
    /// node.peer_connected_since(settled, PeerId(1), Direction::Inbound, opened);
    /// let sent: Vec<Vec<u8>> = node
    ///     .drain_actions()
    ///     .flat_map(|action| match action {
    ///         Action::Send { frames, .. } => frames.payloads().map(<[u8]>::to_vec).collect(),
    ///         _ => Vec::new(),
    ///     })
    ///     .collect();
    /// assert_eq!(sent, [b"meanwhile".to_vec()]);
    /// assert_eq!(node.stats().messages_caught_up, 1);
    /// # Ok::<(), gossip_core::ConfigError>(())
    /// ```
    pub fn peer_connected_since(
        &mut self,
        now: Instant,
        peer: PeerId,
        direction: Direction,
        opened: Instant,
    ) {
        if !self.connect(now, peer, direction, Wire::Plain) {
            return;
        }
        let Some(plumtree) = self.plumtree.as_ref() else {
            return;
        };
        let missed: Vec<_> = plumtree.cache.since(opened).collect();
        if missed.is_empty() {
            return;
        }
        let Some(state) = self.peers.get_mut(peer) else {
            return;
        };
        for (message, round) in missed {
            self.owed_bytes += owed_charge_of(&message);
            state.owed.push_back((message, round));
        }
        self.send_waiting(now, peer);
        self.settle(now);
    }
}
