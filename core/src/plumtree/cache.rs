//! [`MessageCache`]: the messages a plumtree node can still send to a peer that grafts
//! them or missed them, bounded in bytes and in time.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::promises::Promises;
use super::wire::{short_id, ShortId};
use crate::{MessageId, PeerId, SeenHasher};

/// What the cache charges for each message on top of its bytes: its place in the ring
/// (88 bytes) and in the index, whose two generations hold up to two entries per kept
/// message (24 bytes and a control byte each, in tables between 7/16 and 7/8 full: up
/// to 57 bytes an entry), and its share of a buffer's head and frame headers.
pub const CACHED_MESSAGE_OVERHEAD: usize = 208;

/// Ids the newer index generation gathers at least before it turns older.
const GENERATION_MIN: usize = 1024;

/// One cached message: where it lies in one of the cache's buffers.
#[derive(Debug, Clone)]
struct Cached {
    /// When it was cached.
    at: Instant,
    id: ShortId,
    /// Sequence number of its buffer (see `MessageCache::buffers`).
    buffer: u64,
    start: u32,
    len: u32,
    /// The round it was received at (0 if published here).
    round: u16,
    /// The peer it came from (`None` if published here).
    from: Option<PeerId>,
    /// The lazy peers it was announced to that have not shown they have it.
    promised: Promises,
}

/// How a cached message came (see [`MessageCache::received`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// The round it was received at (0 if published here), or the shorter one of a
    /// path the tree switched to since.
    pub round: u16,
    /// The peer it came from (`None` if published here), or the one the tree switched
    /// to since.
    pub from: Option<PeerId>,
    /// When it was cached: its first copy came.
    pub at: Instant,
}

/// A message the cache let go while it was still promised (see [`Promises`]): the
/// caller sends it to those peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LetGo {
    /// The message.
    pub message: Bytes,
    /// The round it was received at.
    pub round: u16,
    /// The promise slots of the peers still waiting for it.
    pub promised: Promises,
}

/// Recent messages by id, oldest forgotten first: once older than the retention, or
/// to make room within the byte budget. A message is kept as it is given, not copied:
/// the caller hands over a buffer that holds little else (the node gives it a copy
/// holding only the messages it caches at the same moment), or the read they arrived
/// in ([`insert_from_read`](Self::insert_from_read)), whose other bytes the cache is
/// then charged for as long as it keeps the read alive.
///
/// The messages lie in insertion order in a ring, as ranges of the buffers they came
/// in: the messages of one batch share their buffer, held once, so forgetting them
/// releases it once rather than once per message. A hash index maps each short id to
/// its place (a sequence number, 24 bytes an entry). The index is kept in two
/// generations, as the seen set is: ids go into the newer one, and once the ring has
/// forgotten every message of the older one, that one is emptied whole and becomes the
/// newer. So forgetting a message touches only the ring, and keeping one costs one
/// index insert: in a full cache of a hundred thousand messages each index access
/// misses the CPU's caches.
#[derive(Debug)]
pub struct MessageCache {
    /// Oldest first; `entries[i]` has sequence number `first + i`.
    entries: VecDeque<Cached>,
    first: u64,
    /// The buffers the kept messages lie in, oldest first, each with its own charge (a
    /// read charged whole: its length; else 0, its messages are charged their bytes);
    /// `buffers[i]` has sequence number `first_buffer + i`. A buffer goes when its last
    /// message does, and its charge with it.
    buffers: VecDeque<(Bytes, usize)>,
    first_buffer: u64,
    /// Keyed secretly (ids can be ground), and fast: every new message goes in.
    /// `index[newer]` has the ids kept since the last turn, the other those before;
    /// entries for forgotten messages (sequence numbers below `first`) are ignored.
    index: [HashMap<ShortId, u64, SeenHasher>; 2],
    newer: usize,
    /// The sequence number after the older generation's last one.
    older_end: u64,
    bytes: usize,
    budget_bytes: usize,
    retention: Duration,
    /// Kept messages promised to each slot (grown as slots are used), and in all.
    promised_to: Vec<u32>,
    promised: u64,
    /// Promised messages let go and not yet taken by `take_let_go`.
    let_go: Vec<LetGo>,
}

