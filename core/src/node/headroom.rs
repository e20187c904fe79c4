//! Headroom: how many more bytes of new messages the queues a message goes to can take
//! before one of them passes its budget.
//!
//! With [`Overload::PauseReading`](crate::Overload) a new message is taken only if it
//! fits: in the queue of every peer that gets it (whole, or announced to a lazy
//! plumtree peer: its IHave entry, counted with the announcements gathered for it and
//! not sent yet), in the total over all peers, and in the application's delivery
//! queue. A message that does not fit is held, and the queue it did not fit marked
//! *full* (see `flow`), so reading pauses until that queue has drained to half its
//! budget. Plumtree's Graft frames wait for room the same way, and a Prune is not sent
//! without it. Queues therefore never pass their budgets, but for peer queues while
//! the node escapes a stall (only the total counts then, see `flow`), and the total
//! itself in a plumtree node's lazy round (by `flow::lazy_allowance`). The announcement
//! of the cache to a plumtree peer that connects is queued at once, but holds only the
//! newest ids that fit half the empty queue's budget.
//!
//! One exception keeps a message that can never fit from waiting forever: a queue at
//! most half full takes one more message whatever its size. With the default budgets a
//! largest message fits in half a budget anyway, so the exception only matters for
//! frames larger than half a queue, or a total smaller than twice what one message to
//! every peer is charged (more than 31 peers at 1 MiB per message by default); it
//! passes a budget by less than one message. Marking a queue full only when it is more
//! than half full is also what keeps the mark until the queue drains to half.

use std::time::Instant;

use super::flow;
use super::peer::{Peer, Wire};
use super::Node;
use crate::frame::HEADER_LEN;
use crate::plumtree::wire::{ihave_wire_len, GOSSIP_OVERHEAD};
use crate::{Overload, PeerId, QUEUED_FRAME_OVERHEAD};

/// The budget a message did not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Binding {
    /// This peer's own queue.
    Peer(PeerId),
    /// The total over all peers.
    Total,
    /// The application's delivery queue.
    Application,
    /// What the node may take from the sender in this round of a stall escape.
    EscapeRound,
}

/// The smallest room among one kind of peer, and which peer has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tightest {
    room: usize,
    peer: Option<PeerId>,
}

impl Tightest {
    const NONE: Tightest = Tightest {
        room: usize::MAX,
        peer: None,
    };

    fn include(&mut self, peer: PeerId, room: usize) {
        if room < self.room {
            *self = Tightest {
                room,
                peer: Some(peer),
            };
        }
    }
}

/// Room left for new messages, taken from message by message as they are admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Headroom {
    /// Among plain peers that get the message (a frame: payload plus length prefix).
    plain: Tightest,
    /// Among eager plumtree peers (a Gossip frame: a few bytes more).
    eager: Tightest,
    /// Among lazy plumtree peers (an IHave entry, charged as if a frame of its own).
    lazy: Tightest,
    plain_peers: usize,
    eager_peers: usize,
    lazy_peers: usize,
    total: usize,
    application: usize,
    /// While escaping a stall: what the sender may still bring in this round.
    source: usize,
}

/// What the budgets are, for [`Headroom::new`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budgets {
    pub(crate) peer: usize,
    pub(crate) total: usize,
    pub(crate) application: usize,
    /// The largest payload a message may have.
    pub(crate) max_payload: usize,
}

impl Headroom {
    /// Room for everything: nothing is held back (shedding, which has its own rule).
    pub(crate) const UNLIMITED: Headroom = Headroom {
        plain: Tightest::NONE,
        eager: Tightest::NONE,
        lazy: Tightest::NONE,
        plain_peers: 0,
        eager_peers: 0,
        lazy_peers: 0,
        total: usize::MAX,
        application: usize::MAX,
        source: usize::MAX,
    };

