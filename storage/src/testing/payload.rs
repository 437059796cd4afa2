//! Deterministic snapshot payloads, generated as a stream from a seed, so that a test can
//! write and then check many megabytes without holding a copy.

use std::io::{self, Read};

/// Block size of the generator: each block is either random bytes or a short repeated
/// pattern, so that payloads exercise both compressible and incompressible frames.
const BLOCK_BYTES: usize = 4096;

/// A stream of `len` pseudo-random bytes determined by a seed (SplitMix64).
#[derive(Debug, Clone)]
pub struct PayloadGen {
    rng: SplitMix64,
    remaining: u64,
    block: Vec<u8>,
    block_pos: usize,
}

impl PayloadGen {
    /// The `len`-byte payload for `seed`.
    pub fn new(seed: u64, len: u64) -> Self {
        Self {
            rng: SplitMix64(seed),
            remaining: len,
            block: Vec::with_capacity(BLOCK_BYTES),
            block_pos: 0,
        }
    }

    /// The whole payload in memory (for small payloads).
    pub fn to_vec(seed: u64, len: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(usize::try_from(len).expect("payload fits in memory"));
        PayloadGen::new(seed, len)
            .read_to_end(&mut out)
            .expect("generator never fails");
        out
    }

    /// Bytes not yet produced.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    fn refill(&mut self) {
        self.block.clear();
        self.block_pos = 0;
        if self.rng.next() % 2 == 0 {
            while self.block.len() < BLOCK_BYTES {
                self.block.extend_from_slice(&self.rng.next().to_le_bytes());
            }
        } else {
            let pattern = self.rng.next().to_le_bytes();
            let len = 1 + (self.rng.next() % 8) as usize;
            while self.block.len() < BLOCK_BYTES {
                self.block.extend_from_slice(&pattern[..len]);
            }
            self.block.truncate(BLOCK_BYTES);
        }
    }
}

impl Read for PayloadGen {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        if self.block_pos == self.block.len() {
            self.refill();
        }
        let avail = &self.block[self.block_pos..];
        let n = avail
            .len()
            .min(buf.len())
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        buf[..n].copy_from_slice(&avail[..n]);
        self.block_pos += n;
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Reads `reader` to its end in chunks of at most `chunk` bytes and compares it with the
/// payload of `seed` and `len`. Returns a description of the first difference.
pub fn compare_stream(
    reader: &mut dyn Read,
    seed: u64,
    len: u64,
    chunk: usize,
) -> Result<(), String> {
    let mut expected = PayloadGen::new(seed, len);
    let mut got = vec![0u8; chunk];
    let mut want = vec![0u8; chunk];
    let mut offset = 0u64;
    loop {
        let n = reader
            .read(&mut got)
            .map_err(|e| format!("read at offset {offset}: {e}"))?;
        if n == 0 {
            break;
        }
        if (n as u64) > expected.remaining() {
            return Err(format!(
                "payload longer than {len} bytes: {} extra at offset {offset}",
                n as u64 - expected.remaining()
            ));
        }
        expected
            .read_exact(&mut want[..n])
            .expect("generator has the bytes");
        if let Some(i) = (0..n).find(|&i| got[i] != want[i]) {
            return Err(format!(
                "byte {} differs: got {:#04x}, want {:#04x}",
                offset + i as u64,
                got[i],
                want[i]
            ));
        }
        offset += n as u64;
    }
    if offset != len {
        return Err(format!("payload ends at {offset}, want {len} bytes"));
    }
    Ok(())
}

/// SplitMix64: tiny, seedable and good enough for test data.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_and_comparison_finds_differences() {
        let a = PayloadGen::to_vec(7, 10_000);
        assert_eq!(a.len(), 10_000);
        assert_eq!(a, PayloadGen::to_vec(7, 10_000));
        assert_ne!(a, PayloadGen::to_vec(8, 10_000));
        compare_stream(&mut a.as_slice(), 7, 10_000, 333).expect("same");
        let mut b = a.clone();
        b[5000] ^= 1;
        let e = compare_stream(&mut b.as_slice(), 7, 10_000, 333).expect_err("differs");
        assert!(e.contains("byte 5000"), "{e}");
        let e = compare_stream(&mut &a[..9000], 7, 10_000, 333).expect_err("short");
        assert!(e.contains("ends at 9000"), "{e}");
        let e = compare_stream(&mut a.as_slice(), 7, 9_000, 333).expect_err("long");
        assert!(e.contains("longer"), "{e}");
    }
}