impl MessageCache {
    /// An empty cache of at most `budget_bytes` (messages plus
    /// [`CACHED_MESSAGE_OVERHEAD`] each), keeping each message `retention` at most.
    pub fn new(budget_bytes: usize, retention: Duration) -> Self {
        MessageCache {
            entries: VecDeque::new(),
            first: 0,
            buffers: VecDeque::new(),
            first_buffer: 0,
            index: Default::default(),
            newer: 0,
            older_end: 0,
            bytes: 0,
            budget_bytes,
            retention,
            promised_to: Vec::new(),
            promised: 0,
            let_go: Vec::new(),
        }
    }

    /// Keeps `message` (id `id`, received at `round` from `from`; `None` if published
    /// here) from `now`. A message larger than the whole budget is not kept. One kept
    /// already (a message only comes back once the seen set has forgotten it) is kept
    /// again, and lookups find the newer copy.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use bytes::Bytes;
    /// use gossip_core::plumtree::{wire::short_id, MessageCache};
    /// use gossip_core::MessageId;
    ///
    /// let now = Instant::now();
    /// let mut cache = MessageCache::new(1 << 20, Duration::from_secs(30));
    /// let id = MessageId::of(b"m");
    /// cache.insert(now, (id, Bytes::from_static(b"m")), 2, None);
    /// assert_eq!(cache.get(&short_id(&id)), Some((Bytes::from_static(b"m"), 2)));
    /// cache.expire(now + Duration::from_secs(30));
    /// assert_eq!(cache.get(&short_id(&id)), None);
    /// ```
    pub fn insert(
        &mut self,
        now: Instant,
        (id, message): (MessageId, Bytes),
        round: u16,
        from: Option<PeerId>,
    ) {
        let range = 0..message.len();
        self.insert_many(now, &message, [(id, range, round, Promises::NONE)], from);
    }

    /// Keeps each of `messages` (id, where it lies in `buffer`, round, the slots of the
    /// peers it is promised to), all from `from`, in order, as [`insert`](Self::insert)
    /// does one. They share `buffer`, which should hold little else: it stays alive as
    /// long as one of them is kept. A promised message the cache lets go (to make room
    /// or as it expires) goes to [`take_let_go`](Self::take_let_go), for the caller to
    /// send; so does one promised and too large to be kept at all.
    pub fn insert_many(
        &mut self,
        now: Instant,
        buffer: &Bytes,
        messages: impl IntoIterator<Item = (MessageId, Range<usize>, u16, Promises)>,
        from: Option<PeerId>,
    ) {
        self.insert_in(now, buffer, messages, from, false);
    }

    /// As [`insert_many`](Self::insert_many), for messages that lie in `read`, the
    /// buffer they arrived in, which may hold other bytes (frame headers, duplicates,
    /// control frames): they are kept in place, and the cache is charged for the whole
    /// read, once, as long as it keeps one of them alive (each message adds only
    /// [`CACHED_MESSAGE_OVERHEAD`]), so its budget bounds the memory it holds. More
    /// messages of the read that come next (the next batch of it) join it at no further
    /// charge for their bytes. Worth it when the messages are most of the read; a caller
    /// that copies them out instead ([`insert_many`](Self::insert_many) with a buffer of
    /// their own) is charged for the messages alone.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use bytes::Bytes;
    /// use gossip_core::plumtree::{wire::short_id, MessageCache, Promises, CACHED_MESSAGE_OVERHEAD};
    /// use gossip_core::MessageId;
    ///
    /// let now = Instant::now();
    /// let mut cache = MessageCache::new(1 << 20, Duration::from_secs(30));
    /// let read = Bytes::from_static(b"..hello..world");
    /// let [hello, world] = [b"hello", b"world"].map(|m| MessageId::of(m));
    /// cache.insert_from_read(now, &read, [(hello, 2..7, 1, Promises::NONE)], None);
    /// assert_eq!(cache.get(&short_id(&hello)), Some((read.slice(2..7), 1)));
    /// assert_eq!(cache.bytes(), read.len() + CACHED_MESSAGE_OVERHEAD);
    /// cache.insert_from_read(now, &read, [(world, 9..14, 1, Promises::NONE)], None);
    /// assert_eq!(cache.bytes(), read.len() + 2 * CACHED_MESSAGE_OVERHEAD);
    /// ```
    pub fn insert_from_read(
        &mut self,
        now: Instant,
        read: &Bytes,
        messages: impl IntoIterator<Item = (MessageId, Range<usize>, u16, Promises)>,
        from: Option<PeerId>,
    ) {
        self.insert_in(now, read, messages, from, true);
    }

