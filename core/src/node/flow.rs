//! Flow control: which queues are full, and from which peers the node takes new
//! messages.
//!
//! A peer's queue is *full* from when it reaches its budget until it drains to half of
//! it; the same holds for the total over all peers. The halfway hysteresis keeps the
//! node from pausing and resuming on every frame. With [`Overload::PauseReading`] the
//! node takes new messages from peer X only while no peer but X is full and the total
//! is not: every message from X goes to every peer but X, so taking X's messages cannot
//! grow X's queue. From a peer it cannot take new messages from, the node still reads
//! and drops duplicates (they cost nothing and free that peer's queue), and holds the
//! first new message, after which the caller stops reading the peer.
//!
//! Why this cannot deadlock a network without cycles: a node that does not take from
//! X waits on a full queue towards some other peer Y. If Y does not take either, Y
//! waits on a peer other than this node, and so on: the chain of waits never turns
//! back along a link, so in a tree it runs away from X and ends at a node that takes,
//! whose queues then drain. In a graph with cycles the chain can close on itself (a ring
//! of nodes, each with a full queue towards the next and a new message held from the
//! one before). A node that has waited `stall_escape` with none of its full queues
//! moving then *escapes*: whatever its peers' budgets, it takes a round of new
//! messages, half a peer budget shared among the peers it takes from (at least one
//! message from each; which ones, below), which lets the peer before it in a ring
//! drain and take again, and another
//! round every further `stall_escape` without progress, as long as the total has room
//! (its full mark does not stop an escape, only a total with no room left does).
//! While it is full nobody can publish into it and its peers are held back too, so in
//! a network of nodes what is in flight is finite, and the total (16 peer budgets by
//! default) absorbs it: the ring turns.
//!
//! Which peers a round takes from matters for clients that write at full speed: they
//! are read like any peer, and whatever the node takes from them goes to every other
//! peer, also into the queues towards the stalled nodes around the cycle, which drain
//! at most a round per round. When the node holds a message from a peer it waits on
//! (its queue to that peer is full), the two wait on each other, and a round takes only
//! from such peers ([`escapes_from`]): that frees their queues towards the node, and
//! they take from it in turn. A client reads everything the node sends, so the node
//! never waits on it and reads it only while not full; a ring, where a node waits on
//! none of the peers it holds messages from (it waits on the next and holds the one
//! before), takes from all of them. The round is shared among the peers it takes from,
//! so what enters the cycle per round is no more than what leaves it, and duplicates
//! (free to read) drain it. This is measured, not proved: in 10,000 generated networks
//! with up to three such clients (the ignored `count_cycle_failures` in the flow-control
//! tests) nothing was lost and no link cut, where rounds from every peer failed 7 of
//! 3,000 and cut 10 links, and a clique of six over TCP with a client at each node
//! (the conformance suite) no longer cuts links; if the totals around a cycle did fill,
//! the slow-peer rule would cut a peer (see the README for what that costs). They do
//! fill in dense meshes with such a client at every node, as every message taken is
//! queued for every peer: the total counts a message's bytes once however many peers
//! it is queued for (`shared_runs`), which moved that point from cliques of eight to
//! larger ones (the ignored `count_clique_failures`, and the README). Copies kept
//! back from the socket that a peer turns out to have are dropped when it sends the
//! message (`backlog`), which gives room back while the node reads duplicates; it
//! thins what such a mesh carries, but its totals still fill.
//!
//! A peer the node holds a message from but does not wait on is left out of the
//! rounds, so while the node stays full it is never taken from. A client can wait so;
//! a node cannot: if it waits on this one, it sees its queue stand still and cuts this
//! node as slow after `slow_peer_timeout`, though both keep reading. So a peer held a
//! quarter of that timeout ([`hold_limit`]) gets its held message taken, stalled or
//! not (see `Node::escape_deadlines`), and the whole frames read from it after that
//! message: a runtime reads a socket ahead of the node, so a message taken out of
//! those reads does not move the socket, and the peer would not see it. That is
//! enough to show progress, and too little to fill the queues around a cycle (full
//! rounds for such peers cut more links over TCP).
//!
//! With plumtree a round can cost the queues next to nothing. A stalled node whose
//! total has no room left for a frame of the largest size, where a round could take
//! nothing, makes it *lazy* ([`lazy_round`]): what the round takes goes to no plumtree
//! peer whole; each is announced it (an IHave entry, 18 bytes on the wire) and grafts
//! it unless another peer brings it first, as a lazy peer does. The total may pass its
//! budget by [`lazy_allowance`] (one peer budget) for those announcements and for the
//! copies plain peers still get whole. Where every node of a dense mesh had filled its
//! total, rounds took nothing and the slow-peer rule ended the waits by cutting links;
//! lazy rounds keep the nodes reading each other (the simulator's plumtree cliques of
//! twelve with a client at every node, 40 seeds: 129 links cut in 16 runs before, 10
//! in 3 with them; rounds that sent whole what they took, within the same allowance,
//! still cut links).
//!
//! Why measured and not proved: the classic proof that a store-and-forward network
//! cannot deadlock gives each hop count its own buffers (Merlin and Schweitzer, 1980),
//! so that a message waiting for room only ever waits on buffers of a higher count and
//! the waits cannot close a cycle. A flood frame carries no hop count (the wire is the
//! tutorial's and stays so), and a node cannot tell its first hop from its last; with
//! clients writing at full speed into every node, the total is the one bound, and the
//! rounds make the waits turn in every case tried without a proof that they always
//! do. Plumtree frames carry a round, so a network of plumtree nodes only could be
//! given such classes (not done). Lazy rounds are no proof either: their announcements
//! need room, and a node whose queues pass the total by the allowance takes nothing
//! until they drain.

