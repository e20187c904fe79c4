//! [`Missing`]: messages announced by lazy peers (IHave) and not received yet, and when
//! to graft them.
//!
//! The first announcement of an id starts a timer of `graft_timeout`: if the message
//! has not come by then (from an eager peer), the node grafts it from the first peer
//! that announced it, and gives each further announcer `graft_retry` in turn (at once
//! if the connection to the one asked goes, [`Missing::peer_gone`]); after the last,
//! the answer is awaited one more `graft_timeout` before the id is given up (a repair
//! that answers after it is delivered all the same, just not counted). The caller
//! passes both timers, stretched to how late messages come (see
//! [`Lateness`](super::Lateness)). Bounded:
//! at most `max_missing` ids, each with at most [`MAX_ANNOUNCERS`] announcers; past
//! that, new announcements are dropped (the eager path, or a later repair, brings the
//! message).
//!
//! A given-up id is not yet a lost message: under overload the eager copy may simply be
//! late. It is counted as *missed* only if it has not come within the `horizon` after
//! (the cache retention, past which nothing can be repaired), or when more than
//! `max_missing` given-up ids are waited on at once (the oldest, early).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::wire::ShortId;
use crate::{PeerId, SeenHasher};

/// Announcers remembered per missing id.
pub const MAX_ANNOUNCERS: usize = 8;

#[derive(Debug)]
struct Pending {
    /// Every peer that announced it (they all have it), in order, with its round.
    announcers: Vec<(PeerId, u16)>,
    deadline: Instant,
    /// Grafts sent for it (given by `due` and not postponed): `announcers[grafted]`
    /// is asked next.
    grafted: usize,
    /// Every announcer was asked: the id is given up at `deadline`.
    last_wait: bool,
    /// When the first announcement came.
    announced_at: Instant,
}

/// Ids announced and not received, with their graft deadlines.
#[derive(Debug, Default)]
pub struct Missing {
    /// Keyed secretly (a peer chooses the ids it announces), and fast: every announced
    /// id and every new message is looked up.
    by_id: HashMap<ShortId, Pending, SeenHasher>,
    /// Deadlines, soonest first.
    deadlines: BTreeSet<(Instant, ShortId)>,
    max_missing: usize,
    /// How long a given-up id may still come before it counts as missed.
    horizon: Duration,
    /// Ids given up so far.
    given_up: u64,
    /// Given-up ids, oldest first, with when each counts as missed if it has not come;
    /// an id that came since is no longer in `doubtful_ids`, which keeps what was known
    /// of each (to tell how late it comes, if it does).
    doubtful: VecDeque<(Instant, ShortId)>,
    doubtful_ids: HashMap<ShortId, Pending, SeenHasher>,
    /// Given-up ids that did not come within the horizon.
    missed: u64,
}

/// What [`Missing::received_from`] knew of a message that arrived.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Arrival {
    /// It had been grafted (a repair).
    pub grafted: bool,
    /// When it was first announced, if it was and did not come from a peer it was
    /// grafted from: how late the tree brought it (see [`Lateness`](super::Lateness)).
    pub announced_at: Option<Instant>,
}

/// A graft to send: ask `peer` for `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Graft {
    /// The message wanted.
    pub id: ShortId,
    /// Whom to ask.
    pub peer: PeerId,
    /// The round its announcement gave.
    pub round: u16,
}

impl Missing {
    /// Tracks at most `max_missing` ids (and as many given up); a given-up id that has
    /// not come within `horizon` counts as missed.
    pub fn new(max_missing: usize, horizon: Duration) -> Self {
        Missing {
            max_missing,
            horizon,
            ..Missing::default()
        }
    }

    /// `peer` announced `id` (not received yet) at `round`.
    pub fn announce(
        &mut self,
        now: Instant,
        id: ShortId,
        peer: PeerId,
        round: u16,
        timeout: Duration,
    ) {
        if let Some(pending) = self.by_id.get_mut(&id) {
            let known = pending.announcers.iter().any(|(p, _)| *p == peer);
            if !known && pending.announcers.len() < MAX_ANNOUNCERS {
                pending.announcers.push((peer, round));
            }
            return;
        }
        if self.by_id.len() >= self.max_missing {
            return;
        }
        let Some(deadline) = now.checked_add(timeout) else {
            return;
        };
        let mut announcers = Vec::with_capacity(2);
        announcers.push((peer, round));
        self.by_id.insert(
            id,
            Pending {
                announcers,
                deadline,
                grafted: 0,
                last_wait: false,
                announced_at: now,
            },
        );
        self.deadlines.insert((deadline, id));
    }

