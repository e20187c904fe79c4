//! Keeping a read buffer alive for a few small payloads.
//!
//! Payloads are slices of the buffer they were read into, so one queued or delivered
//! payload keeps its whole read in memory. When the new messages of a read add up to less
//! than `1 / MAX_PINNING` of it (a read of mostly duplicates, say), they are copied out
//! and the read can be freed as soon as it is decoded. A read whose new messages are
//! kept in place is therefore at most `MAX_PINNING` times their size.

use bytes::Bytes;

use crate::{Action, Frame};

/// How many times the bytes of a read's kept payloads the read itself may be.
pub(crate) const MAX_PINNING: usize = 4;

/// Where a read lies in memory, to tell which payloads are slices of it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadSpan {
    start: usize,
    len: usize,
}

impl ReadSpan {
    pub(crate) fn of(read: &Bytes) -> Self {
        ReadSpan {
            start: read.as_ptr() as usize,
            len: read.len(),
        }
    }

    /// Whether `payload` is a (non-empty) slice of this read.
    pub(crate) fn holds(&self, payload: &Bytes) -> bool {
        let at = payload.as_ptr() as usize;
        !payload.is_empty() && at >= self.start && at - self.start < self.len
    }

    /// Whether payloads of `kept` bytes in all should be copied rather than keep this
    /// read alive.
    pub(crate) fn too_big_for(&self, kept: usize) -> bool {
        kept > 0 && kept.saturating_mul(MAX_PINNING) < self.len
    }
}

/// Gives every Deliver and Send among `actions` whose payload lies in `read` a copy of
/// it instead, one copy per message shared by all its actions. Returns how many payloads
/// were copied.
pub(crate) fn copy_out<'a>(actions: impl Iterator<Item = &'a mut Action>, read: ReadSpan) -> u64 {
    let mut copies = 0;
    // A message's Deliver and Sends are consecutive: remember the last copy made, by
    // where its original lies.
    let mut last: Option<(*const u8, Bytes)> = None;
    let mut copy_of = |payload: &Bytes| -> Bytes {
        match &last {
            Some((original, copy)) if *original == payload.as_ptr() => copy.clone(),
            _ => {
                let copy = Bytes::copy_from_slice(payload);
                copies += 1;
                last = Some((payload.as_ptr(), copy.clone()));
                copy
            }
        }
    };
    for action in actions {
        match action {
            Action::Deliver(delivery) if read.holds(&delivery.payload) => {
                delivery.payload = copy_of(&delivery.payload);
            }
            Action::Send { frame, .. } if read.holds(frame.payload()) => {
                if let Some(copied) = Frame::new(copy_of(frame.payload())) {
                    *frame = copied;
                }
            }
            _ => {}
        }
    }
    copies
}