use std::time::{Duration, Instant};

use super::peer::Peer;
use crate::Overload;

/// Whether the node is full, in the terms the reading rule needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Flow {
    /// Peers whose queue is full.
    pub(crate) full_peers: usize,
    /// Since when the total over all peers has been full, if it is.
    pub(crate) total_full_since: Option<Instant>,
    /// A peer's fullness or the total's changed since held messages were last looked
    /// at.
    pub(crate) dirty: bool,
    /// Since when something has been full, as of the last time held messages were
    /// looked at.
    pub(crate) congested_since: Option<Instant>,
    /// Whether the node stalled while full, and takes new messages whatever its peers'
    /// own budgets: up to `Peer::escape_room` from each peer per round, within the total.
    pub(crate) escaping: bool,
    /// When the current round of the escape began: the next comes a `stall_escape`
    /// later if nothing the node waits on moves meanwhile.
    pub(crate) escaped_at: Option<Instant>,
    /// Whether this round of the escape is *lazy* ([`lazy_round`]): what it takes goes
    /// to no plumtree peer whole, only announced, and the total may pass its budget by
    /// [`lazy_allowance`]. Set only with `escaping`, and cleared with it.
    pub(crate) lazy_round: bool,
    /// Whether the application's delivery queue is full (it gets every new message, so
    /// nothing new is taken from anyone).
    pub(crate) application_full: bool,
}

/// Deliveries handed to the application and not yet taken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Application {
    /// Their bytes, as `delivery_queue_bytes` counts them.
    pub(crate) queued: usize,
    /// Whether the queue is full, and since when.
    pub(crate) full_since: Option<Instant>,
    /// When the application last took a delivery, if it has.
    pub(crate) last_progress: Option<Instant>,
    /// Whether it took nothing for `slow_peer_timeout` while full: deliveries are
    /// dropped for it until it takes again.
    pub(crate) stalled: bool,
}

impl Application {
    /// Since when it has been waited on: since its queue filled, or since it last took
    /// something, whichever is later.
    pub(crate) fn waited_since(&self) -> Option<Instant> {
        let full_since = self.full_since?;
        Some(self.last_progress.map_or(full_since, |p| p.max(full_since)))
    }
}

