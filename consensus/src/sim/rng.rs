//! The simulator's only source of randomness, and its hashes.
//!
//! Everything random in a simulation (network delays and losses, tick phases, the
//! cores' election seeds, the test's workload) comes from streams derived from the one
//! `u64` seed, so a seed replays exactly. The generator is written out here rather
//! than taken from a crate so that a seed means the same run on every platform and
//! after every dependency upgrade.

/// Mixes `x` into a well-distributed 64-bit value (the SplitMix64 finaliser).
pub fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Derives an independent seed for the stream named `stream` (and a number, such as a
/// node id or an incarnation) from the simulation seed.
pub fn derive_seed(seed: u64, stream: &str, n: u64) -> u64 {
    let mut h = mix64(seed);
    h = mix64(h ^ hash_bytes(stream.as_bytes()));
    mix64(h ^ n)
}

/// A 64-bit FNV-1a hash finished with [`mix64`]. Stable across platforms and releases.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix64(h)
}

/// Combines a running hash with one more value, order-sensitively.
pub fn chain(prev: u64, value: u64) -> u64 {
    mix64(prev.rotate_left(17) ^ value)
}

/// A small, fast, seedable generator (xoshiro256**).
#[derive(Debug, Clone)]
pub struct SimRng {
    s: [u64; 4],
}

impl SimRng {
    /// A generator whose whole output is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut s = [0u64; 4];
        for slot in &mut s {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            *slot = mix64(x);
        }
        if s == [0; 4] {
            s[0] = 1;
        }
        Self { s }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A uniform value in `0..n` (`n` > 0), without modulo bias worth mentioning for the
    /// small ranges a simulation uses (it uses the high bits of a 128-bit product).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "SimRng::below(0)");
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A uniform value in `lo..=hi`.
    pub fn range_inclusive(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi, "SimRng::range_inclusive({lo}, {hi})");
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `permille / 1000`.
    pub fn chance_permille(&mut self, permille: u32) -> bool {
        self.below(1000) < u64::from(permille)
    }

    /// A uniformly chosen element index of a non-empty slice length.
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// `len` random bytes drawn from an alphabet of letters and digits (the lab's
    /// `Randstring`).
    pub fn alnum_bytes(&mut self, len: usize) -> Vec<u8> {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        (0..len)
            .map(|_| ALPHABET[self.index(ALPHABET.len())])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_streams_differ() {
        let mut a = SimRng::new(7);
        let mut b = SimRng::new(7);
        let xs: Vec<u64> = (0..16).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..16).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(derive_seed(7, "net", 0), derive_seed(7, "workload", 0));
        assert_ne!(derive_seed(7, "core", 1), derive_seed(7, "core", 2));
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut r = SimRng::new(1);
        let mut seen = [false; 27];
        for _ in 0..10_000 {
            let v = r.below(27) as usize;
            seen[v] = true;
        }
        assert!(seen.iter().all(|&s| s));
        for _ in 0..1000 {
            let v = r.range_inclusive(200, 2200);
            assert!((200..=2200).contains(&v));
        }
    }
}