    /// Whether the newest buffer kept is `read`, charged whole (see
    /// [`insert_from_read`](Self::insert_from_read)): more of its messages then cost
    /// the cache only their overhead.
    pub fn keeps_read(&self, read: &Bytes) -> bool {
        self.buffers.back().is_some_and(|(buffer, whole)| {
            *whole > 0 && buffer.as_ptr() == read.as_ptr() && buffer.len() == read.len()
        })
    }

    /// Keeps `messages`, lying in `buffer`; with `whole_read`, the cache is charged for
    /// all of `buffer` while it keeps it, and each message adds only its overhead.
    fn insert_in(
        &mut self,
        now: Instant,
        buffer: &Bytes,
        messages: impl IntoIterator<Item = (MessageId, Range<usize>, u16, Promises)>,
        from: Option<PeerId>,
        whole_read: bool,
    ) {
        self.expire(now);
        // The sequence number `buffer` has, once a message of it is kept (or already
        // had: a read kept whole, whose next messages these are).
        let mut kept_in: Option<u64> = (whole_read && self.keeps_read(buffer))
            .then(|| self.first_buffer + self.buffers.len() as u64 - 1);
        let buffer_charge = if whole_read { buffer.len() } else { 0 };
        for (id, range, round, promised) in messages {
            let (Ok(start), Ok(len)) = (u32::try_from(range.start), u32::try_from(range.len()))
            else {
                continue;
            };
            let charge = match whole_read {
                true => CACHED_MESSAGE_OVERHEAD,
                false => range.len() + CACHED_MESSAGE_OVERHEAD,
            };
            let Some(message) = buffer.get(range.clone()) else {
                continue;
            };
            if charge + buffer_charge > self.budget_bytes {
                if !promised.is_empty() {
                    self.let_go.push(LetGo {
                        message: buffer.slice_ref(message),
                        round,
                        promised,
                    });
                }
                continue;
            }
            // Forgetting may let the buffer go, with the batch's earlier messages: then
            // it is charged again as it comes back.
            loop {
                let held = matches!(kept_in, Some(seq) if seq >= self.first_buffer);
                let coming = if held { 0 } else { buffer_charge };
                if self.bytes + coming + charge <= self.budget_bytes {
                    break;
                }
                self.forget_oldest();
            }
            let buffer_seq = match kept_in {
                Some(seq) if seq >= self.first_buffer => seq,
                _ => {
                    self.buffers.push_back((buffer.clone(), buffer_charge));
                    self.bytes += buffer_charge;
                    self.first_buffer + self.buffers.len() as u64 - 1
                }
            };
            kept_in = Some(buffer_seq);
            let id = short_id(&id);
            let seq = self.first + self.entries.len() as u64;
            if self.first >= self.older_end && self.index[self.newer].len() >= GENERATION_MIN {
                // Every message of the older generation is forgotten: it turns into the
                // newer, emptied (its table keeps its room). Not before the newer has
                // `GENERATION_MIN` ids, so that a nearly empty cache does not empty a
                // table at every message.
                self.newer = 1 - self.newer;
                self.index[self.newer].clear();
                self.older_end = seq;
            }
            self.index[self.newer].insert(id, seq);
            self.bytes += charge;
            self.count_promises(promised, 1);
            self.entries.push_back(Cached {
                at: now,
                id,
                buffer: buffer_seq,
                start,
                len,
                round,
                from,
                promised,
            });
        }
    }