    /// `id` arrived: stop waiting for it. Returns whether it had been grafted (a
    /// repair).
    pub fn received(&mut self, id: &ShortId) -> bool {
        self.received_from(id, None, |_| {}).grafted
    }

    /// As [`received`](Self::received), from `sender` (`None`: published here), calling
    /// `announcer` with each peer that announced `id` (up to [`MAX_ANNOUNCERS`]): those
    /// have it already.
    pub fn received_from(
        &mut self,
        id: &ShortId,
        sender: Option<PeerId>,
        mut announcer: impl FnMut(PeerId),
    ) -> Arrival {
        // Given up, then announced again: waited for twice.
        let doubtful = match self.doubtful_ids.is_empty() {
            true => None,
            false => self.doubtful_ids.remove(id),
        };
        let (pending, given_up) = match (self.by_id.remove(id), doubtful) {
            (Some(pending), _) => {
                self.deadlines.remove(&(pending.deadline, *id));
                (pending, false)
            }
            (None, Some(pending)) => (pending, true),
            (None, None) => return Arrival::default(),
        };
        for &(peer, _) in &pending.announcers {
            announcer(peer);
        }
        let asked = &pending.announcers[..pending.grafted.min(pending.announcers.len())];
        let answered = asked.iter().any(|&(peer, _)| Some(peer) == sender);
        Arrival {
            grafted: pending.grafted > 0 && !given_up,
            announced_at: (!answered).then_some(pending.announced_at),
        }
    }