    /// The room for a message from `except` (`None`: published here) given the peers,
    /// the total committed (queued, and announcements gathered) and the application's
    /// queued deliveries (`None`: it gets none,
    /// because it published the message or stalled). `peer_budgets`: whether each
    /// peer's own budget counts (not while escaping a stall); `announce_only`: whether
    /// eager plumtree peers are only announced the message, as lazy ones are (in a
    /// lazy round of an escape, see `flow::lazy_round`).
    pub(crate) fn new<'a>(
        budgets: Budgets,
        peers: impl Iterator<Item = (PeerId, &'a Peer)>,
        except: Option<PeerId>,
        (peer_budgets, announce_only): (bool, bool),
        (total_committed, application_queued): (usize, Option<usize>),
    ) -> Self {
        let mut headroom = Headroom {
            application: application_queued.map_or(usize::MAX, |queued| {
                room(
                    queued,
                    budgets.application,
                    budgets.max_payload + QUEUED_FRAME_OVERHEAD,
                )
            }),
            ..Headroom::UNLIMITED
        };
        let plain_largest = plain_charge(budgets.max_payload);
        let eager_largest = plain_largest + GOSSIP_OVERHEAD;
        for (id, state) in peers {
            if Some(id) == except {
                continue;
            }
            let (tightest, largest, count) = match state.wire {
                Wire::Plain => (
                    &mut headroom.plain,
                    plain_largest,
                    &mut headroom.plain_peers,
                ),
                Wire::Plumtree { eager: true, .. } if !announce_only => (
                    &mut headroom.eager,
                    eager_largest,
                    &mut headroom.eager_peers,
                ),
                Wire::Plumtree { .. } => {
                    (&mut headroom.lazy, ANNOUNCEMENT, &mut headroom.lazy_peers)
                }
            };
            *count += 1;
            if peer_budgets {
                let committed = state.committed_bytes();
                tightest.include(id, room(committed, budgets.peer, largest));
            }
        }
        let largest = headroom.total_charge(budgets.max_payload);
        headroom.total = room(total_committed, budgets.total, largest);
        headroom
    }

    /// What a message of `payload_len` bytes is charged in all peers' queues together:
    /// the plain peers share one frame and the eager ones one Gossip frame (see
    /// `shared_runs`), each copy charged its overhead; each lazy peer an announcement.
    fn total_charge(&self, payload_len: usize) -> usize {
        let plain = payload_len.saturating_add(HEADER_LEN);
        let eager = plain.saturating_add(GOSSIP_OVERHEAD);
        let shared = |wire: usize, peers: usize| match peers {
            0 => 0,
            _ => wire.saturating_add(QUEUED_FRAME_OVERHEAD.saturating_mul(peers)),
        };
        shared(plain, self.plain_peers)
            .saturating_add(shared(eager, self.eager_peers))
            .saturating_add(ANNOUNCEMENT.saturating_mul(self.lazy_peers))
    }

    /// Takes room for a message of `payload_len` bytes if it fits every budget, and says
    /// which one it does not fit otherwise (taking nothing).
    pub(crate) fn take(&mut self, payload_len: usize) -> Result<(), Binding> {
        let plain = plain_charge(payload_len);
        let eager = plain.saturating_add(GOSSIP_OVERHEAD);
        let total = self.total_charge(payload_len);
        let application = payload_len.saturating_add(QUEUED_FRAME_OVERHEAD);
        let kinds = [
            (self.plain, plain),
            (self.eager, eager),
            (self.lazy, ANNOUNCEMENT),
        ];
        for (tightest, charge) in kinds {
            if let (Some(peer), true) = (tightest.peer, charge > tightest.room) {
                return Err(Binding::Peer(peer));
            }
        }
        if total > self.total {
            return Err(Binding::Total);
        }
        if application > self.application {
            return Err(Binding::Application);
        }
        if plain > self.source {
            return Err(Binding::EscapeRound);
        }
        self.source = self.source.saturating_sub(plain);
        self.plain.room = self.plain.room.saturating_sub(plain);
        self.eager.room = self.eager.room.saturating_sub(eager);
        self.lazy.room = self.lazy.room.saturating_sub(ANNOUNCEMENT);
        self.total = self.total.saturating_sub(total);
        self.application = self.application.saturating_sub(application);
        Ok(())
    }
}

impl Node {
    /// The room for new messages from `from` (`None`: published here, so not delivered
    /// to the application).
    pub(super) fn headroom(&self, from: Option<PeerId>) -> Headroom {
        if self.config.overload == Overload::Shed {
            return Headroom::UNLIMITED;
        }
        let config = &self.config;
        let lazy = self.flow.lazy_round;
        let allowance = match lazy {
            true => flow::lazy_allowance(config.peer_queue_bytes),
            false => 0,
        };
        let budgets = Budgets {
            peer: config.peer_queue_bytes,
            total: config.total_queue_bytes.saturating_add(allowance),
            application: config.delivery_queue_bytes,
            max_payload: config.max_frame_len,
        };
        let delivered = from.is_some() && !self.application.stalled;
        let committed = self.committed_bytes();
        let queued = (committed, delivered.then_some(self.application.queued));
        let peer_budgets = !self.flow.escaping;
        let peers = self.peers.iter();
        let mut headroom = Headroom::new(budgets, peers, from, (peer_budgets, lazy), queued);
        if self.flow.escaping {
            let sender = from.and_then(|peer| self.peers.get(peer));
            headroom.source = sender.map_or(usize::MAX, |state| state.escape_room);
        }
        headroom
    }

