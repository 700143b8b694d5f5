//! Seeded, counter-based random numbers. Element `i` of a draw is a pure function of the
//! draw's key and `i`, using only 32-bit integer ops, so the CPU and WGSL kernels produce
//! the same bits and the result does not depend on how the work is split across threads.

use std::sync::Mutex;

/// A stream of draws: each call to a sampling function consumes one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    seed: u64,
    draws: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng { seed, draws: 0 }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// How many keys this generator has handed out.
    pub fn draws(&self) -> u64 {
        self.draws
    }

    /// The generator of `seed` after `draws` keys, as saved from [`seed`](Rng::seed) and
    /// [`draws`](Rng::draws) (training states restore generators this way).
    pub fn at(seed: u64, draws: u64) -> Self {
        Rng { seed, draws }
    }

    /// The key of the next draw.
    pub fn next_key(&mut self) -> u64 {
        let k = splitmix64(self.seed ^ splitmix64(self.draws.wrapping_add(0x5bd1_e995)));
        self.draws += 1;
        k
    }

    /// A uniform integer in `0..n` for host-side decisions (shuffles, layer sampling).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0)");
        let k = self.next_key();
        // Two 32-bit draws make 64 bits; the modulo bias is below 2^-32 for sane n.
        let hi = bits(k, 0) as u64;
        let lo = bits(k, 1) as u64;
        ((hi << 32) | lo) % n
    }

    /// A uniform f64 in `[0, 1)`.
    pub fn uniform_f64(&mut self) -> f64 {
        let k = self.next_key();
        let hi = (bits(k, 0) >> 5) as u64;
        let lo = (bits(k, 1) >> 6) as u64;
        ((hi << 26) | lo) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Fisher-Yates shuffle of `0..n`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.below(i as u64 + 1) as usize;
            p.swap(i, j);
        }
        p
    }
}

static GLOBAL: Mutex<Option<Rng>> = Mutex::new(None);

/// Seed the global generator (used when no `Rng` is passed explicitly).
pub fn manual_seed(seed: u64) {
    *GLOBAL.lock().unwrap() = Some(Rng::new(seed));
}

/// Take a key from the global generator (seeded with 0 unless `manual_seed` was called).
pub fn global_key() -> u64 {
    GLOBAL.lock().unwrap().get_or_insert_with(|| Rng::new(0)).next_key()
}

pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Chris Wellons' lowbias32 integer hash, a bijection on u32.
#[inline]
pub fn lowbias32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

/// 32 random bits for element `i` of the draw with `key`. Mirrored in `random.wgsl`.
#[inline]
pub fn bits(key: u64, i: u32) -> u32 {
    let (k0, k1) = (key as u32, (key >> 32) as u32);
    lowbias32(lowbias32(i.wrapping_add(k0)) ^ k1)
}

/// A uniform number in the open interval (0, 1) with 24 bits of resolution.
#[inline]
pub fn unit(key: u64, i: u32) -> f64 {
    ((bits(key, i) >> 8) as f64 + 0.5) * (1.0 / 16_777_216.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_reproducible_and_distinct() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let ka = a.next_key();
        assert_eq!(ka, b.next_key());
        assert_ne!(ka, a.next_key());
        assert_ne!(Rng::new(8).next_key(), ka);
        let mut c = Rng::at(a.seed(), a.draws());
        assert_eq!(c.next_key(), a.next_key(), "a generator restored from (seed, draws) goes on alike");
    }

    #[test]
    fn unit_is_roughly_uniform() {
        let n = 100_000;
        let mean: f64 = (0..n).map(|i| unit(42, i)).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
        assert!((0..n).all(|i| unit(42, i) > 0.0 && unit(42, i) < 1.0));
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut p = Rng::new(3).permutation(100);
        p.sort();
        assert_eq!(p, (0..100).collect::<Vec<_>>());
    }
}