impl Flow {
    /// Whether any queue to a peer is full: new messages are held somewhere and
    /// publishing refused.
    pub(crate) fn congested(&self) -> bool {
        self.full_peers > 0 || self.total_full_since.is_some()
    }

    /// Whether the node takes new messages from the peer `state` describes.
    pub(crate) fn takes_from(&self, overload: Overload, state: &Peer) -> bool {
        self.wants_read(overload, state.is_full(), state.escape_room > 0)
    }

    /// Whether the node takes new messages from a peer, given whether that peer's own
    /// queue is full and whether it has room left in this round of an escape. While
    /// escaping a stall, only the total and that room count.
    pub(crate) fn wants_read(
        &self,
        overload: Overload,
        peer_full: bool,
        escape_left: bool,
    ) -> bool {
        let others_full = self.full_peers.saturating_sub(usize::from(peer_full));
        match overload {
            Overload::Shed => true,
            Overload::PauseReading => {
                !self.application_full
                    && ((self.escaping && escape_left)
                        || (self.total_full_since.is_none() && others_full == 0))
            }
        }
    }
}

/// Whether a round of a stall escape takes from a peer, given whether the node waits on
/// any peer it holds a message from (its queue to that peer is full), and whether it
/// waits on this one: then only from the peers it waits on, otherwise from every peer.
///
/// A peer the node both holds a message from and waits on is waiting on the node in
/// turn (its queue towards the node is what the node does not read), so the two wait
/// on each other: taking its messages frees its queue towards the node, and it can take
/// from the node again. A peer whose queue from the node moves is not held up by the
/// node; taking its messages in a stall only adds to the queues that do not move (a
/// client writing at full speed, which reads everything, is such a peer, and is then
/// read only while the node is not full). Where the node waits on none of the peers it
/// holds messages from (a ring: each node waits on the next and holds a message from
/// the one before), it takes from all of them.
pub(crate) fn escapes_from(waits_on_a_held_peer: bool, waits_on_this_one: bool) -> bool {
    !waits_on_a_held_peer || waits_on_this_one
}

/// How long the node holds a peer's messages without taking one before a round of a
/// stall escape takes one, whatever else the round takes and even if the node is not
/// stalled: a quarter of `slow_peer_timeout`. A node whose queue towards this one does
/// not move would otherwise cut it as slow (this node cannot tell it from a client:
/// its queue to it moves, so the node does not wait on it). The held message and what
/// was read after it, per peer and quarter timeout, is what shows that node progress
/// (its socket is read again), and adds little to the queues around a cycle.
pub(crate) fn hold_limit(slow_peer_timeout: Duration) -> Duration {
    slow_peer_timeout / 4
}

/// What a node may take from each peer in one round of a stall escape: half a peer
/// budget shared among its `peers` (those the round takes from), but at least one
/// message of the largest size (`largest_charge`), so every held message can move.
pub(crate) fn escape_room(peer_budget: usize, peers: usize, largest_charge: usize) -> usize {
    (peer_budget / 2 / peers.max(1)).max(largest_charge)
}

/// Whether a round of a stall escape is lazy: the node speaks plumtree, and its total
/// has no room left for a frame of the largest size (`largest_charge`, as a queue
/// charges it), so a round could take nothing. Such a round takes up to
/// [`lazy_allowance`] past the total, and sends what it takes to no plumtree peer
/// whole: each is announced it (an IHave entry) and grafts it if no other peer brings
/// it. So a full plumtree node goes on reading the peers a round takes from.
pub(crate) fn lazy_round(
    speaks_plumtree: bool,
    committed: usize,
    total: usize,
    largest_charge: usize,
) -> bool {
    speaks_plumtree && committed.saturating_add(largest_charge) > total
}

/// How far past the total a lazy round may take it (announcements, and copies for
/// plain peers): one peer budget.
pub(crate) fn lazy_allowance(peer_budget: usize) -> usize {
    peer_budget
}

