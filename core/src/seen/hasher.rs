//! The seen set's default table hasher: fast, and keyed secretly per set.

use std::hash::{BuildHasher, RandomState};

use foldhash::fast::SeedableRandomState;
use foldhash::SharedSeed;

/// foldhash, seeded per instance from the operating system's randomness.
///
/// A peer chooses payloads, so it can grind BLAKE3 ids whose bits it likes; without the
/// seed it cannot tell which ids share a bucket. foldhash's own random seeding draws on
/// address-space layout and the clock; this one takes 64 bits from [`RandomState`]
/// (which the standard library keys from the OS) on top of them. foldhash hashes a
/// 128-bit key with one multiply, several times faster than SipHash, and the seen set
/// hashes every frame a node receives.
///
/// ```
/// use std::hash::BuildHasher;
/// use gossip_core::SeenHasher;
///
/// let (a, b) = (SeenHasher::default(), SeenHasher::default());
/// // Each instance has its own secret seed.
/// assert_ne!(a.hash_one(42u128), b.hash_one(42u128));
/// ```
#[derive(Debug, Clone)]
pub struct SeenHasher(SeedableRandomState);

impl Default for SeenHasher {
    fn default() -> Self {
        let secret = RandomState::new().hash_one(0x5eed_u64);
        SeenHasher(SeedableRandomState::with_seed(
            secret,
            SharedSeed::global_random(),
        ))
    }
}

impl BuildHasher for SeenHasher {
    type Hasher = <SeedableRandomState as BuildHasher>::Hasher;

    fn build_hasher(&self) -> Self::Hasher {
        self.0.build_hasher()
    }
}
