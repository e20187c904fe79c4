//! [`Promises`]: which lazy peers a cached message was announced to and has not yet
//! reached, so that the cache lets it go only by sending it to them.
//!
//! An IHave is a promise: the peer that gets it may graft the message at any time, and
//! under overload that can be long after the announcement (its graft waits behind
//! everything queued for this node). So a node keeps a message it announced until each
//! lazy peer it announced it to has shown it has it (announced it back, or sent it), or
//! has been sent it (a graft answered). When the cache must let such a message go (its
//! byte budget or retention), it is sent whole to the peers still waiting: nothing
//! announced is ever lost, and the cost under overload is a push that flooding would
//! have sent anyway.
//!
//! Every plumtree peer gets one of [`PROMISE_SLOTS`] slots; one beyond them is always
//! sent messages whole (it is never lazy), so it needs no promises.

/// Plumtree peers that can be promised messages at once (the default peer limits allow
/// 128 peers in all).
pub const PROMISE_SLOTS: usize = 128;

/// A set of promise slots (each below [`PROMISE_SLOTS`]).
///
/// ```
/// use gossip_core::plumtree::Promises;
///
/// let promises = Promises::NONE.with(3).with(70);
/// assert!(promises.contains(3) && !promises.contains(4));
/// assert_eq!(promises.without(3).slots().collect::<Vec<_>>(), [70]);
/// ```
/// Two words rather than a `u128`, whose 16-byte alignment would grow every cached
/// message's entry by 8 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Promises([u64; 2]);

impl Promises {
    /// No slot.
    pub const NONE: Promises = Promises([0; 2]);

    /// This set and `slot` (unchanged if `slot` is not below [`PROMISE_SLOTS`]).
    pub fn with(mut self, slot: u8) -> Promises {
        if let Some((word, bit)) = place(slot) {
            self.0[word] |= bit;
        }
        self
    }

    /// This set without `slot`.
    pub fn without(mut self, slot: u8) -> Promises {
        if let Some((word, bit)) = place(slot) {
            self.0[word] &= !bit;
        }
        self
    }

    /// Whether `slot` is in the set.
    pub fn contains(self, slot: u8) -> bool {
        place(slot).is_some_and(|(word, bit)| self.0[word] & bit != 0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == [0; 2]
    }

    /// The slots in the set, lowest first.
    pub fn slots(self) -> impl Iterator<Item = u8> {
        self.0.into_iter().enumerate().flat_map(|(word, mut rest)| {
            std::iter::from_fn(move || {
                if rest == 0 {
                    return None;
                }
                let bit = rest.trailing_zeros() as u8;
                rest &= rest - 1;
                Some(word as u8 * 64 + bit)
            })
        })
    }
}

/// The word and bit of `slot`, if it is a slot.
fn place(slot: u8) -> Option<(usize, u64)> {
    let slot = usize::from(slot);
    (slot < PROMISE_SLOTS).then(|| (slot / 64, 1 << (slot % 64)))
}