/// Fullness with hysteresis: full from `queued >= budget` until `queued <= budget / 2`.
/// Returns the new state (`since` kept while full, `now` when it becomes full).
pub(crate) fn fullness(
    since: Option<Instant>,
    queued: usize,
    budget: usize,
    now: Instant,
) -> Option<Instant> {
    match since {
        Some(since) if queued > budget / 2 => Some(since),
        None if queued >= budget => Some(now),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_at_the_budget_until_half_of_it() {
        let (t0, t1) = (
            Instant::now(),
            Instant::now() + std::time::Duration::from_secs(1),
        );
        assert_eq!(fullness(None, 99, 100, t0), None);
        assert_eq!(fullness(None, 100, 100, t0), Some(t0));
        assert_eq!(fullness(Some(t0), 51, 100, t1), Some(t0), "keeps its start");
        assert_eq!(fullness(Some(t0), 50, 100, t1), None);
        assert_eq!(
            fullness(None, 51, 100, t1),
            None,
            "not full again below budget"
        );
    }

    #[test]
    fn a_sole_full_peer_is_still_read_and_two_stop_everyone() {
        let pause = Overload::PauseReading;
        let mut flow = Flow::default();
        assert!(flow.wants_read(pause, false, true));
        flow.full_peers = 1;
        assert!(flow.wants_read(pause, true, true), "the full peer itself");
        assert!(!flow.wants_read(pause, false, true), "the others");
        flow.full_peers = 2;
        assert!(!flow.wants_read(pause, true, true));
        flow.full_peers = 0;
        flow.total_full_since = Some(Instant::now());
        assert!(!flow.wants_read(pause, true, true) && !flow.wants_read(pause, false, true));
        assert!(
            flow.wants_read(Overload::Shed, false, true),
            "shedding never pauses"
        );
    }

    #[test]
    fn an_escape_takes_a_round_from_each_peer_within_the_total() {
        let pause = Overload::PauseReading;
        let mut flow = Flow {
            full_peers: 2,
            escaping: true,
            ..Flow::default()
        };
        assert!(flow.wants_read(pause, false, true) && flow.wants_read(pause, true, true));
        assert!(
            !flow.wants_read(pause, false, false),
            "its room in this round used up"
        );
        flow.total_full_since = Some(Instant::now());
        assert!(
            flow.wants_read(pause, false, true),
            "the total's mark does not stop an escape: its room is checked per message"
        );
        flow.escaping = false;
        assert!(!flow.wants_read(pause, false, true));
    }

    #[test]
    fn an_escape_takes_only_from_peers_waited_on_if_it_holds_a_message_from_one() {
        assert!(escapes_from(true, true));
        assert!(!escapes_from(true, false), "a peer whose queue moves");
        assert!(
            escapes_from(false, true) && escapes_from(false, false),
            "a ring"
        );
    }

    #[test]
    fn a_round_is_lazy_when_a_plumtree_nodes_total_has_no_room_for_a_largest_frame() {
        let (total, largest) = (16_000, 1_000);
        assert!(
            !lazy_round(true, total - largest, total, largest),
            "room left"
        );
        assert!(lazy_round(true, total - largest + 1, total, largest));
        assert!(
            lazy_round(true, total + 1, total, largest),
            "past the total"
        );
        assert!(
            !lazy_round(false, total, total, largest),
            "flood announces nothing"
        );
        assert_eq!(lazy_allowance(4_000), 4_000, "a peer budget");
    }

    #[test]
    fn an_escape_round_is_half_a_budget_shared_but_at_least_one_message() {
        assert_eq!(escape_room(1200, 3, 100), 200);
        assert_eq!(escape_room(1200, 1, 100), 600);
        assert_eq!(escape_room(1200, 0, 100), 600, "no peers");
        assert_eq!(escape_room(1200, 10, 100), 100, "one largest message each");
    }
}
