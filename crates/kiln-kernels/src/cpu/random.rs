//! Counter-based random numbers (Philox4x32-10): sample `i` of a draw depends only on
//! (seed, offset, i), so results do not depend on the thread count and a compiled graph can
//! replay a draw from its (seed, offset) at run time.

use crate::dtype::DType;
use crate::ops::Distribution;
use crate::storage::CpuStorage;

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

#[inline]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

/// Philox4x32 with 10 rounds: four random words for counter `ctr` under key `key`.
#[inline]
pub fn philox(ctr: u64, key: u64) -> [u32; 4] {
    let mut c = [ctr as u32, (ctr >> 32) as u32, 0, 0];
    let mut k = [key as u32, (key >> 32) as u32];
    for _ in 0..10 {
        let (hi0, lo0) = mulhilo(M0, c[0]);
        let (hi1, lo1) = mulhilo(M1, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
        k[0] = k[0].wrapping_add(W0);
        k[1] = k[1].wrapping_add(W1);
    }
    c
}

/// `n` uniforms in (0, 1) from stream `seed` starting at counter `offset` (4 per counter).
pub fn philox_uniforms(n: usize, seed: u64, offset: u64) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    let mut ctr = offset;
    while out.len() < n {
        for w in philox(ctr, seed) {
            if out.len() < n {
                out.push((w as f64 + 0.5) / 4_294_967_296.0);
            }
        }
        ctr += 1;
    }
    out
}

/// Counters a draw of `n` samples consumes.
pub fn counters_for(n: usize) -> u64 {
    n.div_ceil(4) as u64
}

/// Samples `n` values of `dist` as `dtype`.
pub fn random(dist: Distribution, n: usize, dtype: DType, seed: u64, offset: u64) -> CpuStorage {
    let mut u = philox_uniforms(n.next_multiple_of(2), seed, offset);
    if dist == Distribution::Normal {
        // Box–Muller on consecutive pairs.
        for pair in u.chunks_exact_mut(2) {
            let r = (-2.0 * pair[0].ln()).sqrt();
            let t = 2.0 * std::f64::consts::PI * pair[1];
            pair[0] = r * t.cos();
            pair[1] = r * t.sin();
        }
    }
    if dist == Distribution::Uniform {
        // Samples are below 1 in f64 but can round up to 1 in a narrower dtype: clamp to the
        // largest value below 1 so rand stays in [0, 1) (and bernoulli(p = 1) is always 1).
        let below_one = match dtype {
            DType::F32 => 1.0 - 2f64.powi(-24),
            DType::BF16 => 1.0 - 2f64.powi(-8),
            DType::F16 => 1.0 - 2f64.powi(-11),
            _ => 1.0,
        };
        u.iter_mut().for_each(|v| *v = v.min(below_one));
    }
    u.truncate(n);
    CpuStorage::from_f64s(dtype, u.into_iter())
}
