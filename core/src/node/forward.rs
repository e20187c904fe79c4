//! Queueing messages for the plain peers (each peer's queue and the total deciding what
//! it takes), and what a peer's flushed bytes free.

use std::collections::VecDeque;
use std::ops::Range;
use std::time::Instant;

use bytes::Bytes;

use super::admission::{self, Room};
use super::flow::{self, Flow};
use super::peer::{Peer, PeerTable, RunId};
use super::read_buffer::Read;
use super::run::Run;
use super::Node;
use crate::seen::{Identified, SeenKey};
use crate::{Action, Config, Frames, Overload, PeerId, Stats, QUEUED_FRAME_OVERHEAD};

impl Node {
    /// The caller wrote `bytes` bytes of queued frames to `peer`'s socket.
    pub fn handle_flushed(&mut self, now: Instant, peer: PeerId, bytes: usize) {
        let Some(state) = self.peers.get_mut(peer) else {
            return;
        };
        let flushed = state.flushed(now, bytes, &mut self.shared_runs.progress);
        self.queued_bytes -= flushed.released_from_total + self.shared_runs.release();
        self.stats.bytes_flushed += flushed.wire_bytes as u64;
        let send_ahead = self.config.send_ahead_bytes;
        while state.has_send_room(send_ahead) {
            let Some(kept) = state.backlog.pop() else {
                break;
            };
            let stretches = kept.stretches();
            let last = stretches.len().checked_sub(1);
            for (place, (bytes, count)) in stretches.into_iter().enumerate() {
                let wire_len = bytes.len();
                state.hand_over(wire_len, count, kept.run, Some(place) == last);
                self.stats.frames_out += count as u64;
                self.stats.bytes_out += wire_len as u64;
                let frames = kept.frames.part(bytes, count);
                self.actions.push_back(Action::Send { peer, frames });
            }
        }
        refresh_full(&mut self.flow, &self.config, state, false, now);
        if !state.is_full() && state.has_waiting_sends() {
            self.send_waiting(now, peer);
        }
        self.settle(now);
    }

    /// Forwards `run` (new frames of `read` from `from`) and empties it.
    pub(super) fn forward_run(&mut self, now: Instant, from: PeerId, read: &Read, run: &mut Run) {
        if !run.is_empty() {
            let lens = (run.frame_lens(), Some(run.keys()));
            self.forward(now, Some(from), lens, |bytes, count| {
                run.frames(read, bytes, count)
            });
            run.clear();
        }
    }

    /// Queues one message (received at plumtree `round`, 0 if plain or published) for
    /// every peer but `except`; returns how many took it.
    pub(super) fn forward_one(
        &mut self,
        now: Instant,
        except: Option<PeerId>,
        (identified, payload): (Identified, Bytes),
        round: u16,
    ) -> usize {
        let plumtree = match self.plumtree.is_some() {
            true => {
                let id = identified.id(&payload);
                self.forward_plumtree(now, except, id, &payload, round)
            }
            false => 0,
        };
        // `max_frame_len` fits a u32 (checked by `Config::validate`) and every payload was
        // checked against it, so framing cannot fail.
        let Some(frames) = Frames::single(payload) else {
            return plumtree;
        };
        let lens = (&[frames.wire_len()][..], Some(&[identified.key][..]));
        plumtree + self.forward(now, except, lens, |_, _| frames.clone())
    }

    /// Queues consecutive frames, of wire lengths `frame_lens`, for every peer but
    /// `except`; `frames(bytes, count)` gives the [`Frames`] for `count` of them lying at
    /// `bytes` (offsets from the first frame's start). Each frame goes to each peer with
    /// room for it in its queue and in the total. A peer's own queue decides exactly as if
    /// the frames came one by one; the total, shared, is filled peer by peer (all of a
    /// run for the first peer, then the next), not message by message. A peer gets the
    /// frames it takes in one `Send`, or one per stretch between frames shed for it.
    /// Returns how many peers took at least one frame.
    pub(super) fn forward(
        &mut self,
        now: Instant,
        except: Option<PeerId>,
        (frame_lens, keys): (&[usize], Option<&[SeenKey]>),
        frames: impl Fn(Range<usize>, usize) -> Frames,
    ) -> usize {
        let mut took = 0;
        let shared = self.share_among(|node| node.plain_peers_but(except));
        let (peers, mut queues) = self.queues();
        for (peer, state) in peers.iter_mut() {
            // Plumtree peers get their own frames (`forward_plumtree`).
            if Some(peer) == except || state.is_plumtree() {
                continue;
            }
            let target = (peer, state);
            let run = (frame_lens, shared);
            took += usize::from(queues.admit(now, target, run, keys, &frames));
        }
        self.charge_shared(shared, took, frame_lens);
        took
    }

    /// A shared run for frames about to be queued for as many peers as `peers` counts:
    /// with reading pauses each takes them whole, so their copies share the bytes (see
    /// `shared_runs`). The caller charges them with `charge_shared`.
    pub(super) fn share_among(&mut self, peers: impl FnOnce(&Self) -> usize) -> Option<RunId> {
        match self.config.overload {
            Overload::PauseReading => {
                let peers = peers(self);
                self.shared_runs.new_run(peers)
            }
            Overload::Shed => None,
        }
    }

