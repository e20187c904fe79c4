//! The set of message ids a node has already handled, bounded in memory and in time.
//!
//! Ids are kept in two generations, each a hash table of at most `capacity` ids. New ids
//! go into the current generation. When it is full, or its first id is older than the
//! retention period, it becomes the previous generation and the previous one is
//! forgotten whole; a previous generation whose last id is older than the retention
//! period is forgotten too (checked lazily, whenever the set is touched). An id is seen
//! if either generation has it. So an id is remembered for **at least**
//! `min(retention, time until capacity newer ids arrive)`, and forgotten by the time
//! `2 × capacity` newer ids have arrived or `2 × retention` has passed.
//!
//! Forgetting a generation at once, rather than the oldest id one at a time, makes a new
//! id cost two lookups that do not depend on each other (they overlap) and no removal:
//! 28 ns per new id against 96 ns for one table with an arrival queue, at 262,144 ids
//! outside the caches. Clearing a table is one `memset` of its control bytes.
//!
//! The tables are keyed per set, by default with [`SeenHasher`] (foldhash with a secret
//! random seed). Message ids are BLAKE3 outputs, but a peer chooses the payloads, so it
//! can grind ids whose raw bits collide in an unkeyed table; with a secret per-node seed
//! it cannot aim at a bucket. foldhash is not a cryptographic PRF: a caller who would
//! rather pay for SipHash passes [`std::hash::RandomState`] to [`SeenSet::with_hasher`].
//! Nothing in the crate iterates the tables, so the random seed never makes behaviour
//! nondeterministic.
//!
//! The set stores 128 bits of each message, a [`SeenKey`], which halves its memory (and
//! its cache misses) against whole ids. Given a [`MessageId`], the key is the id's first
//! 128 bits: two payloads whose ids agree there are taken for one message. Finding such
//! a pair takes about 2^64 BLAKE3 evaluations and only lets an attacker shadow a message
//! of its own; shadowing someone else's message needs a second preimage, about 2^128
//! evaluations. A [`Node`](crate::Node) that speaks only flood keys its set by a
//! [`Fingerprinter`]'s secretly keyed fingerprint of the payload instead, so that it
//! hashes only new messages with BLAKE3, not the duplicates that are most of what a
//! flood brings (see [`Fingerprinter`] for why that is as safe).

use std::hash::BuildHasher;
use std::mem::size_of;
use std::time::{Duration, Instant};

mod hasher;
mod key;

use hashbrown::HashTable;

pub use hasher::SeenHasher;
pub use key::{Fingerprinter, SeenKey};
pub(crate) use key::{Identified, Keying};

use crate::MessageId;

/// What the tables store of a [`SeenKey`].
type Key = u128;

fn key(key: impl Into<SeenKey>) -> Key {
    key.into().0
}

/// Ids recorded between two rotations, with when the last of them was and when the
/// first of them is past the retention period (`None` if empty, or never).
#[derive(Debug, Default)]
struct Generation {
    ids: HashTable<Key>,
    first_expires: Option<Instant>,
    last_at: Option<Instant>,
}

impl Generation {
    fn contains(&self, key: Key, hash: u64) -> bool {
        self.ids.find(hash, |&stored| stored == key).is_some()
    }

    /// Empties it, keeping the table's allocation. Returns how many ids it held.
    fn clear(&mut self) -> usize {
        let held = self.ids.len();
        self.ids.clear();
        self.first_expires = None;
        self.last_at = None;
        held
    }
}

