//! Per-peer state: the frame decoder and the output-queue accounting.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::queue_charge;
use bytes::Bytes;

use super::backlog::Backlog;
use super::pacer::Pacer;
use crate::seen::Identified;
use crate::{Direction, FrameDecoder, PeerId, PeerStats, QUEUED_FRAME_OVERHEAD};

/// What a node knows about one connected peer.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) decoder: FrameDecoder,
    /// Bytes charged for frames sent to the caller for this peer and not yet flushed:
    /// their unwritten wire bytes, plus [`QUEUED_FRAME_OVERHEAD`] for each frame of a
    /// `Send` not completely written.
    pub(crate) queued_bytes: usize,
    /// Each `Send` handed to the caller and not completely written, oldest first, so
    /// that a flush of so many bytes tells how many frames it completed.
    send_ends: VecDeque<SendEnd>,
    /// What is queued and kept back from the caller (plain peers; see `backlog`).
    pub(crate) backlog: Backlog,
    /// Where the oldest queued `Send` begins in the peer's byte stream.
    completed_total: u64,
    /// Wire bytes queued for this peer since it connected.
    queued_total: u64,
    /// Wire bytes reported flushed since it connected.
    flushed_total: u64,
    /// Whether the queue is full (reached its budget, or with `Overload::Shed` had a
    /// frame shed for it) and has not drained to half since, and since when.
    pub(crate) full_since: Option<Instant>,
    /// A new message read from this peer while the node could take none from it, with
    /// everything after it still in `decoder`: taken when the node can. The caller is
    /// told to stop reading the peer while there is one.
    pub(crate) held: Option<(Identified, Bytes)>,
    /// Since when the node has held messages from this peer without taking one (a
    /// message taken starts the clock afresh): see [`Peer::held_overdue_at`].
    pub(crate) held_since: Option<Instant>,
    /// When a queued byte was last flushed, or the queue last went from empty to not
    /// empty: the slow-peer clock never starts before it.
    pub(crate) last_progress: Instant,
    /// Which side connected, when, and what it has sent.
    pub(crate) direction: Direction,
    pub(crate) connected_at: Instant,
    pub(crate) counters: Counters,
    /// Bytes charged to the partial-frame budget for the frame being assembled.
    pub(crate) partial_bytes: usize,
    /// When the frame being assembled began, or reading last resumed, whichever is
    /// later: the frame timeout runs from it.
    pub(crate) partial_since: Option<Instant>,
    /// Until when the peer is over its rate limit and not read.
    pub(crate) rate_paused_until: Option<Instant>,
    /// The rate limit's state: bytes, then new messages.
    pub(crate) pacers: (Pacer, Pacer),
    /// Whether the caller was last told to read this peer (a new peer is read).
    pub(crate) reading_announced: bool,
    /// The protocol spoken with this peer.
    pub(crate) wire: Wire,
    /// The round of the held message (plumtree peers).
    pub(crate) held_round: u16,
    /// Announcements waiting for this (lazy plumtree) peer's next IHave frame.
    pub(crate) ihaves: Vec<(crate::plumtree::wire::ShortId, u16)>,
    /// Messages this peer grafted while its queue was full, oldest first (at most
    /// [`MAX_DEFERRED_GRAFTS`](crate::plumtree::MAX_DEFERRED_GRAFTS)): sent as its queue
    /// drains.
    pub(crate) deferred_grafts: VecDeque<crate::plumtree::wire::ShortId>,
    /// Messages promised to this peer that the cache let go while its queue had no
    /// room, or (a plain peer) that it missed while its protocol was settled (message,
    /// round), oldest first: sent as it drains, before deferred grafts.
    pub(crate) owed: VecDeque<(Bytes, u16)>,
    /// While the node escapes a stall: charge of new messages it may still take from
    /// this peer in this round.
    pub(crate) escape_room: usize,
    /// A plumtree peer's promise slot (see [`Promises`](crate::plumtree::Promises));
    /// `None` (all slots taken, or a plain peer): never lazy.
    pub(crate) promise_slot: Option<u8>,
}

/// The protocol spoken with a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    /// `flood`: every message whole, as a plain frame.
    Plain,
    /// `plumtree`, with the peer's node id; `eager` peers get messages whole, lazy
    /// ones announcements.
    Plumtree {
        node_id: u64,
        eager: bool,
        /// Whether this node took the peer as a shortcut on this connection.
        shortcut: Shortcut,
    },
}

