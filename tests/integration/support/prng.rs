//! Reproducible test data: the same seed always gives the same bytes, so a transfer can be
//! checked without keeping what was sent.

/// Deterministic pseudo-random bytes (SplitMix64): the same `seed` and the same sequence of
/// buffer lengths always give the same bytes (a buffer ending mid-word drops the rest of it).
pub struct Prng(u64);

impl Prng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Prng {
        Prng(seed)
    }

    /// Fills `buf` with the next bytes of the stream.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
}