/// A bounded set of recently seen message ids.
///
/// ```
/// use std::time::{Duration, Instant};
/// use gossip_core::{MessageId, SeenSet};
///
/// let t0 = Instant::now();
/// let mut seen = SeenSet::new(2, Duration::from_secs(60));
/// let id = |n: u8| MessageId::of(&[n]);
/// assert!(seen.insert(id(0), t0));
/// assert!(!seen.insert(id(0), t0)); // already seen
/// for n in 1..=4 {
///     seen.insert(id(n), t0);
/// }
/// // Four newer ids, twice the capacity: `id(0)` is forgotten; the last two are not.
/// assert!(!seen.contains(&id(0)));
/// assert!(seen.contains(&id(3)) && seen.contains(&id(4)));
/// // Twice the retention period later, everything is.
/// assert!(seen.insert(id(4), t0 + Duration::from_secs(120)));
/// ```
#[derive(Debug)]
pub struct SeenSet<S = SeenHasher> {
    current: Generation,
    previous: Generation,
    hasher: S,
    capacity: usize,
    retention: Duration,
    /// When the previous generation's last id is past the retention period, if ever.
    previous_expires: Option<Instant>,
    evicted: u64,
    /// Rotations so far, to tell whether one happened during a batch.
    rotations: u64,
    /// Scratch for [`insert_many`](Self::insert_many): each id's key, hash and whether
    /// the previous generation has it. Kept to reuse its allocation.
    looked_up: Vec<(Key, u64, bool)>,
}

/// Ids looked up in the previous generation before any is inserted, by
/// [`SeenSet::insert_many`].
const LOOKAHEAD: usize = 64;

impl SeenSet {
    /// A set whose generations hold `capacity` ids each (at least one), remembering each
    /// id for at least `min(retention, time until capacity newer ids arrive)`.
    pub fn new(capacity: usize, retention: Duration) -> Self {
        Self::with_hasher(capacity, retention, SeenHasher::default())
    }

    /// The largest capacity whose worst-case footprint ([`Self::memory_bound`]) fits in
    /// `budget_bytes`. Zero if not even one id fits.
    pub fn capacity_for_budget(budget_bytes: usize) -> usize {
        // memory_bound is monotonic in capacity: binary search the largest that fits.
        let (mut low, mut high) = (0usize, budget_bytes / size_of::<MessageId>() + 1);
        while low < high {
            let mid = low + (high - low).div_ceil(2);
            if Self::memory_bound(mid) <= budget_bytes {
                low = mid;
            } else {
                high = mid - 1;
            }
        }
        low
    }

    /// Worst-case heap bytes held by a set of the given capacity, whatever the order of
    /// inserts: two tables of `capacity` ids at the SwissTable load factor of 7/8. Ids are
    /// never removed one by one, so no tombstones make a table grow further (32 MiB holds
    /// two generations of 458,751 ids).
    pub fn memory_bound(capacity: usize) -> usize {
        if capacity == 0 {
            return 0;
        }
        let buckets = (capacity.saturating_mul(8) / 7 + 1)
            .checked_next_power_of_two()
            .unwrap_or(usize::MAX)
            .max(MIN_TABLE_BUCKETS);
        buckets
            .saturating_add(GROUP_WIDTH)
            .saturating_mul(TABLE_BYTES_PER_BUCKET)
            .saturating_mul(2)
    }
}

/// Control bytes past the end of a SwissTable (one SIMD group).
const GROUP_WIDTH: usize = 16;
/// The smallest SwissTable that allocates.
const MIN_TABLE_BUCKETS: usize = 4;
/// A SwissTable bucket holds the key plus one control byte.
const TABLE_BYTES_PER_BUCKET: usize = size_of::<Key>() + 1;

impl<S: BuildHasher> SeenSet<S> {
    /// A set with a caller-provided keyed hasher (SipHash, say, or a fixed one to
    /// reproduce a table layout). The hasher must be keyed secretly if peers can choose
    /// payloads.
    ///
    /// ```
    /// use std::hash::RandomState;
    /// use std::time::Duration;
    /// use gossip_core::SeenSet;
    ///
    /// let seen = SeenSet::with_hasher(1000, Duration::from_secs(60), RandomState::new());
    /// assert!(seen.is_empty());
    /// ```
    pub fn with_hasher(capacity: usize, retention: Duration, hasher: S) -> Self {
        SeenSet {
            current: Generation::default(),
            previous: Generation::default(),
            hasher,
            capacity: capacity.max(1),
            retention,
            previous_expires: None,
            evicted: 0,
            rotations: 0,
            looked_up: Vec::new(),
        }
    }

