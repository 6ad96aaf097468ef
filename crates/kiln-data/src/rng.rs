//! Deterministic randomness for shuffling, splitting and augmentation.
//!
//! Everything random in this crate is a pure function of a user seed and a position (epoch,
//! sample index, …), built on Kiln's counter-based Philox generator
//! ([`kiln_core::cpu::philox_uniforms`]). No state is shared between threads, so results do not
//! depend on the number of loader workers or on the order in which samples are produced.

use kiln_core::cpu::philox_uniforms;

/// Stream tags keep the draws of different consumers independent under one seed.
pub(crate) mod stream {
    /// The loader's per-epoch shuffle.
    pub const SHUFFLE: u64 = 0x5348_5546_464c_4521;
    /// Per-sample transforms.
    pub const TRANSFORM: u64 = 0x5452_414e_5346_4f52;
    /// [`crate::random_split`].
    pub const SPLIT: u64 = 0x5350_4c49_5421_2121;
    /// Train/test splits of bundled datasets.
    pub const TRAIN_TEST: u64 = 0x5452_4149_4e54_4553;
}

/// SplitMix64's finalizer: a bijective 64-bit mix.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Folds a list of words into one well-mixed 64-bit key.
pub fn derive_key(parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(0x6B69_6C6E_6461_7461, |h, &p| splitmix64(h ^ splitmix64(p)))
}

/// A small deterministic random stream for one sample (or one shuffle).
///
/// Built from a key (see [`SampleRng::for_sample`]); each call draws the next uniforms of a
/// Philox stream. Two `SampleRng`s with the same key produce the same numbers.
#[derive(Clone, Debug)]
pub struct SampleRng {
    key: u64,
    counter: u64,
    buffer: Vec<f64>,
}

impl SampleRng {
    /// A stream for the given key.
    pub fn new(key: u64) -> SampleRng {
        SampleRng {
            key,
            counter: 0,
            buffer: Vec::new(),
        }
    }

    /// The stream a transform sees for sample `index` in `epoch` under `seed`.
    pub fn for_sample(seed: u64, epoch: u64, index: usize) -> SampleRng {
        SampleRng::new(derive_key(&[stream::TRANSFORM, seed, epoch, index as u64]))
    }

    /// The next uniform sample in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        if self.buffer.is_empty() {
            // One Philox counter yields four words; keep them in reverse to pop in order.
            self.buffer = philox_uniforms(4, self.key, self.counter);
            self.buffer.reverse();
            self.counter += 1;
        }
        self.buffer.pop().expect("refilled above")
    }

    /// True with probability `p`.
    pub fn bernoulli(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// An integer uniform in `0..n` (`n` must be positive).
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "SampleRng::below: empty range");
        ((self.uniform() * n as f64) as usize).min(n - 1)
    }
}

/// A permutation of `0..n` determined by `key` (Fisher–Yates over Philox uniforms).
pub fn permutation(n: usize, key: u64) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..n).collect();
    let u = philox_uniforms(n, key, 0);
    for i in (1..n).rev() {
        let j = ((u[i] * (i + 1) as f64) as usize).min(i);
        perm.swap(i, j);
    }
    perm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_is_a_deterministic_permutation() {
        let p = permutation(100, 7);
        assert_eq!(p, permutation(100, 7));
        assert_ne!(p, permutation(100, 8));
        let mut s = p.clone();
        s.sort_unstable();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
        assert_ne!(p, s, "a 100-element shuffle should move something");
    }

    #[test]
    fn sample_streams_are_reproducible_and_distinct() {
        let draw = |e, i| {
            let mut r = SampleRng::for_sample(3, e, i);
            (0..9).map(|_| r.uniform()).collect::<Vec<_>>()
        };
        assert_eq!(draw(0, 5), draw(0, 5));
        assert_ne!(draw(0, 5), draw(1, 5));
        assert_ne!(draw(0, 5), draw(0, 6));
        assert!(draw(2, 2).iter().all(|&u| u > 0.0 && u < 1.0));
    }

    #[test]
    fn below_stays_in_range() {
        let mut r = SampleRng::new(1);
        assert!((0..1000).all(|_| r.below(3) < 3));
    }
}
