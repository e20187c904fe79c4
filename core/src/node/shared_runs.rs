//! Runs of frames queued for several peers at once: one set of bytes, several copies.
//!
//! A node forwards a read's new frames to each peer as the same [`Frames`](crate::Frames)
//! (shared bytes), so a message queued for seven peers holds its bytes once. The total
//! budget charges them once, for as long as any peer has not written its copy (each
//! copy is still charged its [`QUEUED_FRAME_OVERHEAD`](crate::QUEUED_FRAME_OVERHEAD) per
//! frame); each peer's own budget charges its copy in full, as what it has to read.
//! Charging every copy in full made the total of a node with many peers fill with one
//! message's bytes counted many times over, which in dense meshes stopped the waits
//! around cycles from turning (see `flow`).

use super::peer::{CopyProgress, RunId};

/// A shared run: how many peers still hold a copy, its wire bytes, and how many of
/// them the total has had back.
#[derive(Debug, Clone, Copy)]
struct Held {
    copies: u32,
    wire_len: usize,
    released: usize,
}

/// The shared runs some peer still holds a copy of, in slots: a run's id is its slot,
/// free again once its last copy is done with (nothing refers to it then). Each live
/// run has a copy in some queue, charged to the total, so the slots are as many as the
/// total budget holds copies at most.
#[derive(Debug, Default)]
pub(crate) struct SharedRuns {
    slots: Vec<Held>,
    free: Vec<RunId>,
    /// How far peers got with their copies, not yet counted: filled by the peers.
    pub(crate) progress: Vec<CopyProgress>,
}

impl SharedRuns {
    /// A new run, if it is to be queued for `peers` peers and so shared (a run for one
    /// peer is charged as its own, at no bookkeeping cost).
    pub(crate) fn new_run(&mut self, peers: usize) -> Option<RunId> {
        if peers < 2 {
            return None;
        }
        let empty = Held {
            copies: 0,
            wire_len: 0,
            released: 0,
        };
        Some(self.free.pop().unwrap_or_else(|| {
            self.slots.push(empty);
            self.slots.len() - 1
        }))
    }

    /// `copies` copies of `run`, of `wire_len` bytes, were queued (each charged its
    /// overhead apart): returns what the total is charged for its bytes, once.
    pub(crate) fn queued(&mut self, run: RunId, copies: usize, wire_len: usize) -> usize {
        if copies == 0 {
            self.free.push(run);
            return 0;
        }
        self.slots[run] = Held {
            copies: u32::try_from(copies).unwrap_or(u32::MAX),
            wire_len,
            released: 0,
        };
        wire_len
    }

    /// Counts the progress in `progress`; returns the wire bytes the total gets back:
    /// those the last copy of a run writes, and what is left of a run when its last
    /// copy is done with.
    pub(crate) fn release(&mut self) -> usize {
        let mut released = 0;
        for CopyProgress {
            run,
            written,
            complete,
        } in self.progress.drain(..)
        {
            let Some(held) = self.slots.get_mut(run) else {
                continue;
            };
            if held.copies == 1 {
                held.released += written;
                released += written;
            }
            if complete {
                held.copies -= 1;
                if held.copies == 0 {
                    released += held.wire_len - held.released;
                    self.free.push(run);
                }
            }
        }
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(run: RunId, written: usize, complete: bool) -> CopyProgress {
        CopyProgress {
            run,
            written,
            complete,
        }
    }

    #[test]
    fn a_run_is_charged_once_and_given_back_as_its_last_copy_is_written() {
        let mut runs = SharedRuns::default();
        assert_eq!(runs.new_run(1), None, "one peer's run is its own");
        let run = runs.new_run(3).unwrap();
        assert_eq!(runs.queued(run, 3, 100), 100, "charged once");
        runs.progress
            .extend([progress(run, 40, false), progress(run, 100, true)]);
        assert_eq!(runs.release(), 0, "two copies are still queued");
        runs.progress.push(progress(run, 60, true));
        assert_eq!(runs.release(), 0, "one still is");
        runs.progress.push(progress(run, 30, false));
        assert_eq!(runs.release(), 30, "the last copy's bytes, as written");
        runs.progress.push(progress(run, 70, true));
        assert_eq!(runs.release(), 70);
        assert_eq!(runs.new_run(2), Some(run), "its slot is free again");
        assert_ne!(runs.new_run(2), Some(run));
    }

    #[test]
    fn a_copy_dropped_with_its_peer_is_done_with() {
        let mut runs = SharedRuns::default();
        let run = runs.new_run(2).unwrap();
        runs.queued(run, 2, 100);
        runs.progress.push(progress(run, 0, true));
        runs.progress.push(progress(run, 0, true));
        assert_eq!(runs.release(), 100);
    }
}