/// A plumtree peer as a shortcut towards the tree (see `Node::on_duplicate`). Each
/// connection is taken as one once at most: the rounds that make a shortcut are the
/// peer's word, and a peer that echoed every message back as if from its origin would
/// otherwise have the node prune its link to the tree again and again, and graft each
/// message it then withholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shortcut {
    /// Not taken as a shortcut.
    Never,
    /// Just taken: it had the message first, so it prunes this node on the copy it was
    /// sent, and that Prune, already under way, is ignored.
    StalePruneDue,
    /// Taken (its stale Prune came).
    Taken,
}

/// What a peer has sent, for its [`PeerStats`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counters {
    pub(crate) bytes_in: u64,
    pub(crate) frames_in: u64,
    pub(crate) first_deliveries: u64,
    pub(crate) duplicates: u64,
    pub(crate) last_first_delivery: Option<Instant>,
}

impl Counters {
    /// Of what the peer sent at `now`, `first` messages were new to the node and
    /// `duplicates` were not.
    pub(crate) fn record(&mut self, now: Instant, first: u64, duplicates: u64) {
        self.first_deliveries += first;
        self.duplicates += duplicates;
        if first > 0 {
            self.last_first_delivery = Some(now);
        }
    }
}

/// A run of frames queued for several peers at once (the same bytes, shared): the
/// total budget charges its wire bytes once, until the last of them has written it.
pub(crate) type RunId = usize;

/// How far a peer got with its copy of a shared run in one flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CopyProgress {
    pub(crate) run: RunId,
    /// Bytes of it written by this flush.
    pub(crate) written: usize,
    /// Whether the copy is done with: written whole, or dropped with its peer.
    pub(crate) complete: bool,
}

/// A `Send` handed to the caller: where it ends in the peer's byte stream, how many
/// frames it carries, and the shared run it is (part of) a copy of, if it is one.
#[derive(Debug, Clone, Copy)]
struct SendEnd {
    end: u64,
    frames: usize,
    run: Option<RunId>,
    /// Whether it ends its copy of `run` (a copy kept back and then handed over in
    /// stretches, round the frames dropped from it, is several `Send`s).
    completes_copy: bool,
}

/// What a flush accounted for.
pub(crate) struct Flushed {
    /// Wire bytes that were outstanding and are now written.
    pub(crate) wire_bytes: usize,
    /// What the total got back: the wire bytes, but those of shared runs (pushed for
    /// the node to count: the total gets a run's bytes back as its last copy is
    /// written), plus the overhead of each frame of the `Send`s the flush completed.
    pub(crate) released_from_total: usize,
}

impl Peer {
    pub(crate) fn new(
        now: Instant,
        direction: Direction,
        wire: Wire,
        max_frame_len: usize,
    ) -> Self {
        Peer {
            decoder: FrameDecoder::new(max_frame_len),
            queued_bytes: 0,
            send_ends: VecDeque::new(),
            backlog: Backlog::default(),
            completed_total: 0,
            queued_total: 0,
            flushed_total: 0,
            full_since: None,
            held: None,
            held_since: None,
            last_progress: now,
            direction,
            connected_at: now,
            counters: Counters::default(),
            partial_bytes: 0,
            partial_since: None,
            rate_paused_until: None,
            pacers: (Pacer::default(), Pacer::default()),
            reading_announced: true,
            wire,
            held_round: 0,
            ihaves: Vec::new(),
            deferred_grafts: VecDeque::new(),
            owed: VecDeque::new(),
            escape_room: 0,
            promise_slot: None,
        }
    }

    /// Whether this peer speaks plumtree.
    /// Whether messages or grafts wait for room in this peer's queue.
    pub(crate) fn has_waiting_sends(&self) -> bool {
        !self.owed.is_empty() || !self.deferred_grafts.is_empty()
    }

    pub(crate) fn is_plumtree(&self) -> bool {
        matches!(self.wire, Wire::Plumtree { .. })
    }

    /// Holds `message` (received at plumtree `round`, 0 from a plain peer) until the
    /// node can take it.
    pub(crate) fn hold(&mut self, now: Instant, message: (Identified, Bytes), round: u16) {
        self.held = Some(message);
        self.held_round = round;
        self.held_since.get_or_insert(now);
    }

