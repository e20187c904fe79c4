//! Plumtree's timers: announcements going out, grafts for messages announced and not
//! received, and promises the cache must keep.

use std::time::Instant;

use super::{from_short, set_eager};
use crate::node::Node;
use crate::plumtree::wire::{self};
use crate::PeerId;

impl Node {
    /// When the plumtree timers next have work.
    pub(in crate::node) fn plumtree_deadline(&self) -> Option<Instant> {
        let plumtree = self.plumtree.as_ref()?;
        [
            plumtree.ihave_due,
            plumtree.missing.next_deadline(),
            plumtree.cache.next_promise_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs the plumtree timers due by `now`: sends gathered announcements, grafts what
    /// has not arrived, and forgets expired cached messages.
    pub(in crate::node) fn plumtree_timeout(&mut self, now: Instant) {
        let Some(plumtree) = self.plumtree.as_mut() else {
            return;
        };
        plumtree.cache.expire(now);
        self.keep_promises(now);
        let Some(plumtree) = self.plumtree.as_mut() else {
            return;
        };
        let (patience, retry) = plumtree.graft_timers(now);
        let grafts = plumtree.missing.due(now, retry, patience);
        let ihaves_due = plumtree.ihave_due.is_some_and(|at| at <= now);
        if ihaves_due {
            plumtree.ihave_due = None;
            let waiting: Vec<PeerId> = self
                .peers
                .iter()
                .filter(|(_, state)| !state.ihaves.is_empty())
                .map(|(id, _)| id)
                .collect();
            for peer in waiting {
                self.send_ihaves(now, peer);
            }
        }
        for graft in grafts {
            if self.has_seen_id(&from_short(graft.id)) == Some(true) {
                continue;
            }
            let wanted = wire::graft(Some((graft.id, graft.round)));
            if let Err(binding) = self.control_fits(graft.peer, wanted.len()) {
                // Asked again later: the message may be nowhere else. The queue is
                // full, as for a message: so a peer that announces without reading
                // is judged by the slow-peer rule, not waited for with its ids held.
                self.mark_full(now, binding);
                if let Some(plumtree) = self.plumtree.as_mut() {
                    plumtree.missing.postpone(graft);
                }
                continue;
            }
            let Some(state) = self.peers.get_mut(graft.peer) else {
                continue;
            };
            set_eager(state, true);
            self.stats.grafts_sent += 1;
            self.queue_control(now, graft.peer, wanted);
        }
    }
}
