//! What the node does when time passes: stall escapes, slow-peer cuts, frame timeouts,
//! rate-limit pauses ending, a stalled application; and when that is next due.

use std::time::Instant;

use super::flow;
use super::headroom;
use super::peer::Peer;
use super::Node;
use crate::{DisconnectReason, Overload, PeerId, QUEUED_FRAME_OVERHEAD};

impl Node {
    /// Runs what was due by `now`: disconnects peers that took none of their queued bytes
    /// for `slow_peer_timeout` while the node waited on them, and peers that left a frame
    /// incomplete for `frame_timeout`; takes new messages again (until the total is
    /// full) after a stall of `stall_escape`; reads peers again that are back within
    /// their rate limit; and forgets expired message ids.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.seen.expire(now);
        if self.application_deadline().is_some_and(|at| at <= now) {
            self.application.stalled = true;
            self.stats.application_stalls += 1;
        }
        let (stall, overdue) = self.escape_deadlines();
        let stalled = stall.is_some_and(|at| at <= now);
        if stalled || overdue.is_some_and(|at| at <= now) {
            self.escape_round(now, stalled);
        }
        for (peer, queued_bytes) in self.slow_peers(now) {
            self.stats.slow_peer_disconnects += 1;
            self.disconnect(now, peer, DisconnectReason::SlowPeer { queued_bytes });
        }
        let timeout = self.config.frame_timeout;
        let trickling: Vec<(PeerId, usize)> = self
            .peers
            .iter()
            .filter(|(_, state)| state.frame_deadline(timeout).is_some_and(|d| d <= now))
            .map(|(peer, state)| (peer, state.decoder.partial_announced().unwrap_or(0)))
            .collect();
        for (peer, announced) in trickling {
            self.stats.frame_timeouts += 1;
            self.disconnect(now, peer, DisconnectReason::FrameTimeout { announced });
        }
        let rested: Vec<PeerId> = self
            .peers
            .iter_mut()
            .filter(|(_, state)| state.rate_paused_until.is_some_and(|at| at <= now))
            .map(|(peer, state)| {
                state.rate_paused_until = None;
                peer
            })
            .collect();
        for peer in rested {
            self.sync_reading(now, peer);
        }
        self.plumtree_timeout(now);
        self.settle(now);
    }

    /// Starts a round of a stall escape at `now`: what the node may take from each peer
    /// past its budgets, within the total (a lazy round, `flow::lazy_round`, up to its
    /// allowance past it). A round of a stall (`stalled`) takes half a peer budget,
    /// shared among the peers `flow::escapes_from` names; in any round, a peer held too
    /// long (`flow::hold_limit`) gets its held message taken, and the frames read from
    /// it after that message.
    pub(super) fn escape_round(&mut self, now: Instant, stalled: bool) {
        self.flow.escaping = true;
        self.flow.escaped_at = Some(now);
        let total = self.config.total_queue_bytes;
        let largest = headroom::plain_charge(self.config.max_frame_len);
        let speaks_plumtree = self.plumtree.is_some();
        self.flow.lazy_round =
            stalled && flow::lazy_round(speaks_plumtree, self.committed_bytes(), total, largest);
        let waits_on_a_held_peer = self
            .peers
            .iter()
            .any(|(_, state)| state.held.is_some() && state.is_full());
        let takes =
            |state: &Peer| stalled && flow::escapes_from(waits_on_a_held_peer, state.is_full());
        let count = self.peers.iter().filter(|(_, state)| takes(state)).count();
        let room = flow::escape_room(
            self.config.peer_queue_bytes,
            count,
            headroom::plain_charge(self.config.max_frame_len),
        );
        let hold_limit = flow::hold_limit(self.config.slow_peer_timeout);
        let overdue = |state: &Peer| {
            state
                .held_overdue_at(hold_limit)
                .is_some_and(|at| at <= now)
        };
        let mut held_too_long = 0;
        for (_, state) in self.peers.iter_mut() {
            state.escape_room = match &state.held {
                _ if takes(state) => room,
                Some((_, message)) if overdue(state) => {
                    held_too_long += 1;
                    // And what was read from it after that message, so that its
                    // socket is read again and it sees its bytes taken.
                    let (frames, bytes) = state.decoder.complete_frames();
                    let read_after = bytes + frames * QUEUED_FRAME_OVERHEAD;
                    headroom::plain_charge(message.len()) + read_after
                }
                _ => 0,
            };
        }
        self.flow.dirty = true;
        self.stats.stall_escapes += u64::from(stalled);
        self.stats.lazy_escapes += u64::from(self.flow.lazy_round);
        self.stats.held_peer_escapes += held_too_long;
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work, if ever. Only peers
    /// the node waits on while full, peers in the middle of a frame and peers paused
    /// for their rate set a deadline; expired ids are also forgotten lazily, so an idle
    /// node is never woken.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let (stall, overdue) = self.escape_deadlines();
        let node = [
            stall,
            overdue,
            self.application_deadline(),
            self.plumtree_deadline(),
        ];
        // Most calls find no peer waited on, mid-frame or paused for its rate: then no
        // peer has a deadline, and the peers need not be looked at.
        let waiting = self.flow.congested();
        let partial = self.partial_bytes > 0;
        if !waiting && !partial && self.config.peer_rate_limit.is_none() {
            return node.into_iter().flatten().min();
        }
        let timeout = self.config.frame_timeout;
        let per_peer = self.peers.iter().flat_map(|(_, state)| {
            [
                self.slow_deadline(state),
                state.frame_deadline(timeout),
                state.rate_paused_until,
            ]
        });
        per_peer.chain(node).flatten().min()
    }

    /// When the application is taken for stalled if it takes nothing: while its queue
    /// is full, `slow_peer_timeout` after it became full or last took something.
    pub(super) fn application_deadline(&self) -> Option<Instant> {
        let since = self.application.waited_since()?;
        since.checked_add(self.config.slow_peer_timeout)
    }

    /// When the next round of a stall escape comes, and when the next one for peers held
    /// too long comes (see `flow::hold_limit`; that one takes only from them).
    ///
    /// The node escapes a stall (takes new messages again until the total is full)
    /// if nothing it waits on has moved: a `stall_escape` after it became full or after
    /// the last progress of a peer it waits on, whichever is later. Not while the total
    /// has no room at all; while it is full but has drained below its budget, an escape
    /// takes what fits (a ring whose totals all stayed marked full would otherwise stop
    /// until one of them drained to half, which in a ring none does).
    ///
    /// Nor while the messages owed to plumtree peers fill the cache's budget and the
    /// total's together: outside escapes the node takes nothing while a peer they are
    /// owed to is full, so they grow only with escape rounds (what a round takes pushes
    /// cached messages out), and so stay within that bound plus one round. They do not
    /// count in the total itself: two nodes whose totals were full of them could never
    /// escape a wait on each other (seen as a slow-peer cut in a clique of six).
    pub(super) fn escape_deadlines(&self) -> (Option<Instant>, Option<Instant>) {
        let owed_cap = self.config.plumtree.as_ref().map_or(0, |p| p.cache_bytes)
            + self.config.total_queue_bytes;
        // A plumtree node's lazy rounds go on past the total, up to their allowance.
        let ceiling = match self.plumtree {
            Some(_) => flow::lazy_allowance(self.config.peer_queue_bytes),
            None => 0,
        };
        if self.config.overload == Overload::Shed
            || self.committed_bytes() >= self.config.total_queue_bytes.saturating_add(ceiling)
            || self.owed_bytes >= owed_cap
        {
            return (None, None);
        }
        let Some(since) = self.flow.congested_since else {
            return (None, None);
        };
        let since = self.flow.escaped_at.map_or(since, |at| at.max(since));
        let waited_on = self
            .peers
            .iter()
            .filter(|(_, state)| state.queued_bytes > 0 && state.is_full());
        let progress = waited_on.map(|(_, state)| state.last_progress).max();
        let stalled = progress
            .map_or(since, |p| p.max(since))
            .checked_add(self.config.stall_escape);
        // A peer held too long is taken from at once, a stall or not, but no sooner
        // than a `stall_escape` after the last round.
        let hold_limit = flow::hold_limit(self.config.slow_peer_timeout);
        let overdue_at = self
            .peers
            .iter()
            .filter_map(|(_, s)| s.held_overdue_at(hold_limit));
        let overdue = overdue_at
            .min()
            .zip(since.checked_add(self.config.stall_escape))
            .map(|(overdue, next_round)| overdue.max(next_round));
        (stalled, overdue)
    }

    /// The peers to cut as slow at `now`, with what they have queued: those the node
    /// waited on for `slow_peer_timeout` while they took nothing, and with them (with
    /// reading pauses) every peer more than half full that took nothing in that time
    /// either. Peers that stopped reading together fill their queues a few messages
    /// apart (their kernel buffers took different amounts), and the node waits on only
    /// the first to fill; without the second rule they were cut a timeout after one
    /// another while the node held everything back.
    pub(super) fn slow_peers(&self, now: Instant) -> Vec<(PeerId, usize)> {
        let timeout = self.config.slow_peer_timeout;
        let due = |state: &Peer| self.slow_deadline(state).filter(|at| *at <= now);
        let mut slow = Vec::new();
        // The latest start of a wait that ends in a cut now.
        let mut waited_from = None;
        for (peer, state) in self.peers.iter() {
            if let Some(deadline) = due(state) {
                slow.push((peer, state.queued_bytes));
                waited_from = waited_from.max(deadline.checked_sub(timeout));
            }
        }
        if let (Some(from), Overload::PauseReading) = (waited_from, self.config.overload) {
            let half = self.config.peer_queue_bytes / 2;
            let stuck_as_long = self.peers.iter().filter(|(_, state)| {
                state.queued_bytes > 0
                    && state.committed_bytes() > half
                    && state.last_progress <= from
                    && due(state).is_none()
            });
            slow.extend(stuck_as_long.map(|(peer, state)| (peer, state.queued_bytes)));
        }
        slow
    }

    /// When `state`'s peer is cut if it takes nothing: the node waits on a full peer,
    /// and on every peer with bytes queued while the total is full.
    pub(super) fn slow_deadline(&self, state: &Peer) -> Option<Instant> {
        let waited_since = state.full_since.or(self.flow.total_full_since);
        state.slow_deadline(waited_since, self.config.slow_peer_timeout)
    }
}
