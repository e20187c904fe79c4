//! The set of message ids a node has already handled, bounded in memory and in time.
//!
//! Ids are remembered in arrival order. An id is forgotten when it is older than the
//! retention period (checked lazily, whenever the set is touched) or when room is needed
//! for a newer id and the set is at capacity (oldest first). So an id is remembered for
//! **at least** `min(retention, time until capacity newer ids arrive)`.
//!
//! The hash table is keyed per set, by default with [`SeenHasher`] (foldhash with a secret
//! random seed). Message ids are BLAKE3 outputs, but a peer chooses the payloads, so it
//! can grind ids whose raw bits collide in an unkeyed table; with a secret per-node seed
//! it cannot aim at a bucket. foldhash is not a cryptographic PRF: a caller who would
//! rather pay for SipHash passes [`std::hash::RandomState`] to [`SeenSet::with_hasher`].
//! Nothing in the crate iterates the table, so the random seed never makes behaviour
//! nondeterministic.
//!
//! Cost: a large set lives outside the CPU caches, so each new id costs two cache misses
//! (its own slot, and the slot of the oldest id it evicts). Each id's hash is kept beside
//! it in the arrival queue, so evicting it does not hash it again and both misses can be
//! in flight at once.
//!
//! The set stores the first 128 bits of each id, which halves its memory (and its cache
//! misses). Two payloads whose ids agree there are taken for one message. Finding such a
//! pair takes about 2^64 BLAKE3 evaluations and only lets an attacker shadow a message of
//! its own; shadowing someone else's message needs a second preimage, about 2^128
//! evaluations.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::mem::size_of;
use std::time::{Duration, Instant};

mod hasher;

use hashbrown::HashTable;

pub use hasher::SeenHasher;

use crate::MessageId;

/// One remembered id, in arrival order, with its hash in the table.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The key in two halves: a `u128` field would align the entry to 16 bytes and
    /// pad it from 40 to 48.
    key: [u64; 2],
    hash: u64,
    seen_at: Instant,
}

impl Entry {
    fn key(&self) -> Key {
        u128::from(self.key[0]) | u128::from(self.key[1]) << 64
    }
}

/// What the set stores of an id: its first 128 bits.
type Key = u128;

fn key(id: &MessageId) -> Key {
    let mut half = [0u8; 16];
    half.copy_from_slice(&id.0[..16]);
    u128::from_le_bytes(half)
}

/// A bounded set of recently seen message ids.
///
/// ```
/// use std::time::{Duration, Instant};
/// use gossip_core::{MessageId, SeenSet};
///
/// let t0 = Instant::now();
/// let mut seen = SeenSet::new(2, Duration::from_secs(60));
/// let (a, b, c) = (MessageId::of(b"a"), MessageId::of(b"b"), MessageId::of(b"c"));
/// assert!(seen.insert(a, t0));
/// assert!(!seen.insert(a, t0)); // already seen
/// seen.insert(b, t0);
/// seen.insert(c, t0); // at capacity: forgets `a`, the oldest
/// assert!(!seen.contains(&a));
/// // After the retention period everything is forgotten.
/// assert!(seen.insert(b, t0 + Duration::from_secs(61)));
/// ```
#[derive(Debug)]
pub struct SeenSet<S = SeenHasher> {
    ids: HashTable<Key>,
    hasher: S,
    order: VecDeque<Entry>,
    capacity: usize,
    retention: Duration,
    /// When the oldest id expires, if any does.
    oldest_deadline: Option<Instant>,
    evicted: u64,
}

impl SeenSet {
    /// A set holding at most `capacity` ids (at least one), each for at most `retention`.
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
    /// inserts and evictions: both tables grow by doubling, and the hash table may grow
    /// once more while tombstones of forgotten ids fill it (32 MiB holds 262,144 ids).
    pub fn memory_bound(capacity: usize) -> usize {
        if capacity == 0 {
            return 0;
        }
        // Buckets for `capacity` ids at the 7/8 load factor, doubled: forgotten ids leave
        // tombstones, and a table full of them may grow once more instead of rehashing.
        let table_buckets = (capacity.saturating_mul(8) / 7 + 1)
            .checked_next_power_of_two()
            .unwrap_or(usize::MAX)
            .saturating_mul(2)
            .max(MIN_TABLE_BUCKETS);
        let order_slots = capacity
            .checked_next_power_of_two()
            .unwrap_or(usize::MAX)
            .max(MIN_ORDER_SLOTS);
        table_buckets
            .saturating_add(GROUP_WIDTH)
            .saturating_mul(TABLE_BYTES_PER_BUCKET)
            .saturating_add(order_slots.saturating_mul(size_of::<Entry>()))
    }
}