    /// The message of short id `id` and its round, if it is still kept.
    pub fn get(&self, id: &ShortId) -> Option<(Bytes, u16)> {
        self.message_of(self.find(id)?)
    }

    /// The messages kept that were cached at `since` or later, oldest first, with their
    /// rounds. (A message cached at an earlier `now` than the one before it, were the
    /// caller's clock to go back, ends the search there.)
    pub fn since(&self, since: Instant) -> impl Iterator<Item = (Bytes, u16)> + '_ {
        let newer = self
            .entries
            .iter()
            .rev()
            .take_while(|cached| cached.at >= since)
            .count();
        self.entries
            .range(self.entries.len() - newer..)
            .filter_map(|cached| self.message_of(cached))
    }

    fn message_of(&self, cached: &Cached) -> Option<(Bytes, u16)> {
        let at = cached.buffer.checked_sub(self.first_buffer)?;
        let (buffer, _) = self.buffers.get(usize::try_from(at).ok()?)?;
        let start = cached.start as usize;
        let message = buffer.slice(start..start + cached.len as usize);
        Some((message, cached.round))
    }

    /// How message `id` came, if it is still kept.
    pub fn received(&self, id: &ShortId) -> Option<Receipt> {
        let cached = self.find(id)?;
        Some(Receipt {
            round: cached.round,
            from: cached.from,
            at: cached.at,
        })
    }

    /// Records that message `id` is now reached from `from` at `round` (the tree
    /// changed).
    pub fn set_received(&mut self, id: &ShortId, round: u16, from: PeerId) {
        let Some(at) = self.position(id) else {
            return;
        };
        if let Some(cached) = self.entries.get_mut(at) {
            cached.round = round;
            cached.from = Some(from);
        }
    }

    /// Peer slot `slot` has message `id` (it showed it, or was sent it): the message
    /// is no longer promised to it. Returns whether it was.
    pub fn release(&mut self, id: &ShortId, slot: u8) -> bool {
        self.promised_to(slot) > 0 && self.release_kept(id, slot) == Some(true)
    }

    /// As [`release`](Self::release), in one lookup that also tells whether the message
    /// is kept at all: `None` if not, else whether it was promised to `slot`.
    pub fn release_kept(&mut self, id: &ShortId, slot: u8) -> Option<bool> {
        let at = self.position(id)?;
        let cached = self.entries.get_mut(at)?;
        if !cached.promised.contains(slot) {
            return Some(false);
        }
        cached.promised = cached.promised.without(slot);
        self.promised_to[usize::from(slot)] -= 1;
        self.promised -= 1;
        Some(true)
    }

    /// Kept messages promised to slot `slot`.
    pub fn promised_to(&self, slot: u8) -> usize {
        self.promised_to
            .get(usize::from(slot))
            .map_or(0, |&n| n as usize)
    }

    /// The promised messages let go since the last call, oldest first.
    pub fn take_let_go(&mut self) -> Vec<LetGo> {
        std::mem::take(&mut self.let_go)
    }

    /// When the oldest kept message expires, while any kept message is promised: a
    /// promise must be kept (the message sent) by then even if nothing else happens.
    pub fn next_promise_deadline(&self) -> Option<Instant> {
        if self.promised == 0 {
            return None;
        }
        self.entries.front()?.at.checked_add(self.retention)
    }

    /// Forgets what is `retention` old by `now`.
    pub fn expire(&mut self, now: Instant) {
        while let Some(oldest) = self.entries.front() {
            if now.saturating_duration_since(oldest.at) < self.retention {
                return;
            }
            self.forget_oldest();
        }
    }

    /// The short ids kept, oldest first, with their rounds.
    pub fn ids(&self) -> impl Iterator<Item = (ShortId, u16)> + '_ {
        self.entries.iter().map(|cached| (cached.id, cached.round))
    }

    /// The budget, in bytes.
    pub fn budget_bytes(&self) -> usize {
        self.budget_bytes
    }

    /// Bytes charged now (at most the budget).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Messages kept now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn find(&self, id: &ShortId) -> Option<&Cached> {
        self.entries.get(self.position(id)?)
    }

    /// Where message `id` is in the ring, if it is kept: the newer generation first (it
    /// has the newer copy of an id kept twice).
    fn position(&self, id: &ShortId) -> Option<usize> {
        let (newer, older) = (&self.index[self.newer], &self.index[1 - self.newer]);
        [newer, older].into_iter().find_map(|index| {
            let seq = *index.get(id)?;
            let at = usize::try_from(seq.checked_sub(self.first)?).ok()?;
            (at < self.entries.len()).then_some(at)
        })
    }

    /// Counts `promised` in (`sign` 1) or out (-1).
    fn count_promises(&mut self, promised: Promises, sign: i32) {
        for slot in promised.slots() {
            let slot = usize::from(slot);
            if slot >= self.promised_to.len() {
                self.promised_to.resize(slot + 1, 0);
            }
            let count = &mut self.promised_to[slot];
            *count = count.saturating_add_signed(sign);
            self.promised = self.promised.saturating_add_signed(i64::from(sign));
        }
    }

    fn forget_oldest(&mut self) {
        if let Some(cached) = self.entries.pop_front() {
            if !cached.promised.is_empty() {
                self.count_promises(cached.promised, -1);
                let buffer = cached.buffer.checked_sub(self.first_buffer);
                let buffer = buffer.and_then(|at| self.buffers.get(usize::try_from(at).ok()?));
                if let Some((buffer, _)) = buffer {
                    let start = cached.start as usize;
                    self.let_go.push(LetGo {
                        message: buffer.slice(start..start + cached.len as usize),
                        round: cached.round,
                        promised: cached.promised,
                    });
                }
            }
            self.first += 1;
            let in_whole_read = cached
                .buffer
                .checked_sub(self.first_buffer)
                .and_then(|at| self.buffers.get(usize::try_from(at).ok()?))
                .is_some_and(|&(_, whole)| whole > 0);
            // A message in a read charged whole paid only its overhead.
            self.bytes -= match in_whole_read {
                true => CACHED_MESSAGE_OVERHEAD,
                false => cached.len as usize + CACHED_MESSAGE_OVERHEAD,
            };
            // Buffers older than the oldest kept message's hold nothing kept.
            let oldest_used = self.entries.front().map_or(u64::MAX, |c| c.buffer);
            while self.first_buffer < oldest_used {
                let Some((_, whole)) = self.buffers.pop_front() else {
                    break;
                };
                self.bytes -= whole;
                self.first_buffer += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_forgets_the_oldest_first() {
        let now = Instant::now();
        let one = 10 + CACHED_MESSAGE_OVERHEAD;
        let mut cache = MessageCache::new(2 * one, Duration::from_secs(30));
        let ids: Vec<MessageId> = (0..3u8).map(|i| MessageId::of(&[i])).collect();
        for (i, id) in ids.iter().enumerate() {
            cache.insert(now, (*id, Bytes::from(vec![0; 10])), i as u16, None);
            assert!(cache.bytes() <= 2 * one);
        }
        let get = |i: usize| cache.get(&short_id(&ids[i]));
        assert_eq!(get(0), None);
        assert!(get(1).is_some() && get(2).is_some());
        assert_eq!(
            cache.ids().map(|(_, round)| round).collect::<Vec<_>>(),
            [1, 2]
        );
        // Too large for the whole budget: not kept, nothing else forgotten.
        let big = Bytes::from(vec![0; 2 * one]);
        cache.insert(now, (MessageId::of(b"big"), big), 0, None);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn release_kept_tells_kept_from_promised_in_one_lookup() {
        let now = Instant::now();
        let mut cache = MessageCache::new(1 << 20, Duration::from_secs(30));
        let (promised, plain) = (MessageId::of(b"p"), MessageId::of(b"q"));
        let message = Bytes::from_static(b"pq");
        let items = [
            (promised, 0..1, 0, Promises::NONE.with(4)),
            (plain, 1..2, 0, Promises::NONE),
        ];
        cache.insert_many(now, &message, items, None);
        let unknown = short_id(&MessageId::of(b"unknown"));
        assert_eq!(cache.release_kept(&unknown, 4), None);
        assert_eq!(cache.release_kept(&short_id(&plain), 4), Some(false));
        assert_eq!(cache.promised_to(4), 1);
        assert_eq!(cache.release_kept(&short_id(&promised), 4), Some(true));
        assert_eq!(cache.promised_to(4), 0);
        assert_eq!(cache.release_kept(&short_id(&promised), 4), Some(false));
    }

    #[test]
    fn since_gives_what_was_cached_from_that_moment_on_oldest_first() {
        let t0 = Instant::now();
        let at = |n: u64| t0 + Duration::from_millis(n);
        let mut cache = MessageCache::new(1 << 20, Duration::from_secs(30));
        for n in 0..4u8 {
            let message = (MessageId::of(&[n]), Bytes::from(vec![n; 3]));
            cache.insert(at(u64::from(n) * 10), message, u16::from(n), None);
        }
        let since = |cache: &MessageCache, t| cache.since(t).collect::<Vec<_>>();
        assert_eq!(
            since(&cache, at(10)),
            [1, 2, 3].map(|n| (Bytes::from(vec![n; 3]), u16::from(n)))
        );
        assert_eq!(since(&cache, at(11)).len(), 2);
        assert_eq!(since(&cache, at(31)), []);
        assert_eq!(since(&cache, t0).len(), 4);
        // What the cache forgot is not given.
        cache.expire(at(15) + Duration::from_secs(30));
        assert_eq!(since(&cache, t0).len(), 2);
    }

    #[test]
    fn a_message_kept_twice_is_found_as_its_newer_copy_until_that_is_forgotten() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(10);
        let mut cache = MessageCache::new(1 << 20, Duration::from_secs(30));
        let id = MessageId::of(b"m");
        cache.insert(t0, (id, Bytes::from_static(b"first")), 1, None);
        cache.insert(t1, (id, Bytes::from_static(b"again")), 2, Some(PeerId(3)));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.bytes(), 2 * (5 + CACHED_MESSAGE_OVERHEAD));
        let newer = Receipt {
            round: 2,
            from: Some(PeerId(3)),
            at: t1,
        };
        assert_eq!(cache.received(&short_id(&id)), Some(newer));
        // The first copy goes, the newer one is still found.
        cache.expire(t0 + Duration::from_secs(30));
        assert_eq!(
            cache.get(&short_id(&id)),
            Some((Bytes::from_static(b"again"), 2))
        );
        cache.expire(t1 + Duration::from_secs(30));
        assert_eq!((cache.len(), cache.bytes()), (0, 0));
        assert_eq!(cache.get(&short_id(&id)), None);
    }

    /// Many times the budget goes through the cache: the index turns over its two
    /// generations, every kept message is found and no forgotten one is, and the index
    /// holds no more than the kept messages and one generation's minimum besides.
    #[test]
    fn the_index_turns_over_and_finds_exactly_what_is_kept() {
        let now = Instant::now();
        let one = 8 + CACHED_MESSAGE_OVERHEAD;
        let kept = 3000;
        let mut cache = MessageCache::new(kept * one, Duration::from_secs(30));
        let id = |n: u64| MessageId::of(&n.to_le_bytes());
        for n in 0..20_000u64 {
            cache.insert(now, (id(n), Bytes::from(n.to_le_bytes().to_vec())), 0, None);
            if n % 997 == 0 || n == 19_999 {
                let oldest = (n + 1).saturating_sub(kept as u64);
                for m in oldest.saturating_sub(50)..=n {
                    let found = cache.get(&short_id(&id(m)));
                    assert_eq!(found.is_some(), m >= oldest, "message {m} after {n}");
                }
                let indexed: usize = cache.index.iter().map(HashMap::len).sum();
                assert!(
                    indexed <= 2 * kept + GENERATION_MIN,
                    "{indexed} ids indexed"
                );
            }
        }
    }

    /// Messages `sizes` long, back to back in one buffer, with their ids and ranges.
    #[allow(clippy::type_complexity)]
    fn batch(tag: u8, sizes: &[usize]) -> (Bytes, Vec<(MessageId, Range<usize>, u16, Promises)>) {
        let mut buffer = Vec::new();
        let mut messages = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            let start = buffer.len();
            buffer.extend(std::iter::repeat_n(tag.wrapping_add(i as u8), size));
            buffer[start] = tag;
            let id = MessageId::of(&[tag, i as u8]);
            messages.push((id, start..buffer.len(), i as u16, Promises::NONE));
        }
        (Bytes::from(buffer), messages)
    }

    #[test]
    fn a_batch_shares_its_buffer_which_goes_with_its_last_message() {
        let now = Instant::now();
        let one = 100 + CACHED_MESSAGE_OVERHEAD;
        let mut cache = MessageCache::new(4 * one, Duration::from_secs(30));
        let (first, messages) = batch(1, &[100, 100, 100]);
        cache.insert_many(now, &first, messages.clone(), None);
        for (id, range, round, _) in &messages {
            let got = cache.get(&short_id(id));
            assert_eq!(got, Some((first.slice(range.clone()), *round)));
        }
        assert_eq!(cache.buffers.len(), 1, "held once");
        // A second batch of three forgets the first batch's first message, then its
        // second: the first buffer stays for the third.
        let (second, more) = batch(2, &[100, 100, 100]);
        cache.insert_many(now, &second, more.clone(), None);
        assert_eq!(cache.len(), 4);
        assert_eq!(cache.get(&short_id(&messages[1].0)), None);
        assert!(cache.get(&short_id(&messages[2].0)).is_some());
        assert!(!first.is_unique(), "still held for its last message");
        cache.insert(
            now,
            (MessageId::of(b"x"), Bytes::from(vec![0; 100])),
            0,
            None,
        );
        assert_eq!(cache.get(&short_id(&messages[2].0)), None);
        assert!(first.is_unique(), "let go with its last message");
        assert_eq!(cache.buffers.len(), 2);
        assert!(cache.bytes() <= 4 * one);
    }

    /// Messages kept where they were read charge the whole read, once (two batches of
    /// one read included), each adding only its overhead, until the last of them goes;
    /// at the budget's edge the read's charge is what makes the cache forget an older
    /// message.
    #[test]
    fn messages_kept_in_their_read_charge_the_read_once_until_the_last_goes() {
        let now = Instant::now();
        let one = 100 + CACHED_MESSAGE_OVERHEAD;
        let (old, older) = batch(1, &[100]);
        let (read, messages) = batch(2, &[100, 100, 100]);
        // Room for the old message and the read's first two, with one byte short.
        let read_charge = read.len() + 2 * CACHED_MESSAGE_OVERHEAD;
        let budget = one + read_charge - 1;
        let mut cache = MessageCache::new(budget, Duration::from_secs(30));
        cache.insert_many(now, &old, older.clone(), None);
        // The first, then (a duplicate between them, say, is not kept) the third, as
        // the next batch of the same read.
        cache.insert_from_read(now, &read, [messages[0].clone()], None);
        assert!(cache.keeps_read(&read));
        cache.insert_from_read(now, &read, [messages[2].clone()], None);
        assert_eq!(
            cache.get(&short_id(&older[0].0)),
            None,
            "made room, by a byte"
        );
        assert!(old.is_unique());
        assert_eq!(cache.bytes(), read_charge, "the read charged once");
        assert_eq!(cache.buffers.len(), 1);
        // A message of its own makes the read's first go, but not the read's charge.
        let (next, more) = batch(3, &[100]);
        cache.insert_many(now, &next, more.clone(), None);
        assert_eq!(cache.get(&short_id(&messages[0].0)), None);
        assert!(cache.get(&short_id(&messages[2].0)).is_some());
        assert_eq!(cache.bytes(), read.len() + CACHED_MESSAGE_OVERHEAD + one);
        assert!(cache.bytes() <= budget);
        // Its last message gone, the read goes with its charge.
        cache.insert_many(now, &next, more, None);
        assert_eq!(cache.get(&short_id(&messages[2].0)), None);
        assert!(read.is_unique(), "let go with its last message");
        assert_eq!(cache.bytes(), 2 * one);
        cache.expire(now + Duration::from_secs(30));
        assert_eq!((cache.bytes(), cache.buffers.len()), (0, 0));
    }

    #[test]
    fn a_batch_larger_than_the_budget_keeps_its_newest_messages() {
        let now = Instant::now();
        let one = 100 + CACHED_MESSAGE_OVERHEAD;
        let mut cache = MessageCache::new(2 * one, Duration::from_secs(30));
        let (buffer, messages) = batch(3, &[100, 100, 100, 100, 100]);
        cache.insert_many(now, &buffer, messages.clone(), None);
        let kept: Vec<bool> = messages
            .iter()
            .map(|(id, _, _, _)| cache.get(&short_id(id)).is_some())
            .collect();
        assert_eq!(kept, [false, false, false, true, true]);
        assert_eq!(cache.buffers.len(), 1);
        assert_eq!(cache.bytes(), 2 * one);
        cache.expire(now + Duration::from_secs(30));
        assert!(cache.is_empty() && cache.buffers.is_empty() && buffer.is_unique());
        // Room for one: each message empties the cache, its buffer with it, before it
        // is kept; the last is still found in it.
        let mut cache = MessageCache::new(one, Duration::from_secs(30));
        cache.insert_many(now, &buffer, messages.clone(), None);
        let (last, range, round, _) = messages[4].clone();
        assert_eq!(
            cache.get(&short_id(&last)),
            Some((buffer.slice(range), round))
        );
        assert_eq!(cache.buffers.len(), 1);
    }

    #[test]
    fn the_charge_covers_a_ring_entry_and_two_index_entries_in_the_emptiest_tables() {
        let ring = std::mem::size_of::<Cached>();
        // An entry and its control byte, in a table 7/16 full (just grown).
        let index = (std::mem::size_of::<(ShortId, u64)>() + 1) * 16 / 7;
        assert_eq!(ring, 88);
        assert!(
            ring + 2 * index <= CACHED_MESSAGE_OVERHEAD,
            "{ring} + 2 x {index}"
        );
    }

    #[test]
    fn retention_is_exclusive() {
        let now = Instant::now();
        let retention = Duration::from_secs(30);
        let mut cache = MessageCache::new(1 << 20, retention);
        let id = MessageId::of(b"m");
        cache.insert(now, (id, Bytes::from_static(b"m")), 0, None);
        cache.expire(now + retention - Duration::from_nanos(1));
        assert!(cache.get(&short_id(&id)).is_some());
        cache.expire(now + retention);
        assert!(cache.is_empty());
        assert_eq!(cache.bytes(), 0);
    }
}