    /// All queues as the total budget counts them: what is queued, and the
    /// announcements gathered for lazy peers. (Messages owed to plumtree peers are the
    /// cache's bytes, bounded apart: see `escape_deadline`.)
    pub(super) fn committed_bytes(&self) -> usize {
        debug_assert_eq!(
            self.gathered_bytes,
            self.peers
                .iter()
                .map(|(_, s)| s.gathered_charge())
                .sum::<usize>()
        );
        debug_assert_eq!(
            self.owed_bytes,
            self.peers
                .iter()
                .map(|(_, s)| super::plumtree::owed_charge(&s.owed))
                .sum::<usize>()
        );
        self.queued_bytes + self.gathered_bytes
    }

    /// Whether a control frame of `wire_len` bytes fits `peer`'s queue and the total,
    /// and which it does not fit otherwise.
    pub(super) fn control_fits(&self, peer: PeerId, wire_len: usize) -> Result<(), Binding> {
        let charge = wire_len.saturating_add(QUEUED_FRAME_OVERHEAD);
        self.fits_one(peer, charge)
    }

    /// Whether a message of `payload_len` bytes grafted by `peer` (a Gossip frame to it
    /// alone, whether it is eager or lazy by now) fits its queue and the total.
    pub(super) fn grafted_fits(&self, peer: PeerId, payload_len: usize) -> Result<(), Binding> {
        let charge = plain_charge(payload_len).saturating_add(GOSSIP_OVERHEAD);
        self.fits_one(peer, charge)
    }

    /// Whether a frame charged `charge` fits `peer`'s queue and the total, by the same
    /// rule as messages (always with shedding, which has its own). A stall escape does
    /// not lift the peer's own budget here: what goes to one peer alone breaks no wait.
    fn fits_one(&self, peer: PeerId, charge: usize) -> Result<(), Binding> {
        let Some(state) = self.peers.get(peer) else {
            return Ok(());
        };
        if self.config.overload == Overload::Shed {
            return Ok(());
        }
        let peer_budget = self.config.peer_queue_bytes;
        let committed = state.committed_bytes();
        if charge > room(committed, peer_budget, charge) {
            return Err(Binding::Peer(peer));
        }
        let total_budget = self.config.total_queue_bytes;
        match charge > room(self.committed_bytes(), total_budget, charge) {
            true => Err(Binding::Total),
            false => Ok(()),
        }
    }

    /// Marks the queue a message did not fit full (it is more than half full: see
    /// [`room`]), so that the node takes no new message that would go to it until it
    /// has drained to half.
    pub(super) fn mark_full(&mut self, now: Instant, binding: Binding) {
        let since = match binding {
            Binding::Peer(peer) => match self.peers.get_mut(peer) {
                Some(state) => &mut state.full_since,
                None => return,
            },
            Binding::Total => &mut self.flow.total_full_since,
            Binding::Application => &mut self.application.full_since,
            // Waits for the next round, or for the queues to drain.
            Binding::EscapeRound => return,
        };
        if since.is_some() {
            return;
        }
        *since = Some(now);
        match binding {
            Binding::Peer(_) => self.flow.full_peers += 1,
            Binding::Total => {}
            Binding::Application => self.flow.application_full = true,
            Binding::EscapeRound => {}
        }
        self.flow.dirty = true;
    }
}

/// What announcing one message to a lazy peer is charged at most: an IHave frame of
/// its own (in fact it mostly shares one with others).
const ANNOUNCEMENT: usize = ihave_wire_len(1) + QUEUED_FRAME_OVERHEAD;

/// What a plain frame of `payload_len` bytes is charged in a queue (and what a message
/// taken from a peer costs its escape round).
pub(super) fn plain_charge(payload_len: usize) -> usize {
    payload_len
        .saturating_add(HEADER_LEN)
        .saturating_add(QUEUED_FRAME_OVERHEAD)
}

