//! A small seeded PRNG (SplitMix64): deterministic, fast, and good enough to pick delays
//! and topologies. Not for anything secret.

/// Seeded pseudo-random numbers. The same seed gives the same sequence on every platform.
#[derive(Debug, Clone)]
pub struct SimRng(u64);

impl SimRng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SimRng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (0 if `bound` is 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        // Multiply-shift: bias is below 2^-64 * bound, irrelevant here.
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// Uniform in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        low + self.below(high - low + 1)
    }

    /// `true` with probability `p` (clamped to 0..=1).
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = SimRng::new(7);
        let mut hits = [0u32; 5];
        for _ in 0..1000 {
            hits[rng.below(5) as usize] += 1;
        }
        assert!(hits.iter().all(|&h| h > 100), "{hits:?}");
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng.between(3, 3), 3);
    }

    #[test]
    fn same_seed_same_sequence() {
        let (mut a, mut b) = (SimRng::new(42), SimRng::new(42));
        assert!((0..100).all(|_| a.next_u64() == b.next_u64()));
    }
}