/// Control bytes past the end of a SwissTable (one SIMD group).
const GROUP_WIDTH: usize = 16;
/// The smallest SwissTable that allocates.
const MIN_TABLE_BUCKETS: usize = 4;
/// The smallest allocation a `VecDeque` of entries makes.
const MIN_ORDER_SLOTS: usize = 4;
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
            ids: HashTable::new(),
            hasher,
            order: VecDeque::new(),
            capacity: capacity.max(1),
            retention,
            oldest_deadline: None,
            evicted: 0,
        }
    }

    /// Records `id` as seen at `now`. Returns `true` if it was not already remembered.
    pub fn insert(&mut self, id: MessageId, now: Instant) -> bool {
        self.expire(now);
        let key = key(&id);
        let hash = self.hasher.hash_one(key);
        let hasher = &self.hasher;
        match self.ids.entry(
            hash,
            |&stored| stored == key,
            |&stored| hasher.hash_one(stored),
        ) {
            hashbrown::hash_table::Entry::Occupied(_) => return false,
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert(key);
            }
        }
        // The new id is the youngest, so making room never evicts it (capacity >= 1).
        while self.order.len() >= self.capacity {
            self.evict_oldest();
        }
        if self.order.is_empty() {
            self.oldest_deadline = self.deadline(now);
        }
        self.order.push_back(Entry {
            key: [key as u64, (key >> 64) as u64],
            hash,
            seen_at: now,
        });
        true
    }

    /// Whether `id` is remembered. Does not expire anything, so an id past its retention
    /// may still be reported until the next [`insert`](Self::insert) or
    /// [`expire`](Self::expire).
    pub fn contains(&self, id: &MessageId) -> bool {
        let key = key(id);
        self.ids
            .find(self.hasher.hash_one(key), |&stored| stored == key)
            .is_some()
    }

    /// Forgets every id recorded more than the retention period before `now`.
    pub fn expire(&mut self, now: Instant) {
        // Checked against a copy of the oldest deadline, so the common case (nothing due)
        // does not touch the arrival queue.
        while self.oldest_deadline.is_some_and(|deadline| deadline <= now) {
            self.evict_oldest();
        }
    }

    fn evict_oldest(&mut self) {
        if let Some(oldest) = self.order.pop_front() {
            if let Ok(slot) = self
                .ids
                .find_entry(oldest.hash, |&stored| stored == oldest.key())
            {
                slot.remove();
            }
            self.evicted += 1;
        }
        self.oldest_deadline = self
            .order
            .front()
            .and_then(|oldest| self.deadline(oldest.seen_at));
    }

    /// When an id recorded at `seen_at` expires; `None` (never) if that overflows.
    fn deadline(&self, seen_at: Instant) -> Option<Instant> {
        seen_at.checked_add(self.retention)
    }

    /// Ids currently remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The most ids ever remembered at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Ids forgotten so far, by age or for room.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Heap bytes the set holds now: the hash table's allocation and the arrival queue's.
    /// Never more than [`SeenSet::memory_bound`] of its capacity.
    pub fn memory_bytes(&self) -> usize {
        self.ids.allocation_size() + self.order.capacity() * size_of::<Entry>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> MessageId {
        MessageId::of(&n.to_be_bytes())
    }

    #[test]
    fn capacity_is_a_hard_bound_and_evicts_oldest_first() {
        let now = Instant::now();
        let mut seen = SeenSet::new(3, Duration::from_secs(60));
        for n in 0..5 {
            assert!(seen.insert(id(n), now));
        }
        assert_eq!(seen.len(), 3);
        assert!(!seen.contains(&id(0)) && !seen.contains(&id(1)));
        assert!(seen.contains(&id(2)) && seen.contains(&id(4)));
        assert_eq!(seen.evicted(), 2);
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
                    "capacity {capacity}, len {}, table {}, order {}: {} > {}",
                    seen.len(),
                    seen.ids.allocation_size(),
                    seen.order.capacity(),
                    seen.memory_bytes(),
                    SeenSet::memory_bound(capacity)
                );
            }
        }
    }
}