    /// Charges the total, once, for the bytes of the shared `run` (frames of wire lengths
    /// `frame_lens`) that `copies` peers took.
    pub(super) fn charge_shared(
        &mut self,
        run: Option<RunId>,
        copies: usize,
        frame_lens: &[usize],
    ) {
        if let Some(run) = run {
            let wire_len = frame_lens.iter().sum();
            self.queued_bytes += self.shared_runs.queued(run, copies, wire_len);
        }
    }

    /// How many plain peers there are but `except`.
    pub(super) fn plain_peers_but(&self, except: Option<PeerId>) -> usize {
        let excepted = usize::from(except.is_some_and(|peer| self.peers.contains(peer)));
        match self.plumtree {
            // All peers are plain.
            None => self.peers.len() - excepted,
            Some(_) => self
                .peers
                .iter()
                .filter(|&(peer, state)| Some(peer) != except && !state.is_plumtree())
                .count(),
        }
    }

    /// The peers, and what queueing frames for one of them touches besides it.
    pub(super) fn queues(&mut self) -> (&mut PeerTable, Queues<'_>) {
        let queues = Queues {
            config: &self.config,
            queued_bytes: &mut self.queued_bytes,
            stats: &mut self.stats,
            actions: &mut self.actions,
            flow: &mut self.flow,
        };
        (&mut self.peers, queues)
    }
}

/// What queueing frames for a peer changes besides the peer: the total, the counters,
/// the actions, the node's fullness.
pub(super) struct Queues<'a> {
    config: &'a Config,
    queued_bytes: &'a mut usize,
    stats: &'a mut Stats,
    actions: &'a mut VecDeque<Action>,
    flow: &'a mut Flow,
}

impl Queues<'_> {
    /// Queues for `peer` the frames (of wire lengths `frame_lens`) its queue and the
    /// total take (all of them with reading pauses); `frames(bytes, count)` gives the
    /// [`Frames`] for `count` of them lying at `bytes`. With a `shared` run, they are a
    /// copy of it, taken whole, charged to the total without its bytes (the caller
    /// charges them once for every copy). Returns whether any was queued.
    ///
    /// With the frames' seen-set `keys`, what the peer's queue takes is kept back in its
    /// backlog while the caller has `send_ahead_bytes` of it unwritten (see `backlog`).
    pub(super) fn admit(
        &mut self,
        now: Instant,
        (peer, state): (PeerId, &mut Peer),
        (frame_lens, shared): (&[usize], Option<RunId>),
        keys: Option<&[SeenKey]>,
        frames: impl Fn(Range<usize>, usize) -> Frames,
    ) -> bool {
        let send_ahead = self.config.send_ahead_bytes;
        let room = Room::for_peer(self.config, state.queued_bytes, *self.queued_bytes);
        let mut sent = false;
        let shed = admission::admit(frame_lens, room, |stretch| {
            let wire_len = stretch.bytes.len();
            let charge = state.charge(now, wire_len, stretch.count);
            *self.queued_bytes += match shared {
                Some(_) => stretch.count * QUEUED_FRAME_OVERHEAD,
                None => charge,
            };
            let taken = stretch.first..stretch.first + stretch.count;
            let frames = frames(stretch.bytes, stretch.count);
            // Behind what is kept back already, or past `send_ahead_bytes` unwritten.
            let keep = !state.backlog.is_empty() || !state.has_send_room(send_ahead);
            match keys {
                Some(keys) if keep => {
                    state
                        .backlog
                        .push(frames, shared, &keys[taken.clone()], &frame_lens[taken]);
                }
                _ => {
                    state.hand_over(wire_len, stretch.count, shared, true);
                    self.stats.frames_out += stretch.count as u64;
                    self.stats.bytes_out += wire_len as u64;
                    self.actions.push_back(Action::Send { peer, frames });
                }
            }
            sent = true;
        });
        self.stats.frames_shed += shed.frames as u64;
        // With shedding, only a peer's own backlog counts against it; a full total
        // queue is resolved by disconnecting the peers that filled it.
        refresh_full(self.flow, self.config, state, shed.own_budget, now);
        sent
    }
}

/// Brings a peer's fullness up to date after its queue changed (`shed_for_it`: a frame
/// was just shed for lack of room in its own queue).
pub(super) fn refresh_full(
    flow: &mut Flow,
    config: &Config,
    state: &mut Peer,
    shed_for_it: bool,
    now: Instant,
) {
    let budget = config.peer_queue_bytes;
    let was_full = state.is_full();
    state.full_since = match config.overload {
        Overload::PauseReading => {
            flow::fullness(state.full_since, state.committed_bytes(), budget, now)
        }
        // Full from a frame shed for it until it drains to half.
        Overload::Shed if shed_for_it => state.full_since.or(Some(now)),
        Overload::Shed => state.full_since.filter(|_| state.queued_bytes > budget / 2),
    };
    if was_full != state.is_full() {
        if was_full {
            flow.full_peers -= 1;
        } else {
            flow.full_peers += 1;
        }
        flow.dirty = true;
    }
}
