//! The set of linearized operations of one partition, and the hasher of the search cache.

use std::hash::{BuildHasher, Hash, Hasher};

/// A fixed-size set of operation indices `0..len`, one bit each.
///
/// It is half of every key of the search cache, so cloning, hashing and comparing it must
/// be cheap: a boxed slice of words, no spare capacity.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub(crate) struct Bitset {
    words: Box<[u64]>,
}

impl Bitset {
    /// An empty set able to hold `0..len`.
    pub(crate) fn new(len: usize) -> Self {
        Bitset {
            words: vec![0; len.div_ceil(64)].into_boxed_slice(),
        }
    }

    /// Adds `i`.
    #[inline]
    pub(crate) fn set(&mut self, i: usize) {
        self.words[i / 64] |= 1 << (i % 64);
    }

    /// Removes `i`.
    #[inline]
    pub(crate) fn clear(&mut self, i: usize) {
        self.words[i / 64] &= !(1 << (i % 64));
    }

    /// Whether `i` is in the set.
    #[cfg(test)]
    pub(crate) fn contains(&self, i: usize) -> bool {
        self.words[i / 64] & (1 << (i % 64)) != 0
    }

    /// Number of elements in the set.
    #[cfg(test)]
    pub(crate) fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }
}

/// Builds [`FoldHasher`]s: the search cache hashes millions of small keys, for which SipHash
/// (the std default, built to resist hash flooding, a threat that does not apply to a test
/// oracle) costs more than the search step itself.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FoldBuildHasher;

impl BuildHasher for FoldBuildHasher {
    type Hasher = FoldHasher;

    #[inline]
    fn build_hasher(&self) -> FoldHasher {
        FoldHasher(SEED)
    }
}

/// A multiply-fold word hash (the core of wyhash and foldhash): each word is xored into
/// the state, which is multiplied by an odd constant to 128 bits and the two halves folded
/// together, so every input bit reaches every output bit. (rustc's plain multiply-rotate
/// “FxHash” does not: a set with only bit 63 of one word and one with only bit 4 of the
/// next collide.) Keys come from the program itself, so no seed against flooding.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FoldHasher(u64);

const SEED: u64 = 0x243f_6a88_85a3_08d3;
const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

impl FoldHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        let product = u128::from(self.0 ^ word) * u128::from(MULTIPLIER);
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }
}

impl Hasher for FoldHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            // The length keeps "a" and "a\0" apart.
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // MurmurHash3's fmix64.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// Hashes `value` with [`FoldHasher`] (used by tests).
#[cfg(test)]
pub(crate) fn fold_hash<T: Hash + ?Sized>(value: &T) -> u64 {
    FoldBuildHasher.hash_one(value)
}
