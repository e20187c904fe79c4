//! The queue-admission rule: which of a run of frames one peer's queue takes.

use std::ops::Range;

use crate::config::queue_charge;
use crate::{Config, Overload};

/// Room left under the budgets, in charged bytes (see
/// [`QUEUED_FRAME_OVERHEAD`](crate::QUEUED_FRAME_OVERHEAD)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Room {
    /// Under the peer's own budget.
    pub(crate) peer: usize,
    /// Under the total budget shared by every peer.
    pub(crate) total: usize,
}

impl Room {
    /// The room for a peer with `peer_queued` bytes queued while `total_queued` are
    /// queued in all: unlimited with reading pauses (nothing is dropped: reading pauses
    /// instead, see `flow`), what is left under the budgets with shedding.
    pub(crate) fn for_peer(config: &Config, peer_queued: usize, total_queued: usize) -> Self {
        match config.overload {
            Overload::PauseReading => Room {
                peer: usize::MAX,
                total: usize::MAX,
            },
            Overload::Shed => Room {
                peer: config.peer_queue_bytes.saturating_sub(peer_queued),
                total: config.total_queue_bytes.saturating_sub(total_queued),
            },
        }
    }
}

/// Consecutive frames a peer takes: where they lie (byte offsets from the first frame
/// of the run), which they are (the first's place in the run), how many, and what they
/// are charged.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Stretch {
    pub(crate) bytes: Range<usize>,
    pub(crate) first: usize,
    pub(crate) count: usize,
    pub(crate) charge: usize,
}

/// What the peer did not take.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shed {
    /// Frames shed.
    pub(crate) frames: usize,
    /// Whether any was shed for lack of room under the peer's own budget (as opposed to
    /// the total only).
    pub(crate) own_budget: bool,
}

/// Walks consecutive frames of wire lengths `frame_lens` in order: a frame is taken if
/// its charge, on top of those taken before it, fits in both `room.peer` and
/// `room.total`, and shed otherwise (a later, smaller frame may still be taken). Calls
/// `take` once for each stretch of consecutive frames taken, in order; a shed frame
/// ends a stretch.
pub(crate) fn admit(frame_lens: &[usize], room: Room, mut take: impl FnMut(Stretch)) -> Shed {
    let all_wire: usize = frame_lens.iter().sum();
    let all_charge = queue_charge(all_wire, frame_lens.len());
    if all_charge <= room.peer.min(room.total) {
        // All of them fit (the usual case): one comparison.
        if !frame_lens.is_empty() {
            let (count, charge) = (frame_lens.len(), all_charge);
            take(Stretch {
                bytes: 0..all_wire,
                first: 0,
                count,
                charge,
            });
        }
        return Shed::default();
    }
    let mut shed = Shed::default();
    // Charge of the frames taken so far, and the stretch being built.
    let mut used = 0;
    let mut stretch = Stretch::default();
    let mut at = 0;
    for (place, &wire_len) in frame_lens.iter().enumerate() {
        let charge = queue_charge(wire_len, 1);
        let fits_peer = used + charge <= room.peer;
        let fits_total = used + charge <= room.total;
        if fits_peer && fits_total {
            if stretch.count == 0 {
                stretch.bytes = at..at;
                stretch.first = place;
            }
            stretch.bytes.end = at + wire_len;
            stretch.count += 1;
            stretch.charge += charge;
            used += charge;
        } else {
            shed.frames += 1;
            shed.own_budget |= !fits_peer;
            if stretch.count > 0 {
                take(std::mem::take(&mut stretch));
            }
        }
        at += wire_len;
    }
    if stretch.count > 0 {
        take(stretch);
    }
    shed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::QUEUED_FRAME_OVERHEAD as OVERHEAD;

    fn admitted(frame_lens: &[usize], room: Room) -> (Vec<Stretch>, Shed) {
        let mut stretches = Vec::new();
        let shed = admit(frame_lens, room, |s| stretches.push(s));
        (stretches, shed)
    }

    fn room(peer: usize, total: usize) -> Room {
        Room { peer, total }
    }

    #[test]
    fn everything_fits_in_one_stretch() {
        let lens = [10, 20, 30];
        let charge = 60 + 3 * OVERHEAD;
        let (stretches, shed) = admitted(&lens, room(charge, charge));
        assert_eq!(
            stretches,
            [Stretch {
                bytes: 0..60,
                first: 0,
                count: 3,
                charge
            }]
        );
        assert_eq!(shed, Shed::default());
    }

    #[test]
    fn the_exact_edge_is_taken_and_one_byte_less_sheds_the_last_frame() {
        let lens = [10, 20];
        let charge = 30 + 2 * OVERHEAD;
        assert_eq!(admitted(&lens, room(charge, usize::MAX)).1.frames, 0);
        let (stretches, shed) = admitted(&lens, room(charge - 1, usize::MAX));
        assert_eq!(
            stretches,
            [Stretch {
                bytes: 0..10,
                first: 0,
                count: 1,
                charge: 10 + OVERHEAD
            }]
        );
        assert_eq!(
            shed,
            Shed {
                frames: 1,
                own_budget: true
            }
        );
    }

    #[test]
    fn a_shed_frame_splits_the_stretch_and_a_smaller_one_after_it_is_taken() {
        // Room for the first and third frames only (the second is too big).
        let lens = [10, 100, 10];
        let room = room(20 + 2 * OVERHEAD, usize::MAX);
        let (stretches, shed) = admitted(&lens, room);
        let one = 10 + OVERHEAD;
        assert_eq!(
            stretches,
            [
                Stretch {
                    bytes: 0..10,
                    first: 0,
                    count: 1,
                    charge: one
                },
                Stretch {
                    bytes: 110..120,
                    first: 2,
                    count: 1,
                    charge: one
                },
            ]
        );
        assert_eq!(
            shed,
            Shed {
                frames: 1,
                own_budget: true
            }
        );
    }

    #[test]
    fn the_total_alone_sheds_without_blaming_the_peer() {
        let lens = [10, 10];
        let (stretches, shed) = admitted(&lens, room(usize::MAX, 10 + OVERHEAD));
        assert_eq!(stretches.len(), 1);
        assert_eq!(
            shed,
            Shed {
                frames: 1,
                own_budget: false
            }
        );
    }

    #[test]
    fn no_room_takes_nothing_and_no_frames_take_nothing() {
        let (stretches, shed) = admitted(&[1, 2], room(0, 0));
        assert!(stretches.is_empty());
        assert_eq!(
            shed,
            Shed {
                frames: 2,
                own_budget: true
            }
        );
        assert_eq!(admitted(&[], room(0, 0)), (vec![], Shed::default()));
    }
}