    /// When the node, if it still holds this peer's messages, has held them for
    /// `hold_limit` (see `flow::hold_limit`): a round of a stall escape then takes one.
    pub(crate) fn held_overdue_at(&self, hold_limit: Duration) -> Option<Instant> {
        self.held_since?.checked_add(hold_limit)
    }

    /// Whether the node wants bytes from this peer: it holds no message from it and the
    /// peer is within its rate.
    pub(crate) fn wants_bytes(&self) -> bool {
        self.held.is_none() && self.rate_paused_until.is_none()
    }

    /// What the node observed of this peer.
    pub(crate) fn stats(&self) -> PeerStats {
        let counters = self.counters;
        PeerStats {
            direction: self.direction,
            connected_at: self.connected_at,
            bytes_in: counters.bytes_in,
            frames_in: counters.frames_in,
            first_deliveries: counters.first_deliveries,
            duplicates: counters.duplicates,
            last_first_delivery: counters.last_first_delivery,
            queued_bytes: self.queued_bytes,
            partial_frame_bytes: self.partial_bytes,
            reading: self.wants_bytes(),
        }
    }

    /// When this peer must be disconnected if its partial frame is not complete.
    pub(crate) fn frame_deadline(&self, timeout: Duration) -> Option<Instant> {
        if !self.wants_bytes() {
            return None;
        }
        self.partial_since?.checked_add(timeout)
    }

    /// Whether the queue is full.
    pub(crate) fn is_full(&self) -> bool {
        self.full_since.is_some()
    }

    /// What the announcements gathered for this (lazy plumtree) peer and not sent yet
    /// will be charged in its queue: one IHave frame.
    pub(crate) fn gathered_charge(&self) -> usize {
        match self.ihaves.len() {
            0 => 0,
            entries => crate::plumtree::wire::ihave_wire_len(entries) + QUEUED_FRAME_OVERHEAD,
        }
    }

    /// Its queue as the budget counts it: what is queued, and the announcements gathered
    /// for it.
    pub(crate) fn committed_bytes(&self) -> usize {
        self.queued_bytes + self.gathered_charge()
    }

    /// Charges `frames` frames, `wire_len` bytes in all, queued for this peer at `now`
    /// (handed to the caller or kept back) to its budget; returns the charge.
    pub(crate) fn charge(&mut self, now: Instant, wire_len: usize, frames: usize) -> usize {
        if self.queued_bytes == 0 {
            self.last_progress = now;
        }
        let charge = queue_charge(wire_len, frames);
        self.queued_bytes += charge;
        charge
    }

    /// Accounts a `Send` of `frames` charged frames, `wire_len` bytes in all (part of a
    /// copy of the shared `run`, if it is one, and its last part if `completes_copy`),
    /// as handed to the caller.
    pub(crate) fn hand_over(
        &mut self,
        wire_len: usize,
        frames: usize,
        run: Option<RunId>,
        completes_copy: bool,
    ) {
        self.queued_total += wire_len as u64;
        self.send_ends.push_back(SendEnd {
            end: self.queued_total,
            frames,
            run,
            completes_copy,
        });
    }

    /// Whether the caller may be handed another `Send`: less than `send_ahead` bytes
    /// handed over are unwritten (or none is, whatever `send_ahead`, so that a queue
    /// always moves). Kept `Send`s go first, in order.
    pub(crate) fn has_send_room(&self, send_ahead: usize) -> bool {
        let unwritten = self.queued_total - self.flushed_total;
        unwritten < send_ahead.max(1) as u64
    }

    /// When this peer must be disconnected if it takes none of its queued bytes, given
    /// that the node has waited on it since `waited_since` (`None`: it does not wait).
    pub(crate) fn slow_deadline(
        &self,
        waited_since: Option<Instant>,
        timeout: Duration,
    ) -> Option<Instant> {
        if self.queued_bytes == 0 {
            return None;
        }
        // An overflowing deadline means "never".
        waited_since?.max(self.last_progress).checked_add(timeout)
    }

    /// Frames queued and not completely written (counted by `Send`: a partly written
    /// run counts whole), kept back or not.
    pub(crate) fn unwritten_frames(&self) -> usize {
        let handed: usize = self.send_ends.iter().map(|send| send.frames).sum();
        handed + self.backlog.frames()
    }