    /// Records `id` (a [`MessageId`], or a [`SeenKey`]) as seen at `now`.
    /// Returns `true` if it was not already remembered.
    pub fn insert(&mut self, id: impl Into<SeenKey>, now: Instant) -> bool {
        self.expire(now);
        let key = key(id);
        let hash = self.hasher.hash_one(key);
        !self.previous.contains(key, hash) && self.insert_current(key, hash, now)
    }

    /// Records each of `ids` as seen at `now`, exactly as [`insert`](Self::insert) would
    /// one after the other, and sets `new[i]` to what it would return for the `i`-th. At
    /// most `new.len()` ids are taken.
    ///
    /// Faster than one at a time for a set larger than the caches: the ids are looked up
    /// in the older generation back to back, before any is inserted, so that the cache
    /// misses of those lookups overlap.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use gossip_core::{MessageId, SeenSet};
    ///
    /// let mut seen = SeenSet::new(100, Duration::from_secs(60));
    /// let ids = [MessageId::of(b"a"), MessageId::of(b"b"), MessageId::of(b"a")];
    /// let mut new = [false; 3];
    /// seen.insert_many(&ids, Instant::now(), &mut new);
    /// assert_eq!(new, [true, true, false]);
    /// ```
    pub fn insert_many<K: Into<SeenKey>>(
        &mut self,
        ids: impl IntoIterator<Item = K>,
        now: Instant,
        new: &mut [bool],
    ) {
        let mut ids = ids.into_iter();
        let mut looked_up = std::mem::take(&mut self.looked_up);
        for new in new.chunks_mut(LOOKAHEAD) {
            self.expire(now);
            let rotations = self.rotations;
            looked_up.clear();
            for id in ids.by_ref().take(new.len()) {
                let key = key(id);
                let hash = self.hasher.hash_one(key);
                looked_up.push((key, hash, self.previous.contains(key, hash)));
            }
            let taken = looked_up.len();
            for (is_new, &(key, hash, in_previous)) in new.iter_mut().zip(&looked_up) {
                self.expire(now);
                *is_new = if self.rotations == rotations {
                    !in_previous && self.insert_current(key, hash, now)
                } else {
                    // A rotation changed the previous generation: look again.
                    !self.previous.contains(key, hash) && self.insert_current(key, hash, now)
                };
            }
            if taken < new.len() {
                break;
            }
        }
        self.looked_up = looked_up;
    }