/// The room in a queue of `budget` with `queued` bytes in it: what is left under the
/// budget; but at least `largest` (one message of any size) while it is at most half
/// full, so that a message larger than the rest of the budget is not held for ever.
fn room(queued: usize, budget: usize, largest: usize) -> usize {
    let left = budget.saturating_sub(queued);
    match queued <= budget / 2 {
        true => left.max(largest),
        false => left,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::Direction;

    const CHARGE: usize = 100 + HEADER_LEN + QUEUED_FRAME_OVERHEAD;

    fn budgets(peer: usize) -> Budgets {
        Budgets {
            peer,
            total: usize::MAX,
            application: usize::MAX,
            max_payload: 100,
        }
    }

    fn plain(queued: usize) -> Peer {
        let mut peer = Peer::new(Instant::now(), Direction::Inbound, Wire::Plain, 100);
        peer.queued_bytes = queued;
        peer
    }

    #[test]
    fn a_queue_takes_messages_up_to_its_budget_exactly() {
        let peers = [(PeerId(1), plain(0)), (PeerId(2), plain(0))];
        let iter = peers.iter().map(|(id, peer)| (*id, peer));
        let empty = HEADER_LEN + QUEUED_FRAME_OVERHEAD;
        let budget = 3 * CHARGE + empty;
        let mut headroom = Headroom::new(budgets(budget), iter, None, (true, false), (0, None));
        for _ in 0..3 {
            assert_eq!(headroom.take(100), Ok(()));
        }
        assert_eq!(headroom.take(100), Err(Binding::Peer(PeerId(1))));
        assert_eq!(headroom.take(0), Ok(()), "a smaller one still fits");
    }

    #[test]
    fn a_lazy_round_charges_an_eager_peer_an_announcement() {
        let eager = Wire::Plumtree {
            node_id: 7,
            eager: true,
            shortcut: crate::node::peer::Shortcut::Never,
        };
        let peers = [(
            PeerId(1),
            Peer::new(Instant::now(), Direction::Inbound, eager, 100),
        )];
        let message = 100 + HEADER_LEN + GOSSIP_OVERHEAD + QUEUED_FRAME_OVERHEAD;
        for (announce_only, charge) in [(false, message), (true, ANNOUNCEMENT)] {
            let budgets = Budgets {
                total: 2 * charge,
                ..budgets(usize::MAX)
            };
            let iter = peers.iter().map(|(id, peer)| (*id, peer));
            let mut headroom =
                Headroom::new(budgets, iter, None, (false, announce_only), (0, None));
            assert_eq!(headroom.take(100), Ok(()));
            assert_eq!(headroom.take(100), Ok(()));
            assert_eq!(headroom.take(100), Err(Binding::Total), "{announce_only}");
        }
    }

    #[test]
    fn the_fullest_peer_binds_and_the_sender_is_left_out() {
        let peers = [
            (PeerId(1), plain(3 * CHARGE)),
            (PeerId(2), plain(2 * CHARGE)),
        ];
        let headroom = |except| {
            let iter = peers.iter().map(|(id, peer)| (*id, peer));
            Headroom::new(budgets(3 * CHARGE), iter, except, (true, false), (0, None))
        };
        assert_eq!(headroom(None).take(100), Err(Binding::Peer(PeerId(1))));
        assert_eq!(headroom(Some(PeerId(1))).take(100), Ok(()));
        let mut escaping = {
            let iter = peers.iter().map(|(id, peer)| (*id, peer));
            Headroom::new(budgets(3 * CHARGE), iter, None, (false, false), (0, None))
        };
        assert_eq!(escaping.take(100), Ok(()), "only the total counts");
    }

    #[test]
    fn the_total_charges_a_message_once_with_each_copy_s_overhead_and_the_application_once() {
        let peers = [(PeerId(1), plain(0)), (PeerId(2), plain(0))];
        // The two peers' frames share the message's bytes.
        let shared = 100 + HEADER_LEN + 2 * QUEUED_FRAME_OVERHEAD;
        for (total, taken) in [(3 * shared - 1, 2), (3 * shared, 3)] {
            let budgets = Budgets {
                total,
                ..budgets(usize::MAX)
            };
            let iter = peers.iter().map(|(id, peer)| (*id, peer));
            let mut headroom = Headroom::new(budgets, iter, None, (true, false), (0, None));
            for _ in 0..taken {
                assert_eq!(headroom.take(100), Ok(()));
            }
            assert_eq!(headroom.take(100), Err(Binding::Total), "total {total}");
        }
        let budgets = Budgets {
            total: 5 * CHARGE,
            application: 2 * (100 + QUEUED_FRAME_OVERHEAD),
            ..budgets(usize::MAX)
        };
        let iter = peers.iter().map(|(id, peer)| (*id, peer));
        let budgets = Budgets {
            total: usize::MAX,
            ..budgets
        };
        let mut headroom = Headroom::new(budgets, iter, None, (true, false), (0, Some(0)));
        assert_eq!(headroom.take(100), Ok(()));
        assert_eq!(headroom.take(100), Ok(()));
        assert_eq!(headroom.take(100), Err(Binding::Application));
    }

    #[test]
    fn a_queue_at_most_half_full_takes_one_message_of_any_size() {
        // A budget of one and a half largest frames: never two.
        let budget = CHARGE * 3 / 2;
        assert_eq!(room(0, budget, CHARGE), budget);
        assert_eq!(
            room(budget / 2, budget, CHARGE),
            CHARGE,
            "half full: one more"
        );
        assert_eq!(room(budget / 2 + 1, budget, CHARGE), budget / 2 - 1);
        let big = 3 * CHARGE;
        assert_eq!(room(budget / 2, budget, big), big, "larger than the budget");
    }
}