    /// Accounts `bytes` more wire bytes as written at `now` (clamped to what was
    /// queued); pushes onto `copies` how far it took each copy of a shared run.
    pub(crate) fn flushed(
        &mut self,
        now: Instant,
        bytes: usize,
        copies: &mut Vec<CopyProgress>,
    ) -> Flushed {
        let outstanding = self.queued_total - self.flushed_total;
        let wire_bytes = (bytes as u64).min(outstanding);
        let (from, to) = (self.flushed_total, self.flushed_total + wire_bytes);
        self.flushed_total = to;
        // Wire bytes of `Send`s of their own go back to the total as they are written.
        let mut own_wire = 0;
        let mut start = self.completed_total;
        for send in &self.send_ends {
            if start >= to {
                break;
            }
            let written = send.end.min(to) - start.max(from);
            match send.run {
                None => own_wire += written,
                Some(run) => copies.push(CopyProgress {
                    run,
                    // At most the run's length, a usize.
                    written: written as usize,
                    complete: send.end <= to && send.completes_copy,
                }),
            }
            start = send.end;
        }
        let mut completed = 0;
        while let Some(&send) = self.send_ends.front() {
            if send.end > to {
                break;
            }
            self.send_ends.pop_front();
            self.completed_total = send.end;
            completed += send.frames;
        }
        // They fit in usize: they are at most what was charged, which is a usize.
        let (wire_bytes, own_wire) = (wire_bytes as usize, own_wire as usize);
        let overhead = completed * QUEUED_FRAME_OVERHEAD;
        self.queued_bytes -= wire_bytes + overhead;
        if wire_bytes > 0 {
            self.last_progress = now;
        }
        Flushed {
            wire_bytes,
            released_from_total: own_wire + overhead,
        }
    }

    /// What the total gets back when this peer goes with its queue (handed over or
    /// kept back): everything but the wire bytes of shared runs, whose copies here are
    /// pushed onto `copies` as done.
    pub(crate) fn released_when_gone(&mut self, copies: &mut Vec<CopyProgress>) -> usize {
        let mut released = 0;
        let mut start = self.completed_total;
        for send in &self.send_ends {
            released += send.frames * QUEUED_FRAME_OVERHEAD;
            match send.run {
                None => released += (send.end - start.max(self.flushed_total)) as usize,
                Some(run) => copies.push(CopyProgress {
                    run,
                    written: 0,
                    complete: send.completes_copy,
                }),
            }
            start = send.end;
        }
        for kept in self.backlog.drain() {
            // A copy whose every frame was dropped is done with already.
            if kept.left() == 0 {
                continue;
            }
            released += kept.left() * QUEUED_FRAME_OVERHEAD;
            match kept.run {
                None => released += kept.left_wire_len(),
                Some(run) => copies.push(CopyProgress {
                    run,
                    written: 0,
                    complete: true,
                }),
            }
        }
        released
    }
}

/// The connected peers, sorted by id: a flood walks them in a fixed order (so simulations
/// are deterministic) over contiguous memory, and lookups are a binary search. The ids
/// lie apart from the peers' state (hundreds of bytes each), so a search touches a
/// cache line or two rather than one per step.
#[derive(Debug, Default)]
pub(crate) struct PeerTable {
    /// Sorted; `peers[i]` is the state of `ids[i]`.
    ids: Vec<PeerId>,
    peers: Vec<Peer>,
}

impl PeerTable {
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn contains(&self, id: PeerId) -> bool {
        self.position(id).is_ok()
    }

    pub(crate) fn get(&self, id: PeerId) -> Option<&Peer> {
        let index = self.position(id).ok()?;
        Some(&self.peers[index])
    }

    pub(crate) fn get_mut(&mut self, id: PeerId) -> Option<&mut Peer> {
        let index = self.position(id).ok()?;
        Some(&mut self.peers[index])
    }

    /// Adds a peer, replacing any with the same id.
    pub(crate) fn insert(&mut self, id: PeerId, peer: Peer) {
        match self.position(id) {
            Ok(index) => self.peers[index] = peer,
            Err(index) => {
                self.ids.insert(index, id);
                self.peers.insert(index, peer);
            }
        }
    }

    pub(crate) fn remove(&mut self, id: PeerId) -> Option<Peer> {
        let index = self.position(id).ok()?;
        self.ids.remove(index);
        Some(self.peers.remove(index))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (PeerId, &Peer)> {
        self.ids.iter().copied().zip(&self.peers)
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (PeerId, &mut Peer)> {
        self.ids.iter().copied().zip(&mut self.peers)
    }

    fn position(&self, id: PeerId) -> Result<usize, usize> {
        self.ids.binary_search(&id)
    }
}