    /// Records a key the previous generation does not have in the current one; returns
    /// whether it was new.
    fn insert_current(&mut self, key: Key, hash: u64, now: Instant) -> bool {
        let was_empty = self.current.ids.is_empty();
        let hasher = &self.hasher;
        match self.current.ids.entry(
            hash,
            |&stored| stored == key,
            |&stored| hasher.hash_one(stored),
        ) {
            hashbrown::hash_table::Entry::Occupied(_) => return false,
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert(key);
            }
        }
        if was_empty {
            // A deadline past the end of time never comes.
            self.current.first_expires = now.checked_add(self.retention);
        }
        self.current.last_at = Some(now);
        if self.current.ids.len() >= self.capacity {
            self.rotate();
        }
        true
    }

    /// Whether `id` is remembered. Does not expire anything, so an id past its retention
    /// may still be reported until the next [`insert`](Self::insert) or
    /// [`expire`](Self::expire).
    pub fn contains(&self, id: &MessageId) -> bool {
        self.contains_key(SeenKey::from(id))
    }

    /// Whether `key` is remembered, as [`contains`](Self::contains) for an id.
    pub fn contains_key(&self, key: SeenKey) -> bool {
        let key = key.0;
        let hash = self.hasher.hash_one(key);
        self.current.contains(key, hash) || self.previous.contains(key, hash)
    }

    /// Forgets the generations that are over the retention period at `now`: the current
    /// one moves on once its first id is that old, the previous one is forgotten once its
    /// last id is.
    pub fn expire(&mut self, now: Instant) {
        if self.current.first_expires.is_some_and(|at| at <= now) {
            self.rotate();
        }
        if self.previous_expires.is_some_and(|at| at <= now) {
            self.evicted += self.previous.clear() as u64;
            self.previous_expires = None;
        }
    }

    /// Forgets the previous generation and starts a new current one.
    fn rotate(&mut self) {
        self.evicted += self.previous.clear() as u64;
        std::mem::swap(&mut self.current, &mut self.previous);
        self.previous_expires = self
            .previous
            .last_at
            .and_then(|at| at.checked_add(self.retention));
        self.rotations += 1;
    }

    /// Ids currently remembered (at most twice the capacity).
    pub fn len(&self) -> usize {
        self.current.ids.len() + self.previous.ids.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ids per generation: each id is remembered until at least this many newer ones
    /// have arrived (or the retention period has passed).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Ids forgotten so far, by age or for room.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Heap bytes the set holds now: the allocations of its two tables. Never more than
    /// [`SeenSet::memory_bound`] of its capacity.
    pub fn memory_bytes(&self) -> usize {
        self.current.ids.allocation_size() + self.previous.ids.allocation_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> MessageId {
        MessageId::of(&n.to_be_bytes())
    }

    #[test]
    fn generations_keep_capacity_newer_ids_and_forget_by_twice_that() {
        let now = Instant::now();
        let mut seen = SeenSet::new(3, Duration::from_secs(60));
        // 0..3 fill a generation, 3 and 4 start the next: all five remembered.
        for n in 0..5 {
            assert!(seen.insert(id(n), now));
        }
        assert_eq!((seen.len(), seen.evicted()), (5, 0));
        assert!((0..5).all(|n| seen.contains(&id(n))));
        // 5 fills the second generation, so the first (0..3) is forgotten: id 0 was kept
        // for 4 newer ids, at least the capacity and under twice it.
        assert!(seen.insert(id(5), now));
        assert_eq!((seen.len(), seen.evicted()), (3, 3));
        assert!((0..3).all(|n| !seen.contains(&id(n))));
        assert!((3..6).all(|n| seen.contains(&id(n))));
    }

    #[test]
    fn ids_are_told_apart_by_their_first_128_bits() {
        let now = Instant::now();
        let mut seen = SeenSet::new(10, Duration::from_secs(60));
        let mut first = [7u8; 32];
        assert!(seen.insert(MessageId(first), now));
        first[31] ^= 1; // differs only past the stored half
        assert!(!seen.insert(MessageId(first), now));
        first[15] ^= 1;
        assert!(seen.insert(MessageId(first), now));
    }

    #[test]
    fn retention_edge_is_exclusive() {
        let t0 = Instant::now();
        let retention = Duration::from_secs(10);
        let mut seen = SeenSet::new(10, retention);
        seen.insert(id(1), t0);
        assert!(!seen.insert(id(1), t0 + retention - Duration::from_nanos(1)));
        assert!(seen.insert(id(1), t0 + retention));
    }

    #[test]
    fn huge_retention_never_overflows() {
        let t0 = Instant::now();
        let mut seen = SeenSet::new(10, Duration::MAX);
        seen.insert(id(1), t0);
        assert!(!seen.insert(id(1), t0 + Duration::from_secs(1 << 40)));
    }

    #[test]
    fn budget_gives_a_capacity_whose_bound_fits() {
        for budget in [0, 100, 1000, 1 << 20, 32 << 20] {
            let capacity = SeenSet::capacity_for_budget(budget);
            assert!(SeenSet::memory_bound(capacity) <= budget);
            assert!(SeenSet::memory_bound(capacity + 1) > budget || capacity == 0);
        }
    }

    #[test]
    fn real_footprint_stays_within_the_bound() {
        let now = Instant::now();
        for capacity in [1, 2, 3, 7, 8, 13, 100, 1000, 4096, 5000] {
            let mut seen = SeenSet::new(capacity, Duration::from_secs(60));
            for n in 0..(3 * capacity as u32) {
                seen.insert(id(n), now);
                assert!(
                    seen.memory_bytes() <= SeenSet::memory_bound(capacity),
                    "capacity {capacity}, len {}, tables {} and {}: {} > {}",
                    seen.len(),
                    seen.current.ids.allocation_size(),
                    seen.previous.ids.allocation_size(),
                    seen.memory_bytes(),
                    SeenSet::memory_bound(capacity)
                );
            }
        }
    }
}