    /// The grafts due by `now`: for each id whose timer ran out, its next announcer
    /// (the timer restarts with `retry`); once none is left, the last is awaited for
    /// `patience`, then the id is given up.
    pub fn due(&mut self, now: Instant, retry: Duration, patience: Duration) -> Vec<Graft> {
        while self.doubtful.front().is_some_and(|&(at, _)| at <= now) {
            self.settle_oldest_doubtful();
        }
        let mut grafts = Vec::new();
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.remove(&(deadline, id));
            let Some(pending) = self.by_id.get_mut(&id) else {
                continue;
            };
            let next = match pending.announcers.get(pending.grafted) {
                Some(&(peer, round)) => {
                    grafts.push(Graft { id, peer, round });
                    pending.grafted += 1;
                    now.checked_add(retry)
                }
                None if !pending.last_wait => {
                    pending.last_wait = true;
                    now.checked_add(patience)
                }
                None => None,
            };
            match next {
                Some(next) => {
                    pending.deadline = next;
                    self.deadlines.insert((next, id));
                }
                None => {
                    if let Some(pending) = self.by_id.remove(&id) {
                        self.given_up += 1;
                        self.doubt(now, id, pending);
                    }
                }
            }
        }
        grafts
    }

    /// `peer` went: it is asked for nothing more, and an id whose last graft went to it
    /// is grafted from its next announcer at once (if none is left, the last wait
    /// starts at once), since that answer will not come. A pass over the ids waited for (at most
    /// `max_missing`), once per connection that ends.
    pub fn peer_gone(&mut self, now: Instant, peer: PeerId) {
        for (id, pending) in &mut self.by_id {
            let asked = pending.grafted.min(pending.announcers.len());
            let unasked = pending.announcers[asked..]
                .iter()
                .position(|&(p, _)| p == peer);
            if let Some(at) = unasked {
                pending.announcers.remove(asked + at);
            }
            let last_asked = asked.checked_sub(1).map(|last| pending.announcers[last].0);
            if last_asked == Some(peer) && pending.deadline > now {
                self.deadlines.remove(&(pending.deadline, *id));
                pending.deadline = now;
                self.deadlines.insert((now, *id));
            }
        }
    }

    /// `graft`, just given by [`due`](Self::due), could not be sent (its peer's queue
    /// had no room): the same announcer is asked again at the id's next deadline, before
    /// any other, so waiting on a slow link never gives a message up.
    pub fn postpone(&mut self, graft: Graft) {
        if let Some(pending) = self.by_id.get_mut(&graft.id) {
            let last = pending.grafted.checked_sub(1);
            if last.and_then(|at| pending.announcers.get(at)) == Some(&(graft.peer, graft.round)) {
                pending.grafted -= 1;
            }
        }
    }

    /// Ids given up so far: every announcer was asked and none answered in time (the
    /// message may still come).
    pub fn given_up(&self) -> u64 {
        self.given_up
    }

    /// Given-up ids that did not come within the horizon: messages this node missed.
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// Waits up to the horizon for given-up `id`, settling the oldest given-up id first
    /// if `max_missing` are waited for already.
    fn doubt(&mut self, now: Instant, id: ShortId, pending: Pending) {
        if self.doubtful.len() >= self.max_missing {
            self.settle_oldest_doubtful();
        }
        if let Some(at) = now.checked_add(self.horizon) {
            if self.doubtful_ids.insert(id, pending).is_none() {
                self.doubtful.push_back((at, id));
            }
        }
    }

    /// Stops waiting for the oldest given-up id: missed, unless it came meanwhile.
    fn settle_oldest_doubtful(&mut self) {
        if let Some((_, id)) = self.doubtful.pop_front() {
            if self.doubtful_ids.remove(&id).is_some() {
                self.missed += 1;
            }
        }
    }

    /// When [`due`](Self::due) next has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        let graft = self.deadlines.first().map(|(at, _)| *at);
        let doubtful = self.doubtful.front().map(|(at, _)| *at);
        graft.into_iter().chain(doubtful).min()
    }

    /// Ids waited for now.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether nothing is waited for.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plumtree::wire::short_id;
    use crate::MessageId;

    const TIMEOUT: Duration = Duration::from_millis(80);
    const RETRY: Duration = Duration::from_millis(40);
    const HORIZON: Duration = Duration::from_secs(30);

    #[test]
    fn grafts_the_first_announcer_then_the_next() {
        let t0 = Instant::now();
        let mut missing = Missing::new(10, HORIZON);
        let id = short_id(&MessageId::of(b"m"));
        missing.announce(t0, id, PeerId(1), 3, TIMEOUT);
        missing.announce(t0, id, PeerId(2), 4, TIMEOUT);
        missing.announce(t0, id, PeerId(1), 3, TIMEOUT);
        assert_eq!(missing.next_deadline(), Some(t0 + TIMEOUT));
        assert!(missing
            .due(t0 + TIMEOUT - Duration::from_nanos(1), RETRY, TIMEOUT)
            .is_empty());
        let first = missing.due(t0 + TIMEOUT, RETRY, TIMEOUT);
        assert_eq!(
            first,
            [Graft {
                id,
                peer: PeerId(1),
                round: 3
            }]
        );
        let second = missing.due(t0 + TIMEOUT + RETRY, RETRY, TIMEOUT);
        assert_eq!(
            second,
            [Graft {
                id,
                peer: PeerId(2),
                round: 4
            }]
        );
        // No announcer left: the last is awaited one more timeout, then given up.
        let last = t0 + TIMEOUT + RETRY * 2;
        assert!(missing.due(last, RETRY, TIMEOUT).is_empty());
        assert_eq!(missing.len(), 1);
        assert_eq!(missing.given_up(), 0);
        assert!(missing.due(last + TIMEOUT, RETRY, TIMEOUT).is_empty());
        assert!(missing.is_empty());
        assert_eq!(missing.given_up(), 1);
        // Missed only if it has not come within the horizon after.
        let gave_up = last + TIMEOUT;
        assert_eq!(missing.next_deadline(), Some(gave_up + HORIZON));
        missing.due(gave_up + HORIZON - Duration::from_nanos(1), RETRY, TIMEOUT);
        assert_eq!(missing.missed(), 0);
        missing.due(gave_up + HORIZON, RETRY, TIMEOUT);
        assert_eq!((missing.missed(), missing.next_deadline()), (1, None));
    }

    /// Announces `payload`'s id from one peer at `at` and runs the timers until it is
    /// given up (the graft, the retry, then one more timeout); returns the id.
    fn give_up(missing: &mut Missing, at: Instant, payload: &[u8]) -> ShortId {
        let id = short_id(&MessageId::of(payload));
        missing.announce(at, id, PeerId(1), 1, TIMEOUT);
        for wait in [TIMEOUT, TIMEOUT + RETRY, TIMEOUT + RETRY + TIMEOUT] {
            missing.due(at + wait, RETRY, TIMEOUT);
        }
        id
    }

    #[test]
    fn a_given_up_id_that_comes_later_is_not_missed() {
        let t0 = Instant::now();
        let mut missing = Missing::new(10, HORIZON);
        let id = give_up(&mut missing, t0, b"late");
        assert_eq!(missing.given_up(), 1);
        assert!(!missing.received(&id), "not a repair: it was given up");
        missing.due(t0 + HORIZON * 2, RETRY, TIMEOUT);
        assert_eq!(missing.missed(), 0);
    }

    #[test]
    fn an_arrival_tells_how_late_it_is_unless_it_came_from_a_peer_asked_for_it() {
        let t0 = Instant::now();
        let mut missing = Missing::new(10, HORIZON);
        // Given up after asking peer 1; the tree brings it from peer 2.
        let id = give_up(&mut missing, t0, b"late");
        let arrival = missing.received_from(&id, Some(PeerId(2)), |_| {});
        let told = Arrival {
            grafted: false,
            announced_at: Some(t0),
        };
        assert_eq!(arrival, told);
        // Peer 1's answer: how late the tree is, it does not say.
        let id = give_up(&mut missing, t0, b"answered");
        let arrival = missing.received_from(&id, Some(PeerId(1)), |_| {});
        assert_eq!(arrival, Arrival::default());
        // Not asked yet: from its announcer too.
        let id = short_id(&MessageId::of(b"early"));
        missing.announce(t0, id, PeerId(1), 1, TIMEOUT);
        let arrival = missing.received_from(&id, Some(PeerId(1)), |_| {});
        assert_eq!(arrival, told);
    }

    #[test]
    fn a_given_up_id_announced_again_then_come_is_not_missed() {
        let t0 = Instant::now();
        let mut missing = Missing::new(10, HORIZON);
        let id = give_up(&mut missing, t0, b"again");
        missing.announce(t0 + HORIZON / 2, id, PeerId(2), 1, TIMEOUT);
        missing.received(&id);
        missing.due(t0 + HORIZON * 2, RETRY, TIMEOUT);
        assert_eq!((missing.given_up(), missing.missed()), (1, 0));
    }

    #[test]
    fn past_max_missing_given_up_ids_the_oldest_counts_as_missed_at_once() {
        let t0 = Instant::now();
        let mut missing = Missing::new(2, HORIZON);
        for (n, payload) in [&b"a"[..], b"b", b"c"].into_iter().enumerate() {
            give_up(&mut missing, t0 + Duration::from_secs(n as u64), payload);
        }
        assert_eq!((missing.given_up(), missing.missed()), (3, 1));
    }

    #[test]
    fn a_postponed_graft_asks_the_same_announcer_at_the_next_deadline() {
        let t0 = Instant::now();
        let id = short_id(&MessageId::of(b"m"));
        let announced = || {
            let mut missing = Missing::new(10, HORIZON);
            missing.announce(t0, id, PeerId(1), 3, TIMEOUT);
            missing.announce(t0, id, PeerId(2), 4, TIMEOUT);
            missing
        };
        let mut missing = announced();
        let first = missing.due(t0 + TIMEOUT, RETRY, TIMEOUT);
        missing.postpone(first[0]);
        assert_eq!(missing.due(t0 + TIMEOUT + RETRY, RETRY, TIMEOUT), first);
        let next = missing.due(t0 + TIMEOUT + RETRY * 2, RETRY, TIMEOUT);
        assert_eq!(next[0].peer, PeerId(2));
        // Postponed, then it came: no graft was sent, so it is no repair.
        let mut missing = announced();
        let first = missing.due(t0 + TIMEOUT, RETRY, TIMEOUT);
        missing.postpone(first[0]);
        assert!(!missing.received(&id));
    }

    #[test]
    fn arrival_cancels_and_reports_a_repair() {
        let t0 = Instant::now();
        let mut missing = Missing::new(10, HORIZON);
        let (a, b) = (
            short_id(&MessageId::of(b"a")),
            short_id(&MessageId::of(b"b")),
        );
        missing.announce(t0, a, PeerId(1), 0, TIMEOUT);
        missing.announce(t0, b, PeerId(1), 0, TIMEOUT);
        assert!(!missing.received(&a), "not grafted");
        missing.due(t0 + TIMEOUT, RETRY, TIMEOUT);
        assert!(missing.received(&b), "grafted, then arrived");
        assert_eq!(missing.next_deadline(), None);
    }

    #[test]
    fn bounded_in_ids_and_announcers() {
        let t0 = Instant::now();
        let mut missing = Missing::new(2, HORIZON);
        for i in 0..5u8 {
            missing.announce(t0, short_id(&MessageId::of(&[i])), PeerId(1), 0, TIMEOUT);
        }
        assert_eq!(missing.len(), 2);
        let id = short_id(&MessageId::of(&[0]));
        for p in 0..20 {
            missing.announce(t0, id, PeerId(p), 0, TIMEOUT);
        }
        let mut grafts = 0;
        let mut now = t0 + TIMEOUT;
        while !missing.is_empty() {
            grafts += missing
                .due(now, RETRY, TIMEOUT)
                .iter()
                .filter(|g| g.id == id)
                .count();
            now += RETRY;
        }
        assert_eq!(grafts, MAX_ANNOUNCERS);
    }
}
